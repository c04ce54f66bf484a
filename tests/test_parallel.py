"""Parallel loops through the OpenMP runtime (lumen/codegen_llvm/parallel.py).

Results agree with NumPy on either side of the threshold and for sizes no thread count
divides; every result, float sums included, is bitwise the same on 1, 2 or 3 threads (the
chunks of a reduction depend on the sizes only); ``parallel=False`` emits no region and no
GOMP call; errors flagged on worker threads are raised; without libgomp lumen warns once and
computes the same numbers on one thread."""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special as sc

import lumen
from lumen.codegen_llvm import symbols
from lumen.codegen_llvm.parallel import THRESHOLD

from .oracle import assert_same

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_COUNTS = (1, 2, 3)


@pytest.fixture(scope="module", autouse=True)
def _runtime_registered():
    """The first compile registers the OpenMP runtime (and reads LUMEN_NUM_THREADS), which
    `threads` then overrides. Loops fork from `THRESHOLD` here, whatever waking the team
    costs on this machine, so that the sizes below straddle the fork."""
    lumen.jit(lambda x: x + 1)(np.zeros(1))
    calibrated = symbols.fork_work.value, symbols.fork_bytes.value
    symbols.fork_work.value, symbols.fork_bytes.value = THRESHOLD, 0
    yield
    symbols.fork_work.value, symbols.fork_bytes.value = calibrated


@contextlib.contextmanager
def threads(n):
    previous = symbols.set_num_threads(n)
    try:
        yield
    finally:
        symbols.set_num_threads(previous)


def same_on_any_thread_count(f, *args):
    """f(*args) on 1, 2 and 3 threads: asserts the results are bitwise equal; returns one."""
    results = []
    for n in THREAD_COUNTS:
        with threads(n):
            results.append(f(*args))
    for r in results[1:]:
        assert r.dtype == results[0].dtype
        np.testing.assert_array_equal(r, results[0], strict=True)
    return results[0]


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 50, shape).astype(dtype)
    return rng.uniform(-2.0, 2.0, shape).astype(dtype)


def numpy_result(f, *args):
    with np.errstate(all="ignore"):
        return np.asarray(f(*args))


# -- elementwise -------------------------------------------------------------------------------

def axpy(a, b):
    return a * b + a            # cost 3 per element: 1 + two cheap ops


def smooth(a, b):
    return np.tanh(a) * b + np.exp(-b * b)


AXPY_POINTS = THRESHOLD // 3    # the number of elements where axpy's work reaches THRESHOLD
SIZES = (AXPY_POINTS - 1, AXPY_POINTS + 1, 3 * AXPY_POINTS + 7, 1_000_003)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
def test_elementwise_matches_numpy_and_serial_at_any_size(dtype):
    f = lumen.jit(axpy)
    serial = lumen.jit(axpy, parallel=False)
    for n in SIZES:
        a, b = sample(n, dtype), sample(n, dtype, seed=1)
        got = same_on_any_thread_count(f, a, b)
        assert_same(got, numpy_result(axpy, a, b))
        np.testing.assert_array_equal(got, serial(a, b), strict=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transcendental_elementwise(dtype):
    a, b = sample(2_000_001, dtype), sample(2_000_001, dtype, seed=1)
    assert_same(same_on_any_thread_count(lumen.jit(smooth), a, b), numpy_result(smooth, a, b))


def test_strided_and_broadcast_operands_split_along_the_outer_axis():
    def f(x, row):
        return np.exp(x.T) * row + 1.0
    x, row = sample((1031, 517), "float64"), sample(1031, "float64", seed=2)
    assert_same(same_on_any_thread_count(lumen.jit(f), x, row), numpy_result(f, x, row))


# -- reductions -------------------------------------------------------------------------------

def logsumexp_rows(x):
    m = x.max(axis=1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))


