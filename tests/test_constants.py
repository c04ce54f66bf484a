"""Arrays the traced function closes over, nested jit, and concurrent first calls."""
import threading

import numpy as np

import lumen
from lumen.frontend.trace import LARGE_CONSTANT

from .oracle import assert_same


def test_small_constants_are_compiled_in_large_ones_passed_at_run_time():
    small = np.arange(4.0)
    large = np.random.default_rng(0).standard_normal((LARGE_CONSTANT + 1, 3))

    @lumen.jit
    def f(x):
        return (x @ large.T)[:, :4] + small

    x = np.random.default_rng(1).standard_normal((5, 3))
    assert_same(f(x), (x @ large.T)[:, :4] + small)
    ir = f.lower(x).ir()
    assert "%const0: f64[3,257]" in ir.splitlines()[0]     # large.T, made contiguous
    assert "const value=[0.,1.,2.,3.]" in ir


def test_uniform_constants_become_a_broadcast_scalar():
    ones = np.ones((1000, 3))
    f = lumen.jit(lambda x: x + ones)
    assert_same(f(np.arange(3.0)), np.arange(3.0) + ones)
    ir = f.lower(np.arange(3.0)).ir()
    assert "broadcast_to" in ir and "const0" not in ir


def test_jitted_function_called_inside_another_is_inlined():
    inner = lumen.jit(lambda a: np.tanh(a) * 2)
    outer = lumen.jit(lambda a: inner(a).sum())
    x = np.linspace(-1, 1, 7)
    assert_same(outer(x), (np.tanh(x) * 2).sum(), exact=False)
    assert inner.cache_info()["compiles"] == 0
    assert "tanh" in outer.lower(x).ir()


def test_eight_threads_calling_at_once_compile_once():
    f = lumen.jit(lambda x: np.exp(x).sum(axis=1))
    x = np.random.default_rng(2).standard_normal((50, 20))
    results, errors = [], []
    barrier = threading.Barrier(8)

    def worker():
        try:
            barrier.wait()
            results.append(f(x))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8
    for r in results:
        assert_same(r, np.exp(x).sum(axis=1))
    assert f.cache_info()["compiles"] == 1
