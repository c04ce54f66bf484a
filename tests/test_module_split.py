"""A program compiled in parts, at once (lumen/codegen_llvm/module_split.py, target.py).

The loops (parallel regions, strided copies) leave the entry's module, the glue, for up to five
others; every loop function is defined in exactly one part and declared where it is called;
the glue holds no loop over elements (`parallel=False` functions' and iota's, cumsum's,
integer products' and reductions' loops are regions too) and is optimised by a short pipeline,
the loops by the vectorisers; the parts compile on separate threads,
link into one program that computes what NumPy computes, and give the same object code however
many cores compile them (so disk cache entries agree); the disk cache keeps every part."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm import module_split, parallel, target

from .oracle import assert_same
from .test_disk_cache import program_entries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mlp_step(w1, b1, w2, b2, x, y):
    def loss(params, x, y):
        w1, b1, w2, b2 = params
        return lumen.nn.crossentropy(np.tanh(x @ w1 + b1) @ w2 + b2, y)
    params = (w1, b1, w2, b2)
    value, grads = lumen.value_and_grad(loss)(params, x, y)
    return (value, *(p - np.float32(0.1) * g for p, g in zip(params, grads)))


def numpy_mlp_step(w1, b1, w2, b2, x, y):
    n = x.shape[0]
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    dh = (dz @ w2.T) * (1 - h * h)
    lr = np.float32(0.1)
    return (loss, w1 - lr * (x.T @ dh), b1 - lr * dh.sum(axis=0),
            w2 - lr * (h.T @ dz), b2 - lr * dz.sum(axis=0))


def mlp_inputs(batch=60, n_in=300, hidden=200, n_out=10, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return ((rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(f32),
            np.zeros(hidden, f32),
            (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(f32),
            np.zeros(n_out, f32), rng.standard_normal((batch, n_in)).astype(f32),
            rng.integers(0, n_out, batch))


def defined(text):
    return re.findall(r'^define [^@]*@"([^"]+)"', text, re.M)


def declared(text):
    return re.findall(r'^declare [^@]*@"([^"]+)"', text, re.M)


@pytest.fixture(scope="module")
def mlp_ir():
    return lumen.jit(mlp_step).lower(*mlp_inputs()).llvm_ir()


LOOP_NAMES = (parallel.REGION_NAME, parallel.PLAIN_REGION_NAME, parallel.COPY_NAME)


def test_every_region_is_defined_in_exactly_one_part(mlp_ir):
    parts = module_split.split(mlp_ir)
    assert 2 <= len(parts) <= 6
    assert [p.glue for p in parts] == [True] + [False] * (len(parts) - 1)
    regions = [n for n in defined(mlp_ir) if n.startswith(parallel.REGION_NAME)]
    assert len(regions) >= 8
    definitions = [n for part in parts for n in defined(part.text)]
    assert sorted(definitions) == sorted(defined(mlp_ir))         # nothing lost or doubled
    assert "lumen_entry" in defined(parts[0].text)
    moved = [n for part in parts[1:] for n in defined(part.text)]
    assert set(moved) == {n for n in defined(mlp_ir) if n.startswith(LOOP_NAMES)}
    assert set(moved) <= set(declared(parts[0].text))               # the entry still calls them
    for part in parts[1:]:
        assert 'define internal' not in part.text                   # linked by name
        assert "kept." not in part.text and "lumen_entry" not in part.text


def test_parts_balance_the_estimated_work(mlp_ir):
    parts = module_split.split(mlp_ir)
    works = sorted((p.work for p in parts), reverse=True)
    total = sum(works)
    two_cores = [works[0], 0.0]
    for w in works[1:]:                                             # what the pool does
        two_cores[two_cores.index(min(two_cores))] += w
    assert max(two_cores) <= 0.6 * total


def test_a_small_program_is_its_glue_and_its_loops():
    text = lumen.jit(lambda x: np.exp(x) + 1).lower(np.ones(3)).llvm_ir()
    glue, loops = module_split.split(text)
    assert glue.glue and not loops.glue
    assert defined(loops.text) == ["lumen_region"]


def test_identical_loops_are_compiled_once():
    """Two kernels of the same code over different arrays (a BiLSTM's two directions, here
    two layers of the same shape) are one loop function, which the entry calls for both."""
    def two_layers(a, b):
        return np.tanh(a) * 2 + 1, np.tanh(b) * 2 + 1
    a, b = np.linspace(-2, 2, 12).reshape(3, 4), np.linspace(1, 3, 12).reshape(3, 4)
    text = lumen.jit(two_layers).lower(a, b).llvm_ir()
    regions = [n for n in defined(text) if n.startswith(parallel.REGION_NAME)]
    assert len(regions) == 2
    glue, loops = module_split.split(text)
    (region,) = defined(loops.text)
    other, = set(regions) - {region}
    assert f'@"{region}"' in glue.text and f'@"{other}"' not in glue.text   # calls the one
    for got, want in zip(lumen.jit(two_layers)(a, b), two_layers(a, b)):
        assert_same(got, want)


def test_a_program_without_loops_stays_one_module():
    text = lumen.jit(lambda a, b: a * b + 1).lower(np.float64(2), np.float64(3)).llvm_ir()
    (part,) = module_split.split(text)
    assert part.text == text and part.glue


def _loops_everywhere(x, a, b):
    return (np.cumsum(x, axis=0) + np.arange(x.shape[1]), np.tanh(x).sum(axis=0), a @ b,
            x.T.astype(np.float32), (x * x).sum())


@pytest.mark.parametrize("parallel", [True, False])
def test_no_loop_over_elements_stays_in_the_glue(parallel):
    """Kernels of a ``parallel=False`` function, iota, cumsum, an integer product, a
    reduction's accumulator, a whole reduction and a converting copy all run in loop
    functions; the glue's own
    loops are none here. The loops are vectorised all the same."""
    f = lumen.jit(_loops_everywhere, parallel=parallel)
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((37, 300)), rng.integers(-5, 5, (7, 9)),
            rng.integers(-5, 5, (9, 4)))
    low = f.lower(*args)
    glue = module_split.split(low.llvm_ir())[0]
    assert glue.glue
    entry = glue.text[glue.text.index('@"lumen_entry"'):]
    entry = entry[:entry.index("\n}")]
    assert set(re.findall(r"^([a-z]+[0-9]*)\.head:", entry, re.M)) <= {"merge"}
    assert re.search(r"\bv\w+pd\s+%zmm|\bv\w+pd\s+%ymm", low.asm())
    for got, want in zip(f(*args), _loops_everywhere(*args)):
        assert_same(got, want, rtol=1e-12)


def test_loops_that_follow_indices_take_the_short_pipeline():
    """A gather's, a scatter's and iota's loops are regions of their own kind, compiled together
    in one part by the glue's passes (the vectorisers widen nothing there) at the loops' code
    generation level; the vectorised kernels stay apart. The program computes what NumPy does,
    and an index out of bounds still raises."""
    def f(x, rows, cols, v):
        placed = np.zeros_like(x)
        placed[rows, cols] = v
        return x[rows, cols] * 2, np.arange(x.shape[0]) + x.shape[1], placed, np.tanh(x)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 30))
    rows, cols = rng.permutation(40)[:25], rng.integers(0, 30, 25)
    v = rng.standard_normal(25)
    parts = module_split.split(lumen.jit(f).lower(x, rows, cols, v).llvm_ir())
    plain = [p for p in parts if p.pipeline == "plain"]
    assert len(plain) == 1 and parts[-1] is plain[0]
    assert len(defined(plain[0].text)) == 3
    assert all(n.startswith(parallel.PLAIN_REGION_NAME) for n in defined(plain[0].text))
    loops = [n for p in parts if p.pipeline == "loops" for n in defined(p.text)]
    assert loops and all(n.startswith(parallel.REGION_NAME) for n in loops)
    assert target.CODEGEN_LEVEL["plain"] == target.CODEGEN_LEVEL["loops"]
    want = np.zeros_like(x)
    want[rows, cols] = v
    for got, expected in zip(lumen.jit(f)(x, rows, cols, v),
                             (x[rows, cols] * 2, np.arange(40) + 30, want, np.tanh(x))):
        assert_same(got, expected, rtol=1e-12)
    with pytest.raises(IndexError, match="out of bounds"):
        lumen.jit(f)(x, rows, cols + 30, v)


HANDMADE = '''; ModuleID = "m"
target triple = "unknown-unknown-unknown"
target datalayout = ""

define i64 @"lumen_entry"(i64* %".1")
{
entry:
  call void @"lumen_region"(i8* null)
  call void @"lumen_region.1"(i8* null)
  %".2" = load i64, i64* @"kept.n"
  ret i64 %".2"
}

@"kept.n" = internal global i64 0
declare double @"llvm.exp.f64"(double %".1")
@"const0" = private constant [2 x double] [double 1.0, double 2.0], align 64
define internal void @"lumen_region"(i8* %".1")
{
body:
  %".2" = getelementptr [2 x double], [2 x double]* @"const0", i64 0, i64 1
  %".3" = load double, double* %".2"
  %".4" = call double @"llvm.exp.f64"(double %".3")
  ret void
}

define internal void @"lumen_region.1"(i8* %".1")
{
body:
  store i64 1, i64* @"kept.n"
  ret void
}
'''


def test_what_a_region_may_take_along(monkeypatch):
    """Declarations and private constants are copied into the region's part; a region that
    writes a global of the module stays with it."""
    monkeypatch.setattr(module_split, "MIN_PART_WORK", 1)
    first, second = module_split.split(HANDMADE)
    assert defined(second.text) == ["lumen_region"]
    assert '@"const0" = private constant' in second.text and "llvm.exp.f64" in second.text
    assert defined(first.text) == ["lumen_entry", "lumen_region.1"]
    assert "lumen_region" in declared(first.text)
    assert not first.glue and not second.glue       # the loop left behind is optimised as one
    objects = target.compile_objects(HANDMADE)
    assert len(objects) == 2
    loaded = target.LoadedModule(objects)
    assert loaded.address("lumen_region") and loaded.address("lumen_entry")


def test_the_object_code_does_not_depend_on_the_cores(mlp_ir, monkeypatch):
    monkeypatch.setattr(target.os, "sched_getaffinity", lambda pid: {0})
    one_core = target.compile_objects(mlp_ir)
    monkeypatch.setattr(target.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert target.compile_objects(mlp_ir) == one_core
    assert len(one_core) == len(module_split.split(mlp_ir))


def test_parts_compile_on_threads_of_their_own(mlp_ir, monkeypatch):
    seen, compile_part = set(), target._compile_part

    def recording(text, pipeline):
        seen.add(threading.current_thread().name)
        return compile_part(text, pipeline)
    monkeypatch.setattr(target, "_compile_part", recording)
    monkeypatch.setattr(target.os, "sched_getaffinity", lambda pid: {0, 1})
    target.compile_objects(mlp_ir)
    assert len(seen) == 2 and all(name.startswith("lumen-compile") for name in seen)


def test_an_error_in_a_part_is_raised(monkeypatch):
    monkeypatch.setattr(module_split, "MIN_PART_WORK", 1)
    broken = HANDMADE.replace('call double @"llvm.exp.f64"(double %".3")',
                              'call double @"llvm.exp.f64"(i64 %".3")')
    monkeypatch.setattr(target.os, "sched_getaffinity", lambda pid: {0, 1})
    with pytest.raises(RuntimeError, match="parsing error"):
        target.compile_objects(broken)


def test_the_linked_parts_compute_the_training_step(monkeypatch):
    inputs = mlp_inputs(seed=1)
    step = lumen.jit(mlp_step, cache=False)
    for got, want in zip(step(*inputs), numpy_mlp_step(*inputs)):
        assert_same(got, want, rtol=2e-4, atol=1e-6)


def test_the_disk_cache_keeps_every_part(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMEN_CACHE", "1")
    monkeypatch.setenv("LUMEN_CACHE_DIR", str(tmp_path))
    inputs = mlp_inputs(seed=2)
    first = lumen.jit(mlp_step)
    expected = first(*inputs)
    (key,) = program_entries(tmp_path)
    meta = json.loads((tmp_path / (key + ".json")).read_text())
    assert len(meta["object_sizes"]) >= 2
    assert sum(meta["object_sizes"]) == (tmp_path / (key + ".o")).stat().st_size
    again = lumen.jit(mlp_step)
    for got, want in zip(again(*inputs), expected):
        np.testing.assert_array_equal(got, want)
    assert again.cache_info()["disk_hits"] == 1 and again.cache_info()["compiles"] == 0


def test_without_llvmlites_unwrapped_library_parts_compile_under_its_lock(mlp_ir, monkeypatch):
    """Where llvmlite does not expose its library unwrapped, the same calls go through its
    lock: the same object code, one part at a time."""
    from llvmlite.binding import ffi
    expected = target.compile_objects(mlp_ir)
    monkeypatch.setattr(target, "_unlocked_library", lambda: ffi.lib)
    monkeypatch.setattr(target.os, "sched_getaffinity", lambda pid: {0, 1})
    assert target.compile_objects(mlp_ir) == expected


RUNTIME_SCRIPT = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import lumen
    from lumen.codegen_llvm import symbols

    register, threads = symbols.register_symbols, []

    def recording():
        threads.append(threading.current_thread() is threading.main_thread())
        if sys.argv[1] == "fail" and len(threads) == 1:
            raise OSError("no runtime here")
        register()
    symbols.register_symbols = recording
    f = lumen.jit(lambda x: np.tanh(x) * 2)
    try:
        ok = np.allclose(f(np.ones(3)), np.tanh(np.ones(3)) * 2)
    except OSError as e:
        ok = str(e)
    print(ok, threads)
""")


