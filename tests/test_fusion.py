"""Kernel fusion (``lumen/passes/fuse.py``): kernel counts of the optimised graph, as tinygrad's
``check_schedule`` counts them, and the fused program's results against NumPy — elementwise
chains, producers into reductions, epilogues, producers with several readers, broadcasting,
strided inputs and reductions over the first, last and all axes."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import lumen

from .oracle import check

RNG = np.random.default_rng(11)
A, B, C = RNG.normal(size=(3, 6, 7))
X3 = RNG.normal(size=(4, 5, 6))


def kernels(fn, *args):
    graph = lumen.jit(fn).lower(*args).optimized_graph()
    return [n for n in graph.nodes if n.op == "kernel"]


def result_kernel(fn, *args):
    """The kernel that computes ``fn``'s (single) result."""
    (out,) = lumen.jit(fn).lower(*args).optimized_graph().outputs
    return out.node


def n_kernels(fn, *args) -> int:
    return len(kernels(fn, *args))


def scalar_ops(kernel) -> list:
    """The scalar ops a kernel runs: body, then epilogue."""
    ops = [s.op for s in kernel.params["body"].ops]
    epilogue = kernel.params.get("epilogue")
    return ops + ([s.op for s in epilogue.ops] if epilogue is not None else [])


def all_ops(fn, *args) -> Counter:
    return Counter(op for k in kernels(fn, *args) for op in scalar_ops(k))


def epilogue_ops(kernel) -> list:
    epilogue = kernel.params.get("epilogue")
    return [] if epilogue is None else [s.op for s in epilogue.ops]


def assert_kernels(fn, *args, count=None, at_most=None):
    ks = kernels(fn, *args)
    text = lumen.jit(fn).lower(*args).optimized_ir()
    if count is not None:
        assert len(ks) == count, f"{len(ks)} kernels, expected {count}:\n{text}"
    if at_most is not None:
        assert len(ks) <= at_most, f"{len(ks)} kernels, expected at most {at_most}:\n{text}"
    return ks


# -- elementwise chains ------------------------------------------------------------------------

def test_elementwise_chain_is_one_kernel():
    f = lambda a, b, c: np.tanh(a) * b + np.exp(-c * c)  # noqa: E731
    (k,) = assert_kernels(f, A, B, C, count=1)
    assert {"tanh", "exp", "multiply", "add", "negative"} <= set(scalar_ops(k))
    check(f, A, B, C)


@pytest.mark.parametrize("b_shape", [(7,), (6, 1), (1, 7), ()], ids=str)
def test_elementwise_chain_with_broadcast_input_is_one_kernel(b_shape):
    b = RNG.normal(size=b_shape)
    f = lambda a, b, c: np.tanh(a) * b + np.exp(-c * c)  # noqa: E731
    assert_kernels(f, A, b, C, count=1)
    check(f, A, b, C)


def test_cheap_producer_over_a_smaller_space_is_inlined():
    """c * 2 over a column, then added to a matrix: recomputing a multiply per element costs
    less than a pass of its own."""
    c = RNG.normal(size=(6, 1))
    f = lambda a, c: a + (c * 2 - 1)  # noqa: E731
    assert_kernels(f, A, c, count=1)
    check(f, A, c)


@pytest.mark.parametrize("r_shape", [(7,), (1, 7)], ids=str)
def test_cheap_row_repeated_down_the_rows_is_computed_once(r_shape):
    """r * (1 - r * r) over a row, added to every row of a matrix: inlined, it would be
    computed again for each row (LLVM hoists only what is the same along the innermost
    axis); as a kernel of its own it is computed once and read."""
    r = RNG.normal(size=r_shape)
    f = lambda a, r: a + r * (1 - r * r)  # noqa: E731
    assert_kernels(f, A, r, count=2)
    consumer = result_kernel(f, A, r)
    (row,) = (v.node for v in consumer.inputs if v.node is not None and v.node.op == "kernel")
    assert scalar_ops(row) == ["multiply", "subtract", "multiply"]
    assert scalar_ops(consumer) == ["add"]
    check(f, A, r)


