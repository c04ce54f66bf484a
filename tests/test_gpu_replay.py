"""On a GPU: lumen's own cuBLAS products (`lumen.runtime.gpu_blas`) against NumPy in every
layout, and calls replayed as CUDA graphs (`lumen.runtime.gpu_replay`) against the CPU
backend: fresh results every call, new argument values and layouts taken, errors raised, and
functions the host must steer (``while``, ``cond``) never captured."""
from __future__ import annotations

import numpy as np
import pytest

import lumen
from lumen.runtime import gpu_replay
from lumen.runtime.gpu_blas import OP_N, Blas, operand
from lumen.runtime.gpu_replay import Replays, pays, reads_on_host

from .test_ptx import FUNCTIONS, _host, _leaves, _mlp_step, init_mlp, needs_gpu

RNG = np.random.default_rng(7)


def _replays(f):
    """The replays of jitted ``f``'s GPU specialisations, by argument shapes."""
    found = {}
    for entries in f._cache.values():
        for entry in entries:
            if entry.executable.replays is not None:
                found.update(entry.executable.replays.replays)
    return found


def _why(f):
    """Why ``f``'s calls were not captured, if they were not."""
    return [entry.executable.replays.not_captured for entries in f._cache.values()
            for entry in entries if entry.executable.replays is not None]


def test_replaying_pays_for_many_nodes_on_little_data_only():
    assert pays(60, 22_000_000)                 # a training step: 60 nodes, 22 MB moved
    assert not pays(1, 3 * 4 * 2**24)            # one elementwise kernel over 2**24 elements
    assert not pays(0, 0)


@pytest.mark.parametrize("layout", ["row-major", "column-major", "row slice", "column slice",
                                    "strided rows", "reversed", "one row", "one column"])
def test_blas_operands_are_read_where_they_lie(layout):
    """`gpu_blas.operand`'s (operation, leading dimension) read every element of the operand
    where it lies (NumPy stands in for CuPy: the choice is only strides)."""
    from numpy.lib.stride_tricks import as_strided
    m = RNG.standard_normal((12, 10))
    x = {"row-major": m, "column-major": np.asfortranarray(m), "row slice": m[:, 2:9],
         "column slice": np.asfortranarray(m)[1:11], "strided rows": m[::3],
         "reversed": m[::-1], "one row": m[3:4], "one column": m[:, 4:5]}[layout]
    op, ld, y = operand(np, x)
    size = y.itemsize
    read = as_strided(y, x.shape, (ld * size, size) if op == OP_N else (size, ld * size))
    np.testing.assert_array_equal(read, x)
    assert ld >= max(1, x.shape[1] if op == OP_N else x.shape[0])
    assert (y is x) == (layout != "reversed")


class _CuPy:
    """What `Replays` reads of CuPy: the current device's number."""
    class cuda:
        class Device:
            id = 0


class _Executable:
    cp = _CuPy


def test_replays_capture_the_second_call_with_a_shape_and_remember_declined_ones(monkeypatch):
    """The choice alone, with the capture (which needs a GPU) recorded instead of made."""
    captured = []
    monkeypatch.setattr(gpu_replay, "Replay", lambda ex, arrays: captured.append(arrays) or
                        len(captured))
    replays = Replays(_Executable())
    step, wide = [np.ones((4, 3))], [np.ones(2**22)]
    assert replays.get(step) is None                    # the first call runs eagerly ...
    replays.observe(step, 40, [np.ones(3)])             # ... and is measured
    assert replays.get(step) == 1 and replays.get(step) == 1 and len(captured) == 1
    assert replays.get([np.ones((5, 3))]) is None       # other shapes: their own first call
    replays.observe(wide, 1, [np.ones(2**22)])          # one node over 64 MB: never pays
    assert replays.get(wide) is None and replays.get(wide) is None
    replays.observe(wide, 1, [np.ones(2**22)])
    assert replays.get(wide) is None and len(captured) == 1

    def refused(ex, arrays):
        raise NotImplementedError("not during a capture")
    monkeypatch.setattr(gpu_replay, "Replay", refused)
    other = [np.ones((6, 3))]
    replays.observe(other, 40, [np.ones(3)])
    assert replays.get(other) is None and "not during a capture" in str(replays.not_captured)
    for n in range(gpu_replay.MAX_SHAPES + 5):          # ever new shapes: bounded memory
        replays.observe([np.ones((n, 2))], 40, [])
    assert len(replays.first_calls) + len(replays.declined) <= gpu_replay.MAX_SHAPES
    assert replays.get(step) == 1                       # a capture is kept