@pytest.mark.parametrize("mode", ["ok", "fail"])
def test_the_runtime_is_linked_on_another_thread_while_a_program_compiles(tmp_path, mode):
    """A failure there is not lost: linking the program tries again (and raises what that
    attempt raises)."""
    script = tmp_path / "script.py"
    script.write_text(RUNTIME_SCRIPT)
    run = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, LUMEN_CACHE="0", PYTHONPATH=ROOT))
    expected = "True [False]" if mode == "ok" else "True [False, True]"
    assert run.stdout.strip() == expected, run.stderr


SMALL_FIRST_SCRIPT = textwrap.dedent("""
    import numpy as np
    import lumen
    from lumen.codegen_llvm import symbols

    events, compiled = [], []
    register, runtime_objects = symbols.register_symbols, symbols.runtime_objects

    def registering():
        events.append("register")
        register()

    def compiling(name, module_ir, passes=True):
        compiled.append(name)
        if name.startswith("small matrix products"):
            events.append("small products")
        return runtime_objects(name, module_ir, passes)
    symbols.register_symbols, symbols.runtime_objects = registering, compiling
    f = lumen.jit(lambda a, b: np.tanh(a @ b))
    a, b = np.linspace(0, 1, 35).reshape(5, 7), np.linspace(-1, 1, 21).reshape(7, 3)
    ok = np.allclose(f(a, b), np.tanh(a @ b))
    small = [n for n in compiled if n.startswith("small matrix products")]
    print(ok, events, small, sorted(symbols._small_linked), symbols._small_objects)
""")


