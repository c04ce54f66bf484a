"""The on-disk kernel cache (SPEC §6): round trips between processes, the key, corruption,
atomic and concurrent writes, unusable directories, the size cap, precompile and threads."""
import glob
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm import symbols, target
from lumen.frontend.precompile import OPEN_SIZE
from lumen.ir.fingerprint import fingerprint
from lumen.runtime import disk_cache

from .oracle import assert_same

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


RUNTIME = "lumen runtime: "        # the name of runtime support entries (symbols.compile_for_good)


def runtime_at_link() -> list:
    """The runtime support every process links (its names, sorted): the result pool, and
    where this BLAS takes a threads callback and loops run on more than one thread, the module
    that runs its work on the team."""
    target.link_runtime()
    return sorted([RUNTIME + "result pool"]
                  + [RUNTIME + "BLAS on the team"] * symbols.blas_on_team())


def program_entries(path) -> list:
    """The keys of the entries that hold programs (not lumen's runtime support)."""
    return sorted(key for key in disk_cache.entries(str(path))
                  if not json.loads((path / (key + ".json")).read_text())["name"]
                  .startswith(RUNTIME))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache directory, the disk cache on, and the per-process directory state reset.
    The runtime support is linked before (it is once per process), so that the directory
    holds the test's entries only."""
    target.link_runtime()
    symbols.link_small_products(letters="sd")
    path = tmp_path / "cache"
    monkeypatch.setenv("LUMEN_CACHE", "1")
    monkeypatch.setenv("LUMEN_CACHE_DIR", str(path))
    monkeypatch.delenv("LUMEN_CACHE_MAX_MB", raising=False)
    monkeypatch.setattr(disk_cache, "_state", {})
    monkeypatch.setattr(disk_cache, "_warned", set())
    return path


def entry_files(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def only_key(path):
    (key,) = disk_cache.entries(str(path))
    return key


def model(x, w):
    return np.tanh(x @ w).sum(axis=1) * 0.5


X = np.random.default_rng(0).standard_normal((6, 4))
W = np.random.default_rng(1).standard_normal((4, 3))


def cache_warnings(record):
    return [w for w in record if issubclass(w.category, lumen.CacheWarning)]


# -- between processes ------------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import lumen

    @lumen.jit
    def f(x, w):
        return np.tanh(x @ w).sum(axis=1) * 0.5

    n = int(sys.argv[1])
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 10
    w = np.ones((4, 3), np.float32)
    r = f(x, w)
    assert np.allclose(r, np.tanh(x @ w).sum(axis=1) * 0.5, rtol=1e-5)
    info = f.cache_info()
    print(info["compiles"], info["disk_hits"])
""")


def run_python(args, cache, tmp_path, **env):
    environment = dict(os.environ, LUMEN_CACHE="1", LUMEN_CACHE_DIR=str(cache),
                       PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_a_second_process_loads_the_code_from_disk_for_any_batch_size(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "cache"
    counts = [run_python([str(script), str(n)], cache, tmp_path).stdout.split() for n in (5, 5, 64)]
    assert counts == [["1", "0"], ["0", "1"], ["0", "1"]]
    # the program, the runtime linked first and the float32 small products
    assert len(program_entries(cache)) == 1
    assert len(disk_cache.entries(str(cache))) == 2 + len(runtime_at_link())
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"


NOTHING_COMPILED = textwrap.dedent("""
    import sys
    import numpy as np
    import lumen
    from lumen.codegen_llvm import target

    def refuse(*args):
        raise AssertionError("LLVM ran in a process whose code is all on disk")
    if sys.argv[1:] == ["refuse"]:
        target.compile_objects = target._compile_part = refuse

    @lumen.jit
    def f(x, w):
        return np.tanh(x @ w).sum(axis=1) * 0.5

    x = np.arange(20, dtype=np.float32).reshape(5, 4) / 10
    w = np.ones((4, 3), np.float32)
    big = lumen.jit(lambda a: a * 2)(np.ones(1 << 19))          # a pooled result (4 MiB)
    assert np.allclose(f(x, w), np.tanh(x @ w).sum(axis=1) * 0.5) and big.sum() == 2 << 19
    print(f.cache_info()["disk_hits"])
""")


def test_a_warm_process_runs_llvm_for_nothing(tmp_path):
    """Programs and lumen's runtime support (the result pool, the small matrix products, BLAS
    on the team) both come from disk."""
    script = tmp_path / "script.py"
    script.write_text(NOTHING_COMPILED)
    cache = tmp_path / "cache"
    first = run_python([str(script)], cache, tmp_path)
    assert first.stdout.split() == ["0"], first.stderr
    names = sorted(json.loads((cache / (key + ".json")).read_text())["name"]
                   for key in disk_cache.entries(str(cache)))
    assert names == sorted(["<lambda>", "f", RUNTIME + "small matrix products (float32)",
                            *runtime_at_link()])
    second = run_python([str(script), "refuse"], cache, tmp_path)
    assert second.stdout.split() == ["1"], second.stderr


BLAS_SCRIPT = textwrap.dedent("""
    import sys
    import llvmlite.binding as llvm
    import numpy as np
    import lumen
    from lumen.codegen_llvm.symbols import _capsule_pointer, blas

    x, y = np.arange(12.0).reshape(3, 4), np.ones((4, 5))
    for a, b in ((x, y), (x[:1], y), (x.astype(np.float32), y.astype(np.float32))):
        assert np.allclose(lumen.jit(lambda a, b: a @ b)(a, b), a @ b)
    assert "scipy.linalg" not in sys.modules
    for name in ("sgemm", "dgemm", "sgemv", "dgemv"):
        assert llvm.address_of_symbol("lumen_" + name) == blas().addresses[name]
    if blas().source == "scipy.linalg.cython_blas":
        import scipy.linalg.cython_blas
        for name in ("sgemm", "dgemm"):
            capsule = scipy.linalg.cython_blas.__pyx_capi__[name]
            assert blas().addresses[name] == _capsule_pointer(capsule)
    print(blas().source)