def test_sgd_update_at_batch_one_reads_its_row_of_gradients():
    """``W - lr * (h.T @ (d * (1 - t * t)))`` with one example: the outer product is
    elementwise (simplify's matmul_of_one_term) and the tanh derivative, a row, is computed
    once; the pass over W multiplies, adds BLAS's +0.0, scales and subtracts."""
    w = RNG.normal(size=(5, 7)).astype(np.float32)
    h, d, t = (RNG.normal(size=(1, n)).astype(np.float32) for n in (5, 7, 7))
    f = lambda w, h, d, t: w - np.float32(0.01) * (h.T @ (d * (1 - t * t)))  # noqa: E731
    assert_kernels(f, w, h, d, t, count=2)
    assert scalar_ops(result_kernel(f, w, h, d, t)) == ["multiply", "add", "multiply", "subtract"]
    check(f, w, h, d, t)


def test_expensive_producer_over_a_smaller_space_is_not_recomputed_per_element():
    c = RNG.normal(size=(6, 1))
    f = lambda a, c: a * np.exp(c)  # noqa: E731
    ks = assert_kernels(f, A, c, count=2)
    assert sum(scalar_ops(k).count("exp") for k in ks) == 1
    exp_kernel = next(k for k in ks if "exp" in scalar_ops(k))
    assert tuple(d.value for d in exp_kernel.out.shape)[1:] == (1,)
    check(f, A, c)


def test_long_chain_of_unary_ops_is_one_kernel():
    f = lambda x: np.sqrt(np.abs(np.sin(np.cos(x) * 3) + np.tanh(x) ** 2) + 1)  # noqa: E731
    assert_kernels(f, A, count=1)
    check(f, A)


# -- producers into reductions, epilogues ------------------------------------------------------

def _lse(x):
    m = x.max(1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(1, keepdims=True))


def test_max_shifted_logsumexp_is_two_passes():
    ks = assert_kernels(_lse, A, at_most=2)
    reductions = [k.params["reduce"].op for k in ks if k.params["reduce"] is not None]
    assert sorted(reductions) == ["max", "sum"]
    (last,) = [k for k in ks if k.params["reduce"] is not None and k.params["reduce"].op == "sum"]
    assert "exp" in [s.op for s in last.params["body"].ops]
    assert "log" in epilogue_ops(last)
    check(_lse, A)
    check(_lse, A * 1e3)


def test_squared_difference_sum_is_one_kernel():
    f = lambda a, b: ((a - b) ** 2).sum()  # noqa: E731
    (k,) = assert_kernels(f, A, B, count=1)
    assert k.params["reduce"].op == "sum" and k.params["reduce"].axes == (0, 1)
    assert scalar_ops(k) == ["subtract", "multiply"]
    check(f, A, B)


AXES = [0, -1, None, (0, 2), 1]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
def test_mean_is_one_kernel_with_its_division_in_the_epilogue(axis, keepdims):
    f = lambda x: np.mean(x, axis=axis, keepdims=keepdims)  # noqa: E731
    (k,) = assert_kernels(f, X3, count=1)
    assert k.params["reduce"].op == "sum" and "divide" in epilogue_ops(k)
    check(f, X3)


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_var_and_std_are_two_passes(axis):
    f = lambda x: (np.var(x, axis=axis), np.std(x, axis=axis, ddof=1))  # noqa: E731
    for g in (lambda x: np.var(x, axis=axis), lambda x: np.std(x, axis=axis, ddof=1)):
        ks = assert_kernels(g, X3, at_most=2)
        assert all(k.params["reduce"] is not None for k in ks)
        assert "divide" in epilogue_ops(ks[-1])
    assert "sqrt" in epilogue_ops(kernels(lambda x: np.std(x, axis=axis), X3)[-1])
    check(f, X3)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
def test_reduction_with_producer_and_epilogue_is_one_kernel(axis, keepdims):
    f = lambda x: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims)) * 2 + 1  # noqa: E731
    (k,) = assert_kernels(f, X3, count=1)
    assert [s.op for s in k.params["body"].ops] == ["multiply"]
    assert epilogue_ops(k)[0] == "sqrt"
    check(f, X3)