def test_graphs_the_host_steers_are_never_captured():
    steer = {"while": lambda x: lumen.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x),
             "cond": lambda x: lumen.cond(x.sum() > 0, lambda a: a + 1, lambda a: a - 1, x)}
    x = np.ones(3)
    for name, fn in steer.items():
        assert reads_on_host(lumen.jit(fn).lower(x).optimized_graph()), name
    assert not reads_on_host(lumen.jit(lambda a: np.tanh(a) @ a.T).lower(x[None]).optimized_graph())


# -- on a GPU --------------------------------------------------------------------------------------

def _in_layout(cupy, layout, shape, dtype):
    """A device array of ``shape`` laid out as ``layout`` says, and its values."""
    r, c = shape
    make = {
        "row-major": lambda: cupy.asarray(RNG.standard_normal((r, c))),
        "column-major": lambda: cupy.asarray(RNG.standard_normal((c, r))).T,
        "row slice": lambda: cupy.asarray(RNG.standard_normal((r, c + 3)))[:, 2:c + 2],
        "column slice": lambda: cupy.asarray(RNG.standard_normal((c + 3, r)))[1:c + 1].T,
        "strided rows": lambda: cupy.asarray(RNG.standard_normal((2 * r, c)))[::2],
        "reversed": lambda: cupy.asarray(RNG.standard_normal((r, c)))[::-1],
    }[layout]
    x = make().astype(dtype, copy=False)
    return x, x.get()