REDUCTIONS = {
    "sum": lambda x: x.sum(),
    "sum_axis0": lambda x: x.sum(axis=0),           # reduced axis outside: into the output
    "sum_last": lambda x: x.sum(axis=-1),           # reduced axis inside: per output element
    "max": lambda x: x.max(),
    "min_axis0": lambda x: x.min(axis=0),
    "mean_last": lambda x: x.mean(axis=-1),
    "squares": lambda x: ((x - 0.5) ** 2).sum(),
}
SHAPES = {1: (THRESHOLD - 1, THRESHOLD + 1, 2_000_003),
          2: ((3, THRESHOLD // 3 + 5), (1001, 997), (THRESHOLD + 3, 2)),
          3: ((7, 129, 131), (2, 3, 100_001))}


#: (reduction, ndim): the axis forms only where they differ from the whole-array reduction
REDUCTION_CASES = [(name, ndim) for name in sorted(REDUCTIONS) for ndim in SHAPES
                   if ndim > 1 or name in ("sum", "max", "squares")]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("name, ndim", REDUCTION_CASES)
def test_reductions_match_numpy_bitwise_on_any_thread_count(name, ndim, dtype):
    fn = REDUCTIONS[name]
    f = lumen.jit(fn)
    for shape in SHAPES[ndim]:
        x = sample(shape, dtype)
        assert_same(same_on_any_thread_count(f, x), numpy_result(fn, x))


def test_fused_logsumexp_rows():
    for shape in ((4096, 257), (3, 300_001)):
        x = sample(shape, "float32")
        got = same_on_any_thread_count(lumen.jit(logsumexp_rows), x)
        assert_same(got, sc.logsumexp(x, axis=1, keepdims=True))


def test_float32_sum_of_millions_stays_accurate():
    x = np.random.default_rng(3).standard_normal(1 << 24).astype(np.float32) + 1
    got = same_on_any_thread_count(lumen.jit(lambda x: x.sum()), x)
    assert_same(got, np.float32(x.sum(dtype=np.float64)))


def test_argmax_and_nan_in_a_late_chunk():
    x = sample(3_000_017, "float64")
    x[2_999_000] = 10.0
    x[2_999_001] = 10.0     # first occurrence wins, across chunks too
    argmax = lumen.jit(np.argmax)
    assert same_on_any_thread_count(argmax, x) == 2_999_000
    x[2_500_000] = np.nan
    assert same_on_any_thread_count(argmax, x) == 2_500_000
    assert np.isnan(same_on_any_thread_count(lumen.jit(np.max), x))
    assert np.isnan(same_on_any_thread_count(lumen.jit(lambda x: x.min(axis=0)),
                                             x[:3_000_000].reshape(1000, 3000))[1000])


def test_any_and_all():
    x = np.zeros(2_000_001, bool)
    any_, all_ = lumen.jit(np.any), lumen.jit(np.all)
    assert not same_on_any_thread_count(any_, x) and not same_on_any_thread_count(all_, x)
    x[-1] = True
    assert same_on_any_thread_count(any_, x)
    assert same_on_any_thread_count(all_, ~np.zeros(2_000_001, bool))


# -- loops inside control flow ----------------------------------------------------------------

def test_kernels_in_scan_bodies_above_and_below_the_threshold():
    def step(c, x):
        c = np.tanh(c * 0.5 + x)
        return c, c.sum()

    def reference(c, xs):
        ys = []
        for x in xs:
            c, y = step(c, x)
            ys.append(y)
        return c, np.array(ys)

    f = lumen.jit(lambda c, xs: lumen.scan(step, c, xs))
    for n in (100, 200_003):
        c, xs = sample(n, "float64"), sample((5, n), "float64", seed=4)
        results = []
        for k in THREAD_COUNTS:
            with threads(k):
                results.append(f(c, xs))
        for got in results:
            for g, e, r in zip(got, reference(c, xs), results[0]):
                assert_same(g, e)
                np.testing.assert_array_equal(g, r)


def test_while_loop_with_a_large_body():
    def f(x):
        return lumen.while_loop(lambda s: s[1] < 3, lambda s: (np.sqrt(s[0] * 1.5 + 1), s[1] + 1),
                                (x, 0))[0]
    x = sample(1_000_001, "float64") ** 2
    expected = x
    for _ in range(3):
        expected = np.sqrt(expected * 1.5 + 1)
    assert_same(same_on_any_thread_count(lumen.jit(f), x), expected)


# -- errors flagged on worker threads ---------------------------------------------------------

def test_index_error_in_a_parallel_gather():
    x = sample((1000, 300), "float64")
    idx = np.random.default_rng(5).integers(0, 1000, 4000)
    gather = lumen.jit(lambda x, i: x[i] * 2)
    assert_same(gather(x, idx), x[idx] * 2)
    idx[3900] = 1000
    for n in THREAD_COUNTS:
        with threads(n), pytest.raises(IndexError, match="out of bounds"):
            gather(x, idx)


def test_negative_integer_power_in_a_parallel_kernel():
    a = np.full(1_000_001, 3, np.int64)
    b = np.full(1_000_001, 2, np.int64)
    power = lumen.jit(lambda a, b: a ** b)
    np.testing.assert_array_equal(power(a, b), a ** b)
    b[999_999] = -1
    for n in THREAD_COUNTS:
        with threads(n), pytest.raises(ValueError, match="negative integer powers"):
            power(a, b)


# -- what is emitted --------------------------------------------------------------------------

def test_parallel_false_forks_no_team():
    """Its loops are regions too (the glue keeps none), which the entry calls itself."""
    x = sample(1_000_000, "float32")
    for fn in (smooth, lambda a, b: (a * b).sum(), lambda a, b: a.reshape(1000, 1000).max(0)):
        parallel_ir = lumen.jit(fn).lower(x, x).llvm_ir()
        serial_ir = lumen.jit(fn, parallel=False).lower(x, x).llvm_ir()
        assert "call void @\"lumen_GOMP_parallel\"" in parallel_ir
        assert "lumen_GOMP_parallel" not in serial_ir and "lumen_num_threads" not in serial_ir
        assert re.search(r'call void @"lumen_region[.0-9]*"\(', serial_ir)


# -- the runtime, in processes of their own ---------------------------------------------------

NO_LIBGOMP = textwrap.dedent("""
    import ctypes.util, json, warnings
    import llvmlite.binding as llvm

    find, load = ctypes.util.find_library, llvm.load_library_permanently

    def load_without_gomp(path):
        if "gomp" in path:
            raise RuntimeError(path + ": cannot open shared object file")
        load(path)

    ctypes.util.find_library = lambda name: None if name == "gomp" else find(name)
    llvm.load_library_permanently = load_without_gomp

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import numpy as np
        import lumen
        from lumen.codegen_llvm import symbols
        a = np.linspace(-1, 1, 1_000_003)
        ok = [bool(np.allclose(lumen.jit(lambda a: np.tanh(a) * 2 + a)(a), np.tanh(a) * 2 + a)),
              bool(np.isclose(lumen.jit(lambda a: (a * a).sum())(a), (a * a).sum())),
              bool(np.allclose(lumen.jit(lambda a: a.reshape(1000003, 1).sum(1))(a), a))]
    print(json.dumps({"ok": ok, "threads": symbols.set_num_threads(4),
                      "after": symbols.num_threads.value,
                      "warnings": [str(w.message) for w in caught if "libgomp" in str(w.message)]}))
""")

THREADS_FROM_ENVIRONMENT = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import numpy as np
        import lumen
        from lumen.codegen_llvm import symbols
        lumen.jit(lambda a: a + 1)(np.zeros(3))
    print(json.dumps({"threads": symbols.num_threads.value,
                      "warnings": [str(w.message) for w in caught]}))
""")


def run_script(script, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k != "LUMEN_NUM_THREADS"}
    environment.update(LUMEN_CACHE="0", PYTHONPATH=ROOT, **env)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_without_libgomp_one_warning_and_serial_results(tmp_path):
    result = run_script(NO_LIBGOMP, tmp_path)
    assert result["ok"] == [True, True, True]
    assert len(result["warnings"]) == 1 and "one thread" in result["warnings"][0]
    assert result["threads"] == 1 and result["after"] == 1


@pytest.mark.parametrize("value, expected", [("3", 3), ("many", len(os.sched_getaffinity(0)))])
def test_lumen_num_threads_is_read_from_the_environment(tmp_path, value, expected):
    result = run_script(THREADS_FROM_ENVIRONMENT, tmp_path, LUMEN_NUM_THREADS=value)
    assert result["threads"] == expected
    assert any("LUMEN_NUM_THREADS" in w for w in result["warnings"]) == (value == "many")


FORKED_CHILD = textwrap.dedent("""
    import json, os
    import numpy as np
    import lumen
    x = np.linspace(-1, 1, 2_000_001)
    f = lumen.jit(lambda a: np.tanh(a) * 2)
    f(x)                                # the parent's team of threads is started
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"1" if np.allclose(f(x), np.tanh(x) * 2) else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    print(json.dumps({"child_ok": os.read(read, 1) == b"1",
                      "parent_ok": bool(np.allclose(f(x), np.tanh(x) * 2))}))
""")


def test_a_forked_child_runs_its_loops_serially_instead_of_hanging(tmp_path):
    assert run_script(FORKED_CHILD, tmp_path) == {"child_ok": True, "parent_ok": True}


SPIN_SETTING = textwrap.dedent("""
    import json, os
    import numpy as np
    import lumen
    lumen.jit(lambda a: a + 1)(np.zeros(3))
    print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT")}))
""")


@pytest.mark.parametrize("env, used, left", [({}, symbols.GOMP_SPINCOUNT, None),
                                             ({"GOMP_SPINCOUNT": "5"}, "5", "5"),
                                             ({"OMP_WAIT_POLICY": "active"}, "30000000000", None)])
def test_idle_threads_spin_briefly_unless_the_user_chose(tmp_path, env, used, left):
    """lumen's spin count, not libgomp's default, which keeps a core ~10 ms (symbols.py). The
    spin count libgomp read is the one it displays (OMP_DISPLAY_ENV); the environment is left
    as it was, so that another OpenMP runtime loaded later keeps its own defaults."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", SPIN_SETTING], cwd=tmp_path, timeout=300,
                          env={**environment, "LUMEN_CACHE": "0", "PYTHONPATH": ROOT,
                               "OMP_DISPLAY_ENV": "verbose", **env},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"GOMP_SPINCOUNT = '{used}'" in done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["spin"] == left


# -- the fork threshold ----------------------------------------------------------------------

def test_fork_threshold_follows_the_cost_of_waking_the_team():
    assert symbols.fork_threshold(0) == THRESHOLD
    assert symbols.fork_threshold(2_000) == THRESHOLD              # bare metal: a few µs
    assert symbols.fork_threshold(40_000) == 2 * 40_000 * symbols.WORK_PER_NS
    assert symbols.fork_threshold(10**9) == symbols.FORK_WORK_MAX


def test_loops_of_cheap_operations_fork_for_large_data_where_waking_is_slow():
    """Where waking the team is slow (a virtual machine), a loop of cheap operations (its time
    is its memory traffic) forks only from `MEMORY_FORK_BYTES`; an expensive one by its work
    alone. The choice is made at run time: the results are the same bits either way."""
    assert symbols.memory_fork_bytes(2_000) == 0
    assert symbols.memory_fork_bytes(40_000) == symbols.MEMORY_FORK_BYTES
    cheap, costly = lumen.jit(lambda a, b: a * 2 + b), lumen.jit(lambda a, b: np.tanh(a) * b)
    a, b = sample(3 * AXPY_POINTS, "float32"), sample(3 * AXPY_POINTS, "float32", seed=1)
    assert '@"lumen_fork_bytes"' in cheap.lower(a, b).llvm_ir()
    assert '@"lumen_fork_bytes"' not in costly.lower(a, b).llvm_ir()
    for f in (cheap, costly):
        with threads(2):
            forked = f(a, b)
            symbols.fork_bytes.value = symbols.MEMORY_FORK_BYTES
            try:
                np.testing.assert_array_equal(f(a, b), forked, strict=True)
            finally:
                symbols.fork_bytes.value = 0


def test_fork_threshold_is_measured_when_the_runtime_registers(tmp_path):
    """A fresh process: registering the runtime times the team's wake-up and sets the
    threshold generated code reads, within its bounds."""
    script = ("import json, numpy as np, lumen\n"
              "from lumen.codegen_llvm import symbols\n"
              "before = symbols.fork_work.value\n"
              "lumen.jit(lambda x: x + 1)(np.zeros(1))\n"
              "print(json.dumps([before, symbols.fork_work.value]))\n")
    env = dict(os.environ, PYTHONPATH=ROOT, LUMEN_CACHE_DIR=str(tmp_path), LUMEN_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True).stdout
    before, after = json.loads(out.strip().splitlines()[-1])
    assert before == THRESHOLD
    assert THRESHOLD <= after <= symbols.FORK_WORK_MAX


def test_forking_is_decided_against_the_run_time_threshold():
    f = lumen.jit(axpy)
    text = f.lower(sample(10, "float32"), sample(10, "float32")).llvm_ir()
    assert '@"lumen_fork_work"' in text
    a, b = sample(3 * AXPY_POINTS, "float32"), sample(3 * AXPY_POINTS, "float32", seed=1)
    expected = f(a, b)
    calibrated, symbols.fork_work.value = symbols.fork_work.value, symbols.FORK_WORK_MAX
    try:
        with threads(2):
            np.testing.assert_array_equal(f(a, b), expected, strict=True)
    finally:
        symbols.fork_work.value = calibrated