""")


@pytest.mark.parametrize("choice", ["", "scipy"])
def test_a_warm_start_links_blas_without_importing_scipy_linalg(tmp_path, choice):
    """Generated code calls NumPy's own OpenBLAS (64-bit ints) where NumPy ships one, else
    SciPy's (``LUMEN_BLAS=scipy`` forces it; 32-bit ints), and neither imports scipy.linalg —
    most of a warm start's time. A later ordinary import of cython_blas finds the routines
    lumen linked; the choice is part of the cache key (each run compiles once, then loads)."""
    script = tmp_path / "script.py"
    script.write_text(BLAS_SCRIPT)
    numpy_ships_openblas = bool(glob.glob(os.path.join(
        os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "libscipy_openblas64_*")))
    expected = "numpy-openblas64" if numpy_ships_openblas and not choice \
        else "scipy.linalg.cython_blas"
    for _ in range(2):                     # cold, then warm from the disk cache
        result = run_python([str(script)], tmp_path / "cache", tmp_path, LUMEN_BLAS=choice)
        assert result.stdout.split() == [expected], result.stderr


def test_lumen_cache_0_and_cache_false_write_nothing(tmp_path, cache_dir, monkeypatch):
    lumen.jit(model, cache=False)(X, W)
    assert entry_files(cache_dir) == []
    monkeypatch.setenv("LUMEN_CACHE", "0")
    f = lumen.jit(model)
    f(X, W)
    assert f.cache_info()["compiles"] == 1 and entry_files(cache_dir) == []


# -- the key ----------------------------------------------------------------------------------

def test_constants_the_printed_ir_abbreviates_still_give_different_keys(cache_dir):
    a = np.linspace(0, 1, 100)
    b = a.copy()
    b[57] += 1e-9

    def make(c):
        return lumen.jit(lambda x: x * c)

    fa, fb = make(a), make(b)
    x = np.ones(100)
    ga, gb = fa.lower(x).graph, fb.lower(x).graph
    assert fa.lower(x).ir() == fb.lower(x).ir()          # the text abbreviates the constants
    assert fingerprint(ga) != fingerprint(gb)
    assert_same(fa(x), x * a)
    assert_same(fb(x), x * b)
    assert fb.cache_info()["compiles"] == 1 and fb.cache_info()["disk_hits"] == 0
    assert len(disk_cache.entries(str(cache_dir))) == 2
    fc = make(b.copy())
    assert_same(fc(x), x * b)
    assert fc.cache_info()["disk_hits"] == 1


def test_fastmath_and_dtype_are_part_of_the_key(cache_dir):
    lumen.jit(model)(X, W)
    lumen.jit(model, fastmath=True)(X, W)
    lumen.jit(model)(X.astype(np.float32), W.astype(np.float32))
    assert len(disk_cache.entries(str(cache_dir))) == 3
    again = lumen.jit(model, fastmath=True)
    again(X, W)
    assert again.cache_info() == {"compiles": 0, "memory_hits": 0, "disk_hits": 1}


def test_debug_mode_checks_code_loaded_from_disk(cache_dir):
    lumen.jit(model)(X, W)
    f = lumen.jit(model, debug=True)
    assert_same(f(X, W), model(X, W), exact=False)
    assert f.cache_info()["disk_hits"] == 1


# -- corruption -------------------------------------------------------------------------------

def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip])
@pytest.mark.parametrize("suffix", [".o", ".json"])
def test_a_damaged_entry_is_reported_once_removed_and_rebuilt(cache_dir, damage, suffix):
    lumen.jit(model)(X, W)
    key = only_key(cache_dir)
    damage(cache_dir / (key + suffix))
    f = lumen.jit(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert_same(f(X, W), model(X, W), exact=False)
    (warning,) = cache_warnings(record)
    assert "corrupt" in str(warning.message) and key[:16] in str(warning.message)
    assert f.cache_info()["compiles"] == 1
    disk_cache.check_entry(str(cache_dir), key)          # rebuilt, valid again
    assert lumen.jit(model)(X, W) is not None


@pytest.mark.parametrize("sizes", [[], [300, 300], [700, 0], [350.0, 350]])
def test_object_sizes_that_do_not_cut_the_file_are_corrupt(cache_dir, sizes):
    key = "a" * 64
    disk_cache.store(key, [bytes(300), bytes(400)])
    meta_path = cache_dir / (key + ".json")
    meta = json.loads(meta_path.read_text())
    meta["object_sizes"] = sizes
    meta["checksum"] = disk_cache._checksum(meta)                  # a consistent lie
    meta_path.write_bytes(disk_cache._canonical(meta))
    with pytest.raises(disk_cache.CorruptEntry, match="object sizes"):
        disk_cache.check_entry(str(cache_dir), key)


def test_verify_finds_every_bad_entry_and_keeps_the_good_ones(cache_dir):
    lumen.jit(model)(X, W)
    lumen.jit(model)(X.astype(np.float32), W.astype(np.float32))
    good, bad = sorted(disk_cache.entries(str(cache_dir)))
    flip(cache_dir / (bad + ".o"))
    report = disk_cache.verify(str(cache_dir))
    assert report[good] is None and "checksum" in report[bad]
    assert list(disk_cache.entries(str(cache_dir))) == [good]


# -- writing ----------------------------------------------------------------------------------

def test_writes_are_atomic_and_a_failed_write_leaves_nothing(cache_dir, monkeypatch):
    lumen.jit(model)(X, W)
    key = only_key(cache_dir)
    assert entry_files(cache_dir) == [key + ".json", key + ".o"]      # no temporary files
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append(b) or real_replace(a, b))
    lumen.jit(model, fastmath=True)(X, W)
    assert [os.path.splitext(p)[1] for p in replaced] == [".o", ".json"]   # metadata last

    def fail(a, b):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        disk_cache._write_atomically(str(cache_dir / "x.o"), b"data")
    assert not [n for n in entry_files(cache_dir) if n.startswith(".tmp")]


def test_a_full_disk_degrades_to_memory_only_with_one_warning(cache_dir, monkeypatch):
    def full(target, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(disk_cache, "_write_atomically", full)
    f = lumen.jit(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        f(X, W)
        f(X, W)
        lumen.jit(model, fastmath=True)(X, W)
    (warning,) = cache_warnings(record)
    assert "No space left" in str(warning.message) and "memory only" in str(warning.message)
    assert f.cache_info() == {"compiles": 1, "memory_hits": 1, "disk_hits": 0}


def test_an_unusable_directory_degrades_to_memory_only(tmp_path, cache_dir, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LUMEN_CACHE_DIR", str(blocker / "cache"))
    f = lumen.jit(model)
    with pytest.warns(lumen.CacheWarning, match="memory only"):
        assert_same(f(X, W), model(X, W), exact=False)
    f(X, W)
    assert f.cache_info() == {"compiles": 1, "memory_hits": 1, "disk_hits": 0}


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only directory")
def test_a_read_only_directory_still_serves_its_entries(cache_dir):
    lumen.jit(model)(X, W)
    os.chmod(cache_dir, 0o500)
    try:
        with pytest.warns(lumen.CacheWarning, match="cannot write"):
            lumen.jit(model, fastmath=True)(X, W)
        f = lumen.jit(model)
        f(X, W)
        assert f.cache_info()["disk_hits"] == 1
    finally:
        os.chmod(cache_dir, 0o700)


@pytest.mark.parametrize("mode", [0o770, 0o707])
def test_a_directory_writable_by_others_is_not_used(cache_dir, monkeypatch, mode):
    lumen.jit(model)(X, W)
    os.chmod(cache_dir, mode)
    monkeypatch.setattr(disk_cache, "_state", {})
    f = lumen.jit(model)
    with pytest.warns(lumen.CacheWarning, match="writable by group or others"):
        assert_same(f(X, W), model(X, W), exact=False)
    assert f.cache_info()["disk_hits"] == 0 and f.cache_info()["compiles"] == 1


# -- several writers at once ------------------------------------------------------------------

def compile_in_child(cache, barrier, queue):
    os.environ.update(LUMEN_CACHE="1", LUMEN_CACHE_DIR=cache)
    x = np.arange(12.0).reshape(3, 4)
    f = lumen.jit(model)
    barrier.wait()
    queue.put((f(x, np.ones((4, 3))).tolist(), f.cache_info()["compiles"]))


def test_processes_compiling_the_same_key_at_once_all_succeed(cache_dir):
    ctx = multiprocessing.get_context("spawn")
    n = 3
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=compile_in_child, args=(str(cache_dir), barrier, queue))
             for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = model(np.arange(12.0).reshape(3, 4), np.ones((4, 3)))
    for values, _ in results:
        assert_same(np.array(values), expected, exact=False)
    (key,) = program_entries(cache_dir)            # and the runtime support, which each wrote
    keys = disk_cache.entries(str(cache_dir))
    assert entry_files(cache_dir) == sorted(k + ext for k in keys for ext in (".json", ".o"))
    assert disk_cache.verify(str(cache_dir)) == {k: None for k in keys}


def test_eight_threads_share_one_disk_entry(cache_dir):
    lumen.jit(model)(X, W)
    f = lumen.jit(model)
    barrier, results = threading.Barrier(8), []

    def worker():
        barrier.wait()
        results.append(f(X, W))
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(np.array_equal(r, results[0]) for r in results)
    assert f.cache_info()["compiles"] == 0 and f.cache_info()["disk_hits"] == 1


# -- size cap ---------------------------------------------------------------------------------

def test_the_size_cap_evicts_the_least_recently_used(cache_dir, monkeypatch):
    monkeypatch.setenv("LUMEN_CACHE_MAX_MB", str(2.5 * 1000 / 2**20))   # room for two entries
    keys = [f"{k:064x}" for k in range(4)]
    for i, key in enumerate(keys[:3]):
        disk_cache.store(key, [bytes(300), bytes(400)])
        os.utime(cache_dir / (key + ".json"), (1000 + i, 1000 + i))
    assert sorted(disk_cache.entries(str(cache_dir))) == keys[1:3]     # 0 went first
    assert disk_cache.load(keys[1]) == [bytes(300), bytes(400)]         # a hit: now the newest
    disk_cache.store(keys[3], [bytes(700)])
    assert sorted(disk_cache.entries(str(cache_dir))) == [keys[1], keys[3]]


# -- precompile -------------------------------------------------------------------------------

def test_precompile_from_specs_serves_later_calls(cache_dir):
    f = lumen.jit(model)
    f.precompile(lumen.ShapeDtype((None, None), np.float32), lumen.ShapeDtype(2, np.float32))
    assert f.cache_info()["compiles"] == 1
    x, w = X.astype(np.float32), W.astype(np.float32)
    assert_same(f(x, w), model(x, w), exact=False)
    assert_same(f(x[:1].copy(), w), model(x[:1], w), exact=False)     # size 1: its own pattern
    assert f.cache_info() == {"compiles": 2, "memory_hits": 1, "disk_hits": 0}
    g = lumen.jit(model)
    g.precompile(lumen.ShapeDtype((1, 4), np.float32), w)              # an example array
    assert g.cache_info() == {"compiles": 0, "memory_hits": 0, "disk_hits": 1}


def test_shape_dtype_text_form():
    s = lumen.ShapeDtype.parse(" f32[?, 784] ")
    assert s.shape == (None, 784) and s.dtype == np.float32
    assert lumen.ShapeDtype.parse("bool[]").shape == ()
    assert lumen.ShapeDtype.parse("u8[1,?]").dtype == np.uint8
    assert repr(lumen.ShapeDtype(2, "int64")) == "ShapeDtype(i64[?,?])"
    stand_in = lumen.ShapeDtype((None, 3), np.float64).stand_in()
    assert stand_in.shape == (OPEN_SIZE, 3) and stand_in.flags.c_contiguous
    for bad in ("f32", "float32[3]", "f32[a]", "f32[3"):
        with pytest.raises(ValueError, match="spec"):
            lumen.ShapeDtype.parse(bad)
    with pytest.raises(ValueError):
        lumen.ShapeDtype((-1,), np.float32)


# -- location and safety ----------------------------------------------------------------------

def test_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LUMEN_CACHE_DIR", str(tmp_path / "a"))
    assert disk_cache.location() == str(tmp_path / "a")
    monkeypatch.delenv("LUMEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert disk_cache.location() == str(tmp_path / "xdg" / "lumen")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert disk_cache.location() == str(tmp_path / "home" / ".cache" / "lumen")


def test_nothing_read_back_is_unpickled_or_evaluated():
    for module in ("runtime/disk_cache.py", "runtime/cli.py", "frontend/compile.py",
                   "frontend/cache_key.py", "ir/fingerprint.py", "codegen_llvm/target.py"):
        with open(os.path.join(ROOT, "lumen", module)) as f:
            source = f.read()
        for word in ("import pickle", "pickle.", "import marshal", "import shelve", "eval(",
                     "exec("):
            assert word not in source, (module, word)
