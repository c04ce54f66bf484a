"""Sibling fusion of a backward product ``d @ W.T`` and an update of W
(``lumen/passes/matvec_siblings.py``, lowered by ``codegen_llvm/lower/kernel_matvec.py``): which
pairs merge into one `kernel_matvec`, that the merged graph still runs every value after its
operands, and the fused loop's results against NumPy (float32 and float64, rows longer than a
block, strided and in-place operands, several threads)."""
from __future__ import annotations

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm.lower.kernel_matvec import ROW_BLOCK
from lumen.codegen_llvm.profiling import describe
from lumen.ir.interpret import interpret
from lumen.passes.matvec_siblings import fuse_matvec_siblings

from .oracle import assert_same

LR = 0.01


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def sgd_layer(w, h, d):
    """One dense layer's backward step at batch 1: the update of W and the product passed down."""
    return w - w.dtype.type(LR) * (h.T @ d), d @ w.T


def fused(fn, *args):
    """The graph the CPU backend lowers for ``fn(*args)``."""
    return fuse_matvec_siblings(lumen.jit(fn).lower(*args).optimized_graph())


def ops(graph):
    return [n.op for n in graph.nodes]


def assert_product_close(got, v, w):
    """``v @ w.T`` within float rounding of a dot product: |error| <= 4 eps (|v| @ |w|.T)."""
    exact = v.astype(np.float64) @ w.astype(np.float64).T
    bound = 4 * np.finfo(w.dtype).eps * (np.abs(v).astype(np.float64) @ np.abs(w).T) * w.shape[1]
    assert got.dtype == w.dtype and got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= bound + np.finfo(w.dtype).tiny)


def test_update_and_backward_product_become_one_node():
    args = rand(30, 20), rand(1, 30, seed=1), rand(1, 20, seed=2)
    graph = fused(sgd_layer, *args)
    assert ops(graph).count("kernel_matvec") == 1
    assert "matmul" not in ops(graph) and "transpose" in ops(graph)   # h.T stays a view
    (node,) = [n for n in graph.nodes if n.op == "kernel_matvec"]
    assert node.inputs[node.params["matrix"]] is graph.inputs[0]
    assert node.inputs[-1] is graph.inputs[2]
    # the interpreter runs the fused node as the two it replaces
    want = sgd_layer(*args)
    for got, expected in zip(interpret(graph, list(args)), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_mlp_step_fuses_every_hidden_layer_and_keeps_operand_order():
    """A 3-layer MLP step at batch 1: the two layers whose input gradient is needed fuse; the
    first layer's update (no product below it) stays a kernel; every node runs after its
    operands' producers."""
    def loss(params, x, y):
        w1, w2, w3 = params
        z = np.tanh(np.tanh(x @ w1) @ w2) @ w3
        return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(x.shape[0]), y])

    def step(params, x, y):
        return tuple(p - LR * g for p, g in zip(params, lumen.grad(loss)(params, x, y)))
    params = (rand(12, 10), rand(10, 8, seed=1), rand(8, 3, seed=2))
    x, y = rand(1, 12, seed=3), np.array([1])
    graph = fused(step, params, x, y)
    assert ops(graph).count("kernel_matvec") == 2
    defined = set(graph.inputs)
    for node in graph.nodes:
        assert all(v in defined for v in node.inputs), node
        defined.update(node.outputs)
    got = lumen.jit(step)(params, x, y)
    grads = [np.zeros_like(p) for p in params]
    eps = 1e-6
    for k, p in enumerate(params):       # central differences of the loss, element by element
        for idx in np.ndindex(p.shape):
            hi = [q.copy() for q in params]
            lo = [q.copy() for q in params]
            hi[k][idx] += eps
            lo[k][idx] -= eps
            grads[k][idx] = (loss(hi, x, y) - loss(lo, x, y)) / (2 * eps)
    for g, p, want in zip(got, params, grads):
        np.testing.assert_allclose(g, p - LR * want, rtol=1e-7, atol=1e-9)


def test_batches_and_dependent_updates_are_left_alone():
    w = rand(30, 20)
    # more than one row: a matrix product (BLAS's gemm) is not a pass over W
    assert "kernel_matvec" not in ops(fused(sgd_layer, w, rand(4, 30, seed=1), rand(4, 20, seed=2)))

    def uses_product(w, d):            # the update needs the product: they cannot be siblings
        back = d @ w.T
        return w - LR * (back.T @ d)
    graph = fused(uses_product, w, rand(1, 20, seed=2))
    assert "kernel_matvec" not in ops(graph) and "matmul" in ops(graph)

    def product_needs_update(w, d):     # the product reads the updated matrix
        new = w - LR * w
        return new, d @ new.T
    assert "kernel_matvec" not in ops(fused(product_needs_update, w, rand(1, 20, seed=2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, cols", [(1, 1), (5, 0), (0, 3), (7, 5), (33, ROW_BLOCK + 9), (300, 2 * ROW_BLOCK)])
def test_results_against_numpy(dtype, rows, cols):
    w, h, d = rand(rows, cols, dtype=dtype), rand(1, rows, dtype=dtype, seed=1), \
        rand(1, cols, dtype=dtype, seed=2)
    new, back = lumen.jit(sgd_layer)(w, h, d)
    want_new, _ = sgd_layer(w, h, d)
    assert_same(new, want_new)
    assert_product_close(back, d, w)


@pytest.mark.parametrize("parallel", [True, False])
def test_strided_matrix_and_threads(parallel):
    big = rand(600, 2 * 700, dtype=np.float32)
    w = big[:, ::2]                      # a strided view: every row read with a stride
    h, d = rand(1, 600, dtype=np.float32, seed=1), rand(1, 700, dtype=np.float32, seed=2)
    new, back = lumen.jit(sgd_layer, parallel=parallel)(w, h, d)
    assert_same(new, sgd_layer(w, h, d)[0])
    assert_product_close(back, d, w)


def test_update_written_over_a_dying_intermediate():
    """The updated matrix may take the buffer of an intermediate read at the same positions
    (``exp(w)``, too costly to recompute, dies in the fused loop): each element is read before it is overwritten."""
    def step(w, h, d):
        w2 = np.exp(w)
        return w2 - LR * (h.T @ d), d @ w2.T
    args = rand(50, 40), rand(1, 50, seed=1), rand(1, 40, seed=2)
    assert "kernel_matvec" in ops(fused(step, *args))
    new, back = lumen.jit(step)(*args)
    want_new, want_back = step(*args)
    assert_same(new, want_new)
    np.testing.assert_allclose(back, want_back, rtol=1e-12)


def test_profile_row_names_both_results():
    args = rand(30, 20, dtype=np.float32), rand(1, 30, dtype=np.float32, seed=1), \
        rand(1, 20, dtype=np.float32, seed=2)
    (node,) = [n for n in fused(sgd_layer, *args).nodes if n.op == "kernel_matvec"]
    assert describe(node) == "kernel multiply·add·subtract f32[?,?] + matvec f32[1,?]"
    p = lumen.profile(lumen.jit(sgd_layer))
    p(*args)
    (row,) = [r for r in p.stats() if "+ matvec" in r["what"]]
    assert row["op"] == "kernel_matvec" and row["calls"] == 1