@pytest.mark.parametrize("op", ["sum", "max", "min", "prod"])
@pytest.mark.parametrize("axis", [0, -1, None], ids=str)
def test_every_reduction_takes_a_producer_and_an_epilogue(op, axis):
    f = lambda x: np.tanh(getattr(np.exp(x * 0.1), op)(axis=axis)) - 1  # noqa: E731
    (k,) = assert_kernels(f, X3, count=1)
    assert k.params["reduce"].op == op
    check(f, X3)


def test_reduction_of_a_broadcast_product_is_one_kernel():
    w = RNG.normal(size=(7,))
    f = lambda x, w: (x * w).sum(1)  # noqa: E731
    assert_kernels(f, A, w, count=1)
    check(f, A, w)
    f = lambda x, w: (x * w[:, None]).sum(0)  # noqa: E731
    assert_kernels(f, A, RNG.normal(size=(6,)), count=1)
    check(f, A, RNG.normal(size=(6,)))


def test_epilogue_reads_other_inputs_of_the_output_shape():
    z = RNG.normal(size=(6,))
    f = lambda x, z: x.sum(1) * z + z  # noqa: E731
    (k,) = assert_kernels(f, A, z, count=1)
    assert epilogue_ops(k) == ["multiply", "add"]
    check(f, A, z)


def test_epilogue_reading_the_reduced_value_twice():
    f = lambda x: x.sum(1) ** 2  # noqa: E731
    (k,) = assert_kernels(f, A, count=1)
    assert epilogue_ops(k) == ["multiply"]
    check(f, A)


def test_two_reductions_into_one_consumer():
    f = lambda x, y: x.sum(1) / y.max(1)  # noqa: E731
    assert_kernels(f, A, B, count=2)
    check(f, A, B)


def test_reduction_also_returned_is_not_an_epilogue():
    def f(x):
        s = x.sum(1)
        return s, np.exp(s) + 1
    ks = assert_kernels(f, A, count=2)
    assert sum(k.params["reduce"] is not None for k in ks) == 1
    check(f, A)


def test_reduction_feeding_a_bigger_consumer():
    f = lambda x: x - x.mean(0)  # noqa: E731
    assert_kernels(f, A, count=2)
    check(f, A)
    f = lambda x: (x - x.mean(1, keepdims=True)).sum(1)  # noqa: E731
    assert_kernels(f, A, at_most=2)
    check(f, A)


# -- several readers ---------------------------------------------------------------------------

@pytest.mark.parametrize("readers", ["sum_and_scale", "two_elementwise", "elementwise_and_max"])
def test_expensive_producer_with_two_readers_is_not_duplicated(readers):
    def f(x):
        e = np.exp(x)
        return {"sum_and_scale": (e.sum(0), e * 2),
                "two_elementwise": (e + 1, e * 2),
                "elementwise_and_max": (np.sin(e), e.max(1))}[readers]
    ks = kernels(f, A)
    assert all_ops(f, A)["exp"] == 1
    (own,) = [k for k in ks if scalar_ops(k) == ["exp"]]
    assert own.params["reduce"] is None
    assert len(ks) == 3
    check(f, A)


def test_cheap_producer_with_two_readers_may_be_duplicated():
    def f(a, b):
        s = a + b
        return np.sin(s), np.cos(s)
    ks = assert_kernels(f, A, B, count=2)
    assert all(scalar_ops(k)[0] == "add" for k in ks)
    check(f, A, B)


def test_cheap_producer_also_returned():
    def f(a, b):
        s = a * b - 1
        return s, np.tanh(s)
    assert_kernels(f, A, B, at_most=2)
    check(f, A, B)


def test_one_reader_using_a_value_twice_is_one_reader():
    f = lambda x: np.exp(x) * np.exp(x) + np.exp(x)  # noqa: E731
    (k,) = assert_kernels(f, A, count=1)
    assert scalar_ops(k).count("exp") == 1
    check(f, A)


def test_softmax_computes_exp_once():
    f = lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)  # noqa: E731
    ops = all_ops(f, A)
    assert ops["exp"] == 1
    assert_kernels(f, A, at_most=4)
    check(f, A)