LAYOUTS = ["row-major", "column-major", "row slice", "column slice", "strided rows", "reversed"]


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout_a", LAYOUTS)
@pytest.mark.parametrize("layout_b", LAYOUTS)
def test_gpu_blas_products_match_numpy(dtype, layout_a, layout_b):
    """In place for row- and column-major operands with any leading stride, a copy else."""
    import cupy
    da, a = _in_layout(cupy, layout_a, (13, 8), dtype)
    db, b = _in_layout(cupy, layout_b, (8, 11), dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(Blas(cupy)(da, db).get(), a @ b, rtol=rtol, atol=rtol)


@needs_gpu
def test_gpu_blas_vectors_and_empty_products():
    import cupy
    blas = Blas(cupy)
    m = RNG.standard_normal((5, 4))
    v = RNG.standard_normal(5)
    dm, dv = cupy.asarray(m), cupy.asarray(v)
    np.testing.assert_allclose(blas(dv, dm).get(), v @ m, rtol=1e-12)
    np.testing.assert_allclose(blas(dm.T, dv).get(), m.T @ v, rtol=1e-12)
    np.testing.assert_allclose(blas(dv[::-1], dm).get(), v[::-1] @ m, rtol=1e-12)
    assert blas(dv, dv).shape == () and np.isclose(float(blas(dv, dv)), v @ v)
    np.testing.assert_array_equal(blas(dm[:, :0], dm[:0]).get(), np.zeros((5, 4)))
    assert blas(dm[:0], dm.T).shape == (0, 5)
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(blas(cupy.asarray(ints), cupy.asarray(ints).T).get(),
                                  ints @ ints.T)


@needs_gpu
def test_gpu_training_steps_are_replayed_and_match_the_cpu():
    """Six chained SGD steps: the first runs eagerly, the second is captured, the rest are
    replays; each matches the CPU's step, and no step's results change after it returned."""
    import cupy
    params = init_mlp(RNG, (784, 64, 10))
    gpu_step, cpu_step = lumen.jit(_mlp_step, device="gpu"), lumen.jit(_mlp_step)
    on_device = {k: cupy.asarray(v) for k, v in params.items()}
    kept = []
    for step in range(6):
        x, labels = RNG.uniform(0, 1, (16, 784)), RNG.integers(0, 10, 16)
        loss_gpu, on_device = gpu_step(on_device, cupy.asarray(x), cupy.asarray(labels))
        loss, params = cpu_step(params, x, labels)
        np.testing.assert_allclose(_host(loss_gpu), loss, rtol=1e-10)
        for k in params:
            np.testing.assert_allclose(_host(on_device[k]), params[k], rtol=1e-10, atol=1e-13)
        kept.append((loss_gpu, on_device["w1"], loss, params["w1"]))
    assert len(_replays(gpu_step)) == 1 and all(_replays(gpu_step).values()), _why(gpu_step)
    for loss_gpu, w_gpu, loss, w in kept:
        np.testing.assert_allclose(_host(loss_gpu), loss, rtol=1e-10)
        np.testing.assert_allclose(_host(w_gpu), w, rtol=1e-10, atol=1e-13)


@needs_gpu
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_gpu_functions_replayed_match_cpu(name):
    """Every function of the GPU suite called four times (captured on the second call)."""
    fn, args = FUNCTIONS[name]
    expected = _leaves(lumen.jit(fn)(*args))
    f = lumen.jit(fn, device="gpu")
    for _ in range(4):
        got = _leaves(f(*args))
        for g, e in zip(got, expected):
            np.testing.assert_allclose(_host(g), e, rtol=1e-5, atol=1e-6)


@needs_gpu
def test_gpu_replays_take_each_calls_values_and_layouts():
    import cupy
    f = lumen.jit(lambda x, y, s: (np.tanh(x) * y + s, (x * y).sum(0), x), device="gpu")
    base = RNG.standard_normal((6, 8))
    results = []
    for k in range(5):
        a = base + k
        x = cupy.asarray(a)[:, ::2] if k % 2 else cupy.asarray(a[:, ::2])   # strided, or not
        y = a[::-1, ::2] if k < 3 else cupy.asarray(a[::-1, ::2])          # NumPy, or CuPy
        got = f(x, y, 0.5 * k)
        xs, ys = _host(x), _host(cupy.asarray(y))
        np.testing.assert_allclose(_host(got[0]), np.tanh(xs) * ys + 0.5 * k, rtol=1e-12)
        np.testing.assert_allclose(_host(got[1]), (xs * ys).sum(0), rtol=1e-12)
        np.testing.assert_array_equal(_host(got[2]), xs)
        assert got[2] is not x
        results.append((got, xs))
    assert any(_replays(f).values()), _why(f)
    for got, xs in results:                      # later calls left earlier results alone
        np.testing.assert_array_equal(_host(got[2]), xs)


@needs_gpu
def test_gpu_replays_raise_the_errors_of_their_call():
    gather = lumen.jit(lambda x, i: x[i] * 2, device="gpu")
    x = np.arange(3.0)
    for _ in range(3):
        np.testing.assert_array_equal(_host(gather(x, np.array([2, 0]))), [4.0, 0.0])
    assert any(_replays(gather).values()), _why(gather)
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        gather(x, np.array([0, 3]))
    np.testing.assert_array_equal(_host(gather(x, np.array([1, -1]))), [2.0, 4.0])
    grad = lumen.jit(lumen.grad(lambda x, i: (x[i] ** 2).sum()), device="gpu")
    for _ in range(3):                            # a scatter: the gradient of x[i]
        np.testing.assert_array_equal(_host(grad(x, np.array([2, 2]))), [0.0, 0.0, 8.0])
    assert any(_replays(grad).values()), _why(grad)
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        grad(x, np.array([0, -4]))
    power = lumen.jit(lambda n, k: n ** k, device="gpu")
    for _ in range(3):
        np.testing.assert_array_equal(_host(power(np.arange(3), np.array([1, 2, 2]))), [0, 1, 4])
    with pytest.raises(ValueError, match="negative integer powers"):
        power(np.arange(3), np.array([1, -1, 2]))
    np.testing.assert_array_equal(_host(power(np.arange(3), np.array([2, 2, 2]))), [0, 1, 4])


@needs_gpu
def test_gpu_functions_the_host_steers_run_eagerly():
    f = lumen.jit(lambda x: lumen.cond(x.sum() > 0, lambda a: a + 1, lambda a: a - 1, x),
                  device="gpu")
    for sign in (1, 1, -1, -1, 1):
        np.testing.assert_array_equal(_host(f(sign * np.ones(3))), sign * np.ones(3) + sign)
    assert not _replays(f)
