"""Fusion of an elementwise kernel and a reduction of its values (``lumen/passes/
reduce_siblings.py``, lowered by ``lower_kernel_map_reduce`` in codegen_llvm/lower/kernel.py):
which pairs merge into one `kernel_map_reduce`, which stay apart, and the fused loop's two
results against NumPy across reduction kinds (rows, columns, everything), dtypes, shapes,
strided operands, thread counts, and the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm import symbols
from lumen.codegen_llvm.lower.kernel import SUM_BLOCK
from lumen.codegen_llvm.parallel import THRESHOLD
from lumen.codegen_llvm.profiling import describe
from lumen.frontend.compile import cpu_fusions
from lumen.ir.interpret import interpret

from .oracle import assert_same


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def lowered_graph(fn, *args):
    """The graph the CPU backend lowers for ``fn(*args)``."""
    return cpu_fusions(lumen.jit(fn).lower(*args).optimized_graph())


def ops(graph):
    return [n.op for n in graph.nodes]


def softmax_parts(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e, e.sum(axis=1, keepdims=True)


def backward_bias(g, h):
    """An MLP layer's backward pass: the gradient through tanh, and the bias gradient."""
    d = g * (1 - h * h)
    return d, d.sum(axis=0)


def test_softmax_exponentials_and_their_sum_become_one_node():
    z = rand(6, 5)
    graph = lowered_graph(softmax_parts, z)
    (node,) = [n for n in graph.nodes if n.op == "kernel_map_reduce"]
    assert ops(graph).count("kernel") == 1                # the row max stays a reduction
    assert node.params["reduce"].op == "sum" and node.params["reduce"].axes == (1,)
    assert [o.type.text() for o in node.outputs] == ["f64[?,1]", "f64[?,?]"]
    assert describe(node) == "kernel subtract·exp·sum f64[?,1] + map f64[?,?]"
    for got, want in zip(interpret(graph, [z]), softmax_parts(z)):
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_siblings_with_the_same_scalar_program_merge():
    """Fusion copied ``g * (1 - h*h)`` into the bias gradient's loop: both compute the same
    program from the same inputs, and become one loop (the reduction's epilogue kept)."""
    def step(g, h, b):
        d, db = backward_bias(g, h)
        return d, b - 0.1 * db
    args = rand(7, 4), np.tanh(rand(7, 4, seed=1)), rand(4, seed=2)
    unfused = lumen.jit(step).lower(*args).optimized_graph()
    assert ops(unfused).count("kernel") == 2 and "sum" not in ops(unfused)
    graph = lowered_graph(step, *args)
    (node,) = [n for n in graph.nodes if n.op == "kernel_map_reduce"]
    assert "kernel" not in ops(graph) and node.params["epilogue"] is not None
    for got, want in zip(interpret(graph, list(args)), step(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    for got, want in zip(lumen.jit(step)(*args), step(*args)):
        assert_same(got, want)


def test_dependent_pairs_stay_apart():
    x = rand(5, 6)

    def total_scales_map(x):          # the reduction reads a value computed from the map
        e = np.exp(x)
        return e, (x * e.sum()).sum(axis=1)
    graph = lowered_graph(total_scales_map, x)
    assert ops(graph).count("kernel_map_reduce") == 1       # e with e.sum(), not the outer sum
    got = lumen.jit(total_scales_map)(x)
    for g, want in zip(got, total_scales_map(x)):
        assert_same(g, want)

    def crossed(x, y):
        """Two pairs each fine alone, (``tanh(x)``, the loss's sum) and (``cos(x + y)``, a
        gradient's sum): merged both, each merged node would need the other's map first."""
        return lumen.value_and_grad(
            lambda x, y: np.sum((np.tanh(x) * y + x / (1 + y * y)) * np.cos(x + y)),
            argnums=(0, 1))(x, y)
    args = [np.array([0.3, -0.5]), np.array([0.7])]
    unfused = lumen.jit(crossed).lower(*args).optimized_graph()
    graph = lowered_graph(crossed, *args)
    assert ops(unfused).count("kernel") == 10
    assert ops(graph).count("kernel_map_reduce") == 3        # the four pairs but the crossed one
    maps = [[s.op for s in n.params["body"].ops] for n in graph.nodes
            if n.op == "kernel" and n.params["reduce"] is None]
    assert ["add", "cos"] in maps                            # cos(x + y) stays a loop of its own
    defined = set(graph.inputs)
    for node in graph.nodes:                                 # each runs after its operands
        assert all(v in defined for v in node.inputs), node
        defined.update(node.outputs)
    for got, want in zip(interpret(graph, args), interpret(unfused, args)):
        np.testing.assert_allclose(got, want, rtol=1e-14)

    def other_space(x):               # the reduction runs over another space
        return np.exp(x), np.exp(x.T).sum(axis=0)
    graph = lowered_graph(other_space, x)
    assert "kernel_map_reduce" not in ops(graph)


REDUCTIONS = {
    "rows": lambda e: e.sum(axis=1),
    "rows_keepdims": lambda e: e.max(axis=1, keepdims=True),
    "columns": lambda e: e.sum(axis=0),
    "everything": lambda e: e.sum(),
    "argmax": lambda e: e.argmax(axis=1),
    "prod_columns": lambda e: e.prod(axis=0),
}


@pytest.mark.parametrize("kind", sorted(REDUCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (0, 3), (3, 0), (7, 5), (3, SUM_BLOCK * 2 + 5),
                                   (SUM_BLOCK + 3, 4)])
def test_results_against_numpy(kind, dtype, shape):
    def f(a, b):
        e = np.tanh(a) * b + 0.5
        return e, REDUCTIONS[kind](e)
    a, b = rand(*shape, dtype=dtype), rand(shape[1], dtype=dtype, seed=1)
    if kind in ("argmax", "rows_keepdims") and shape[1] == 0:
        pytest.skip("NumPy refuses an empty row")
    if kind == "argmax" and shape[0] == 0:
        pytest.skip("NumPy refuses an empty row")
    assert "kernel_map_reduce" in ops(lowered_graph(f, a, b))
    got, want = lumen.jit(f)(a, b), f(a, b)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_bool_and_integer_maps():
    x = rand(6, 9)

    def positive(x):
        m = x > 0
        return m, m.sum(axis=1), m.any(axis=0)
    graph = lowered_graph(positive, x)
    assert "kernel_map_reduce" in ops(graph)
    for g, w in zip(lumen.jit(positive)(x), positive(x)):
        assert_same(g, w)

    def counts(k):
        c = k * 3 - 1
        return c, c.max(axis=0)
    k = np.arange(-20, 20).reshape(5, 8)
    assert "kernel_map_reduce" in ops(lowered_graph(counts, k))
    for g, w in zip(lumen.jit(counts)(k), counts(k)):
        assert_same(g, w)


def test_strided_operands_and_a_dying_intermediate():
    """A transposed operand, and the exponentials written over the product that dies in the
    fused loop (each element is read before it is overwritten)."""
    def f(x, w):
        z = x @ w
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True), e.sum(axis=0)
    big = rand(2 * 40, 30)
    x, w = big[::2], rand(30, 20, seed=1).T.copy().T
    for g, want in zip(lumen.jit(f)(x, w), f(x, w)):
        assert_same(g, want)


@pytest.mark.parametrize("kind", ["rows", "columns", "everything"])
def test_thread_counts_agree(kind):
    """Large enough to run on the team: 1, 2 and 3 threads give the same bits, NumPy's values."""
    def f(a):
        e = np.exp(a * 0.01)
        return e, REDUCTIONS[kind](e)
    a = rand(300, 4 * THRESHOLD // 300 + 7, dtype=np.float32)
    lumen.jit(lambda x: x + 1)(np.zeros(1))          # registers the runtime
    results = []
    for n in (1, 2, 3):
        previous = symbols.set_num_threads(n)
        try:
            results.append(lumen.jit(f)(a))
        finally:
            symbols.set_num_threads(previous)
    for r in results[1:]:
        for got, first in zip(r, results[0]):
            np.testing.assert_array_equal(got, first, strict=True)
    for got, want in zip(results[0], f(a)):
        assert_same(got, want)


def test_loop_bodies_fuse_too():
    """A scan's body is lowered with the same fusions: each step's exponentials and their sum
    in one loop."""
    def f(xs):
        def step(c, x):
            e = np.exp(x - c)
            return c + 0.1 * e.sum(), e
        return lumen.scan(step, np.float64(0.0), xs)
    xs = rand(4, 6)
    graph = cpu_fusions(lumen.jit(f).lower(xs).optimized_graph())
    (scan,) = [n for n in graph.nodes if n.op == "scan"]
    assert "kernel_map_reduce" in ops(scan.params["body"])

    def numpy_f(xs):
        c, ys = 0.0, []
        for x in xs:
            e = np.exp(x - c)
            c, _ = c + 0.1 * e.sum(), ys.append(e)
        return np.float64(c), np.stack(ys)
    for got, want in zip(lumen.jit(f)(xs), numpy_f(xs)):
        assert_same(got, want)