def test_the_small_products_compile_before_the_runtime_registers_its_symbols(tmp_path):
    """Compiling them needs no symbols: the thread that links the runtime starts with their
    ~0.08 s of LLVM, whose object code the linker then takes (compiled once)."""
    script = tmp_path / "script.py"
    script.write_text(SMALL_FIRST_SCRIPT)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, LUMEN_CACHE="0", PYTHONPATH=ROOT))
    assert run.stdout.strip() == ("True ['small products', 'register'] "
                                  "['small matrix products (float64)'] ['d'] {}"), run.stderr


def _scatter_into_transpose(x, i, v):
    z = x.T.copy()
    z[i] = v
    return z * 2


def test_a_region_calling_a_strided_copy_moves_with_it():
    """A scatter copies its operand then writes the updates, in one loop function; where the
    operand is strided the copy is a call to a strided copy function, which moves out of the
    glue too (declared where it is called)."""
    f = lumen.jit(_scatter_into_transpose)
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((40, 30)), np.array([3, -1, 7]), rng.standard_normal((3, 40)))
    text = f.lower(*args).llvm_ir()
    parts = module_split.split(text)
    assert parts[0].glue and all(not p.glue for p in parts[1:])
    callers = [p for p in parts[1:] if re.search(r'call void @"lumen\.copy\.', p.text)]
    assert callers
    assert_same(f(*args), _scatter_into_transpose(*args), rtol=1e-15)