# -- reductions over length-1 axes (the epilogue reads what the body reads) --------------------

@pytest.mark.parametrize("shape,axis", [((5, 1), 1), ((1, 5), 0), ((3, 1, 4), 1)])
def test_reduction_over_a_length_one_axis(shape, axis):
    """Over a length-1 axis the reduction's result has the shape of its operand, so its reader
    becomes its epilogue while also reading the operand: after the operand is fused into the
    body, the epilogue must still read the operand, not the body's input."""
    x = RNG.normal(size=shape)
    for f in (lambda x: np.tanh(x) / np.tanh(x).sum(axis, keepdims=True),
              lambda x: np.sin(x) * np.sin(x).max(axis, keepdims=True),
              lambda x: np.exp(x) / np.exp(x).sum(axis, keepdims=True),
              lambda x: x / x.sum(axis, keepdims=True)
              + np.log(np.abs(x)).min(axis, keepdims=True)):
        check(f, x)
        assert all_ops(f, x)["tanh"] <= 1 and all_ops(f, x)["sin"] <= 1


# -- strided and broadcast inputs --------------------------------------------------------------

def _strided(kind):
    base = RNG.normal(size=(12, 14))
    return {"transposed": base.T, "step": base[::2, 1::2], "reversed": base[::-1, ::-3],
            "contiguous": base[:6, :7].copy()}[kind]


@pytest.mark.parametrize("kind", ["transposed", "step", "reversed", "contiguous"])
def test_fused_programs_on_strided_inputs(kind):
    x = _strided(kind)
    y = RNG.normal(size=x.shape[1:])
    fns = [lambda x, y: np.tanh(x) * y + np.exp(-x * x),
           lambda x, y: ((x - y) ** 2).sum(),
           lambda x, y: np.sqrt((x * y).sum(0)) + 1,
           lambda x, y: np.log(np.exp(x).sum(-1, keepdims=True)) - x,
           lambda x, y: x.mean(0) * y,
           lambda x, y: x.var(axis=1)]
    for f in fns:
        check(f, x, y)


def test_strided_views_taken_inside_the_function():
    f = lambda x: np.tanh(x[:, ::2]) + x[:, 1::2] * x.T[::2].T  # noqa: E731
    x = RNG.normal(size=(6, 8))
    check(f, x)
    f = lambda x: (x[::-1] * x).sum(0) + x.T.max(1)  # noqa: E731
    check(f, x)


def test_float32_reductions_with_epilogues():
    x = RNG.normal(size=(64, 33)).astype(np.float32)
    f = lambda x: (x.mean(0), np.sqrt((x * x).sum(1)), x.std(), _lse(x))  # noqa: E731
    check(f, x)


def test_reference_interpreter_runs_an_epilogue_reading_an_accumulator():
    """An epilogue reads the reduced-shape input (b) only; the interpreter, run on the fused
    graph (as debug mode's pass-by-pass replay does), must not broadcast x to b's shape."""
    from lumen.ir.interpret import interpret
    f = lambda x, y, b: (x * y).sum(0) + b  # noqa: E731
    x, y, b = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3)), RNG.normal(size=3)
    graph = lumen.jit(f).lower(x, y, b).optimized_graph()
    (k,) = [n for n in graph.nodes if n.op == "kernel"]
    assert epilogue_ops(k) == ["add"]
    (got,) = interpret(graph, [x, y, b])
    np.testing.assert_allclose(got, f(x, y, b), rtol=1e-14)


def test_reference_interpreter_keeps_a_0d_kernel_0d():
    """A fused kernel over no axes (a loop counter's increment) stays 0-d in the interpreter
    (np.ascontiguousarray would make it 1-d and break a while loop's condition after a step)."""
    from lumen.ir.interpret import interpret

    def f(x):
        return lumen.while_loop(lambda s: s[1] < 3, lambda s: (s[0] * 2.0, s[1] + 1), (x, np.int64(0)))
    x = RNG.normal(size=4)
    graph = lumen.jit(f).lower(x).optimized_graph()
    got, k = interpret(graph, [x])
    assert np.shape(k) == () and k == 3
    np.testing.assert_array_equal(got, 8 * x)
