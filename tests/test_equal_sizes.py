"""Sizes equal while tracing that no check proves equal (a slice's length against another
array's) are assumed equal on a guard (`lumen.ir.equal_sizes`): the kernels reading them are
dense loops, in loop bodies too, and a call where they differ is compiled again."""
from __future__ import annotations

import re

import numpy as np
import pytest

import lumen

#: A size tested for 1 at run time to choose a stride of 0 (a loop the vectoriser leaves alone).
SIZE_IS_ONE = r'icmp eq i64 %"[.\w]+", 1\n\s+%"[.\w]+" = select\s+i1 %"[.\w]+", i64 0'


def gates(z, c):
    """An LSTM cell's update from its pre-activations z (4h) and its state c (h)."""
    h = c.shape[0]
    i, f, o = (lumen.nn.sigmoid(z[k * h:(k + 1) * h]) for k in range(3))
    c = f * c + i * np.tanh(z[3 * h:])
    return o * np.tanh(c), c


def gates_numpy(z, c):
    h = c.shape[0]
    i, f, o = (1 / (1 + np.exp(-z[k * h:(k + 1) * h])) for k in range(3))
    c = f * c + i * np.tanh(z[3 * h:])
    return o * np.tanh(c), c


def _args(h, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(4 * h).astype(dtype), rng.standard_normal(h).astype(dtype)


def test_slice_lengths_are_guarded_equal_to_the_state_size():
    z, c = _args(50, np.float32)
    lowered = lumen.jit(gates).lower(z, c)
    guards = lowered.graph.guards
    assert guards and all(d.op == "sub" and v == 0 for d, v in guards.items())
    graph = lowered.optimized_graph()
    spaces = {tuple(k.params["space"]) for k in graph.nodes if k.op == "kernel"}
    assert len(spaces) == 1, spaces             # every kernel runs over c's size
    assert not re.findall(SIZE_IS_ONE, lowered.llvm_ir())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h", [2, 7, 64, 300])
def test_gates_match_numpy(dtype, h):
    z, c = _args(h, dtype, seed=h)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for got, want in zip(lumen.jit(gates)(z, c), gates_numpy(z.astype(float), c.astype(float))):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_a_real_broadcast_compiles_again():
    """The second call's slice has length 1 against c's 3 (NumPy broadcasts it): the guard
    fails, in the compiled code itself on the fast path, and lumen traces again."""
    f = lumen.jit(lambda z, c: np.tanh(z[2:5]) * c)
    c = np.array([1.0, 2.0, 3.0])
    for n in (8, 8, 3, 3, 8):
        z = np.linspace(-1, 1, n)
        np.testing.assert_allclose(f(z, c), np.tanh(z[2:5]) * c, rtol=1e-15)
    assert f._stats["compiles"] == 2


def test_guarded_function_keeps_the_fast_call_path():
    f = lumen.jit(gates)
    z, c = _args(16, np.float64)
    f(z, c)
    hits = f._fast_hits
    f(z, c)
    f(*_args(16, np.float64, seed=1))
    assert f._fast_hits == hits + 2


def test_scan_body_kernels_are_dense_loops():
    """An LSTM over a sequence: the cell's kernels inside the scan body use the unified
    sizes too (the prologue proves them before any step runs)."""
    def lstm(xs, wx, wh, b):
        hdim = wh.shape[0]

        def cell(carry, xw):
            h, c = carry
            h, c = gates(xw + h @ wh, c)
            return (h, c), h
        h0 = np.zeros(hdim, xs.dtype)
        _, hs = lumen.scan(cell, (h0, h0), xs @ wx + b)
        return hs

    rng = np.random.default_rng(3)
    n, d, hdim = 5, 6, 8
    args = (rng.standard_normal((n, d)), rng.standard_normal((d, 4 * hdim)) / 3,
            rng.standard_normal((hdim, 4 * hdim)) / 3, rng.standard_normal(4 * hdim) / 10)
    f = lumen.jit(lstm)
    assert not re.findall(SIZE_IS_ONE, f.lower(*args).llvm_ir())
    xs, wx, wh, b = args
    h = c = np.zeros(hdim)
    want = []
    for x in xs @ wx + b:
        h, c = gates_numpy(x + h @ wh, c)
        want.append(h)
    np.testing.assert_allclose(f(*args), np.array(want), rtol=1e-12)


def test_slow_path_leaves_the_guards_to_the_native_code():
    """A call with a dict of arrays (no fast path) runs the specialisation whose native code
    accepts it, without testing its guards again in Python; a real broadcast still compiles
    again."""
    f = lumen.jit(lambda p: np.tanh(p["z"][2:5]) * p["c"])
    z, c = np.linspace(-1, 1, 8), np.array([1.0, 2.0, 3.0])
    f({"z": z, "c": c})
    (entry,) = [e for entries in f._cache.values() for e in entries]
    assert entry.guards and entry.native_guards
    tested_in_python = entry._sizes_hold

    def refuse(shapes):
        raise AssertionError("guards tested in Python on a hit")
    entry._sizes_hold = refuse
    np.testing.assert_allclose(f({"z": 2 * z, "c": c}), np.tanh(2 * z[2:5]) * c, rtol=1e-15)
    entry._sizes_hold = tested_in_python
    z = np.linspace(-1, 1, 3)                       # z[2:5] has length 1: it broadcasts
    np.testing.assert_allclose(f({"z": z, "c": c}), np.tanh(z[2:5]) * c, rtol=1e-15)
    assert f._stats["compiles"] == 2 and f._stats["memory_hits"] == 1
