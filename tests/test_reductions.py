"""Reductions (sum, prod, mean, var, std, max, min, argmax, argmin, any, all) and running
reductions (cumsum, cumprod) agree with NumPy: values, result dtypes and shapes, for every
supported dtype, every axis form, keepdims and ``dtype=``, empty and strided inputs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lumen

from .oracle import assert_same, check

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64"]
FLOATS = ["float32", "float64"]


def sample(shape, dtype, seed=0):
    """Values of ``dtype`` that keep every reduction exact or well-conditioned: small integers
    (so that sums and products are far from overflow and identical in any order), floats away
    from zero for prod."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        return rng.integers(0, 4, shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-3, 4, shape).astype(dtype)
    return rng.uniform(0.5, 1.5, shape).astype(dtype) * rng.choice([-1, 1], shape).astype(dtype)


def run_all(fn, *args, **kw):
    """Compare one jitted call against NumPy (tuples of results compared leaf by leaf)."""
    return check(fn, *args, **kw)


# -- every reduction x every dtype x the axis forms --------------------------------------------

AXIS_FORMS = {
    "sum": lambda x: (x.sum(), x.sum(axis=0), np.sum(x, axis=-1), x.sum(axis=(0, 2), keepdims=True),
                      np.sum(x, axis=(-1, 0)), np.sum(x, keepdims=True), np.add.reduce(x, axis=1)),
    "prod": lambda x: (x.prod(), np.prod(x, axis=1), x.prod(axis=-1, keepdims=True),
                       np.prod(x, axis=(2, 1)), np.multiply.reduce(x, axis=0)),
    "mean": lambda x: (x.mean(), np.mean(x, axis=0), x.mean(axis=-2, keepdims=True),
                       np.mean(x, axis=(0, -1))),
    "var": lambda x: (x.var(), np.var(x, axis=1), x.var(axis=(0, 2), ddof=1),
                      np.var(x, axis=-1, keepdims=True, ddof=2)),
    "std": lambda x: (x.std(), np.std(x, axis=0, ddof=1), x.std(axis=(-1, -2), keepdims=True),
                      np.std(x, axis=2)),
    "max": lambda x: (x.max(), np.max(x, axis=0), x.max(axis=-1, keepdims=True),
                      np.amax(x, axis=(0, 2)), np.maximum.reduce(x, axis=1)),
    "min": lambda x: (x.min(), np.min(x, axis=1), x.min(axis=(-1, 0), keepdims=True),
                      np.amin(x, axis=2), np.minimum.reduce(x, axis=-1)),
    "argmax": lambda x: (x.argmax(), np.argmax(x, axis=0), x.argmax(axis=-1),
                         np.argmax(x, axis=1, keepdims=True), x.argmax(keepdims=True)),
    "argmin": lambda x: (x.argmin(), np.argmin(x, axis=2), x.argmin(axis=-2, keepdims=True),
                         np.argmin(x, keepdims=True)),
    "any": lambda x: (x.any(), np.any(x, axis=0), x.any(axis=(1, 2), keepdims=True),
                      np.logical_or.reduce(x, axis=-1)),
    "all": lambda x: (x.all(), np.all(x, axis=-1), x.all(axis=(0, 1)), np.all(x, keepdims=True),
                      np.logical_and.reduce(x, axis=0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(AXIS_FORMS))
def test_reduction_axis_forms(op, dtype):
    x = sample((3, 4, 5), dtype)
    if op in ("any", "all") and dtype != "bool":
        x[0, 0] = 0           # some falsy elements for any/all over numbers
    run_all(AXIS_FORMS[op], x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_result_dtypes_1d(dtype):
    """NumPy's result dtypes (sum/prod of small ints -> platform int, mean of ints -> float64)."""
    x = sample((7,), dtype)
    got = run_all(lambda x: (x.sum(), x.prod(), x.mean(), x.var(), x.max(), x.argmin(),
                             x.any(), x.cumsum()), x)
    expected = (np.sum(x), np.prod(x), np.mean(x), np.var(x), np.max(x), np.argmin(x),
                np.any(x), np.cumsum(x))
    for g, e in zip(got, expected):
        assert g.dtype == np.asarray(e).dtype


# -- dtype= ------------------------------------------------------------------------------------

DTYPE_ARG = [("int8", "float32"), ("int32", "int8"), ("uint8", "int16"), ("bool", "float64"),
             ("float64", "float32"), ("float32", "float64"), ("int64", "uint32"),
             ("uint16", "uint64"), ("bool", "int32")]


@pytest.mark.parametrize("src,dst", DTYPE_ARG)
def test_dtype_argument(src, dst):
    x = sample((4, 6), src)
    run_all(lambda x: (x.sum(dtype=dst), np.sum(x, axis=0, dtype=dst), x.prod(axis=1, dtype=dst),
                       np.cumsum(x, axis=1, dtype=dst), x.cumprod(dtype=dst)), x)


@pytest.mark.parametrize("src,dst", [("int16", "float32"), ("float64", "float32"),
                                     ("float32", "float64"), ("uint8", "float64")])
def test_dtype_argument_mean_var_std(src, dst):
    x = sample((5, 6), src)
    run_all(lambda x: (x.mean(dtype=dst), np.mean(x, axis=1, dtype=dst), x.var(axis=0, dtype=dst),
                       np.std(x, dtype=dst, ddof=1)), x)


# -- cumulative --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum_cumprod(dtype):
    x = sample((3, 5), dtype)
    run_all(lambda x: (np.cumsum(x), x.cumsum(axis=0), np.cumsum(x, axis=-1), x.cumprod(),
                       np.cumprod(x, axis=1), x.cumprod(axis=-2), np.add.accumulate(x, axis=1),
                       np.multiply.accumulate(x)), x)


@pytest.mark.parametrize("order", ["C", "T", "neg"])
def test_cumulative_strided(order):
    x = sample((6, 7), "float64")
    x = {"C": x, "T": x.T, "neg": x[::-1, ::-2]}[order]
    run_all(lambda x: (np.cumsum(x), np.cumsum(x, axis=0), x.cumprod(axis=1)), x)


def test_cumsum_0d_and_empty():
    run_all(lambda x: (np.cumsum(x), x.cumprod()), np.float64(2.5))
    run_all(lambda x: (np.cumsum(x), np.cumsum(x, axis=0), x.cumprod(axis=1)),
            np.zeros((0, 3)))


# -- empty arrays ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "int32", "bool", "uint8"])
def test_empty_sum_prod_any_all(dtype):
    e = np.zeros((0,), dtype)
    got = run_all(lambda x: (x.sum(), x.prod(), x.any(), x.all()), e)
    assert got[0] == 0 and got[1] == 1 and not got[2] and got[3]
    run_all(lambda x: (x.sum(axis=0), x.sum(axis=1), x.prod(axis=0), np.any(x, axis=1),
                       np.all(x, axis=0)), np.zeros((0, 3), dtype))


def test_empty_mean_is_nan():
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            run_all(lambda x: (x.mean(), np.mean(x, axis=0)), np.zeros((0, 3)))


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
def test_empty_without_identity_raises_at_trace(op):
    f = lumen.jit(lambda x: getattr(np, op)(x))
    with pytest.raises(ValueError):
        getattr(np, op)(np.zeros(0))
    with pytest.raises(ValueError):
        f(np.zeros(0))


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
def test_empty_without_identity_raises_at_run_time(op):
    """Compiled for a non-empty size, called with an empty one: no recompilation, same error."""
    f = lumen.jit(lambda x: getattr(np, op)(x, axis=0))
    assert_same(f(np.arange(6.0).reshape(3, 2)), getattr(np, op)(np.arange(6.0).reshape(3, 2), axis=0))
    with pytest.raises(ValueError):
        f(np.zeros((0, 2)))
    assert f.cache_info()["compiles"] == 1
    # reducing the non-empty axis of an array with an empty other axis is fine
    g = lumen.jit(lambda x: getattr(np, op)(x, axis=1))
    assert_same(g(np.zeros((0, 3))), getattr(np, op)(np.zeros((0, 3)), axis=1))


# -- NaN ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_propagation(dtype):
    x = sample((4, 5), dtype)
    x[1, 2] = np.nan
    x[3, 0] = np.nan
    run_all(lambda x: (x.max(), x.min(), np.max(x, axis=0), np.min(x, axis=1), x.argmax(),
                       x.argmin(), np.argmax(x, axis=0), np.argmin(x, axis=1), x.sum(axis=1),
                       np.maximum.reduce(x, axis=1)), x)


def test_nan_first_and_last_positions():
    """NaN at the first or last position still wins, and argmax reports the first NaN."""
    f = lumen.jit(lambda x: (x.max(), x.min(), x.argmax(), x.argmin()))
    for pos in ([0], [7], [2, 5], [0, 7]):
        x = np.linspace(-1, 1, 8)
        x[pos] = np.nan
        for g, e in zip(f(x), (x.max(), x.min(), x.argmax(), x.argmin())):
            assert_same(g, e)


def test_infinities_and_ties():
    x = np.array([[1.0, np.inf, 3.0, np.inf], [-np.inf, -np.inf, 0.0, 2.0]])
    run_all(lambda x: (x.max(axis=1), x.min(axis=1), x.argmax(axis=1), x.argmin(axis=1),
                       x.argmax(), x.argmin(), x.sum(axis=0)), x)
    ints = np.array([[3, 7, 7, 1], [1, 1, 0, 0]], np.int16)
    run_all(lambda x: (x.argmax(axis=1), x.argmin(axis=1), x.argmax(axis=0), x.argmin()), ints)


@pytest.mark.parametrize("dtype", ["int8", "int64", "uint8", "uint64", "float32"])
def test_extremes(dtype):
    """The identity of max/min must not leak: all elements at the dtype's extreme."""
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    for v in (info.min, info.max):
        x = np.full((3, 4), v, dtype)
        run_all(lambda x: (x.max(), x.min(axis=0), x.argmax(axis=1), x.argmin()), x)


def test_unsigned_high_bit_and_wraparound():
    """uint64 above 2**63 compares unsigned; integer sums and products wrap as NumPy's do."""
    u = np.array([[1, 2**63 + 5, 7], [2**64 - 1, 0, 2**63]], np.uint64)
    run_all(lambda x: (x.max(axis=1), x.min(axis=0), x.argmax(axis=1), x.argmin(), x.sum(axis=0),
                       x.prod(axis=1), x.cumsum(axis=1)), u)
    big = np.array([2**62, 2**62, 2**62, 3], np.int64)
    run_all(lambda x: (x.sum(), x.prod(), x.cumsum(), x.cumprod()), big)
    i32 = np.array([2**30, 2**30, -7], np.int32)
    run_all(lambda x: (x.sum(), x.prod(), np.sum(x, dtype=np.int32), x.cumsum(dtype=np.int16)), i32)


@pytest.mark.parametrize("dtype", ["int8", "float32", "bool"])
def test_empty_axis_tuple_reduces_nothing(dtype):
    x = sample((3, 4), dtype)
    run_all(lambda x: (x.sum(axis=()), x.max(axis=()), x.mean(axis=()), x.any(axis=()),
                       x.prod(axis=(), keepdims=True), np.min(x, axis=())), x)


def test_var_ddof_at_least_count():
    """ddof >= n divides by max(n - ddof, 0): inf or nan, as NumPy (which warns)."""
    import warnings
    x = sample((3, 4), "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run_all(lambda x: (x.var(axis=0, ddof=3), x.var(axis=0, ddof=5), x.std(ddof=12),
                           np.var(x[:1], axis=0, ddof=1)), x)


def test_length_one_axes():
    """Inputs with length-1 axes (a different broadcast pattern) and broadcast values."""
    for shape in ((1, 5), (5, 1), (1, 1), (1,), (3, 1, 4)):
        x = sample(shape, "float64", len(shape))
        run_all(lambda x: (x.sum(axis=0), x.max(axis=-1), x.argmax(axis=0), x.argmin(axis=-1),
                           x.mean(axis=0, keepdims=True), np.cumsum(x, axis=-1), x.std()), x)
    y = sample((4,), "float64")
    run_all(lambda y: (np.broadcast_to(y, (3, 4)).sum(axis=0), np.broadcast_to(y, (3, 4)).argmax(axis=0),
                       np.broadcast_to(y[:, None], (4, 5)).max(axis=1),
                       np.cumsum(np.broadcast_to(y, (2, 4)), axis=0)), y)


# -- accuracy of float32 sums ------------------------------------------------------------------

def test_float32_sum_of_a_million():
    x = np.random.default_rng(1).random(10**6, dtype=np.float32)
    run_all(lambda x: (x.sum(), np.mean(x), np.sum(x, keepdims=True)), x)
    run_all(lambda x: (x.sum(axis=0), x.sum(axis=1), x.mean(axis=0)), x.reshape(1000, 1000))


@pytest.mark.parametrize("shape,axis", [((2, 10**6), 1), ((2, 10**6), None), ((500000, 2), None),
                                        ((10**6,), 0)])
def test_float32_long_axis_is_accurate(shape, axis):
    """A float32 reduction over a million-long contiguous axis stays within 1e-5 of the exact
    value, as NumPy's pairwise sum does (naive float32 accumulation would not)."""
    x = np.random.default_rng(2).random(shape, dtype=np.float32) + np.float32(1.0)
    f = lumen.jit(lambda x: x.sum(axis=axis))
    got = f(x)
    exact = x.astype(np.float64).sum(axis=axis)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=1e-5)
    assert_same(got, np.sum(x, axis=axis))


def test_float32_long_outer_axis_matches_numpy():
    """Over a long *outer* axis NumPy itself accumulates naively in float32 (1e-5 off the exact
    value here); lumen must agree with NumPy."""
    x = np.random.default_rng(2).random((10**6, 2), dtype=np.float32)
    run_all(lambda x: x.sum(axis=0), x)


def test_float32_sum_of_transposed_million():
    x = np.random.default_rng(3).random((2, 500000), dtype=np.float32)
    f = lumen.jit(lambda x: (x.sum(axis=0), x.sum(axis=1), x.mean()))
    for g, e in zip(f(x.T), (x.T.sum(axis=0), x.T.astype(np.float64).sum(axis=1), x.T.mean())):
        np.testing.assert_allclose(g, e, rtol=1e-5)


# -- layouts -----------------------------------------------------------------------------------

LAYOUTS = {
    "C": lambda x: x,
    "T": lambda x: x.T,
    "step": lambda x: x[::2, 1::3],
    "neg": lambda x: x[::-1, ::-1],
    "neg-step-T": lambda x: x[::-2].T,
    "F": lambda x: np.asfortranarray(x),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "bool"])
def test_strided_inputs(layout, dtype):
    x = LAYOUTS[layout](sample((8, 9), dtype))
    run_all(lambda x: (x.sum(), x.sum(axis=0), x.sum(axis=-1), x.max(axis=0), x.min(axis=1),
                       x.argmax(axis=0), x.argmin(axis=1), x.argmax(), x.mean(axis=0),
                       x.var(axis=1), x.any(axis=0), x.all(axis=1), x.prod(axis=0)), x)


@pytest.mark.parametrize("layout", ["C", "T", "neg"])
def test_reduction_of_transposed_value(layout):
    """Reducing a transpose made inside the function (axis 0 and last axis of both)."""
    x = LAYOUTS[layout](sample((5, 6, 7), "float64")) if layout != "T" else \
        sample((5, 6, 7), "float64").transpose(2, 0, 1)
    run_all(lambda x: (x.T.sum(axis=0), x.T.sum(axis=-1), x.transpose(1, 2, 0).max(axis=0),
                       np.swapaxes(x, 0, 2).argmax(axis=-1), x.T.mean(axis=(0, 1)),
                       x.T.argmin(axis=0)), x)


def test_reduction_of_expression():
    """A reduction of a fused expression (broadcast operands) reads each operand correctly."""
    x, y = sample((4, 5), "float64"), sample((5,), "float64", 1)
    run_all(lambda x, y: ((x * y + 1).sum(axis=0), (x - y).max(axis=1), (x * y).argmax(axis=0),
                          ((x > y) & (x > 0)).any(axis=1), (x + y).std(axis=0)), x, y)


def test_scalar_and_0d_inputs():
    run_all(lambda x: (x.sum(), x.max(), x.argmax(), x.mean(), x.any(), np.sum(x, axis=0),
                       np.max(x, axis=-1), np.argmax(x, axis=0), np.cumsum(x, axis=0)),
            np.float64(3.5))
    run_all(lambda x: (np.sum(x), np.max(x)), 2.0)
    run_all(lambda x: (np.sum(x), np.prod(x), np.argmax(x)), 3)


# -- shape-generic reductions (one compilation, many sizes) ------------------------------------

_shape3 = st.lists(st.integers(2, 7), min_size=1, max_size=3).map(tuple)

_GENERIC = lumen.jit(lambda x: (x.sum(axis=0), x.max(axis=-1), x.argmin(axis=0), x.mean(),
                                np.cumsum(x, axis=-1), x.var(axis=-1, ddof=1), x.min(),
                                np.prod(x, axis=0)))


@settings(max_examples=40, deadline=None)
@given(shape=_shape3, seed=st.integers(0, 1000))
def test_hypothesis_float64_reductions(shape, seed):
    x = sample(shape, "float64", seed)
    got = _GENERIC(x)
    expected = (x.sum(axis=0), x.max(axis=-1), x.argmin(axis=0), x.mean(),
                np.cumsum(x, axis=-1), x.var(axis=-1, ddof=1), x.min(), np.prod(x, axis=0))
    for g, e in zip(got, expected):
        assert_same(g, e)


_GENERIC_INT = lumen.jit(lambda x: (x.sum(axis=(0, -1)), x.prod(axis=-1), x.argmax(axis=-1),
                                    x.max(axis=0), (x > 0).all(axis=0), x.cumsum(axis=0)))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=2, max_size=3).map(tuple),
       seed=st.integers(0, 1000))
def test_hypothesis_int_reductions_with_empty(shape, seed):
    x = sample(shape, "int16", seed)
    expect_error = shape[-1] == 0 or shape[0] == 0
    if expect_error:
        with pytest.raises(ValueError):
            _GENERIC_INT(x)
        return
    got = _GENERIC_INT(x)
    expected = (x.sum(axis=(0, -1)), x.prod(axis=-1), x.argmax(axis=-1), x.max(axis=0),
                (x > 0).all(axis=0), x.cumsum(axis=0))
    for g, e in zip(got, expected):
        assert_same(g, e)


def test_no_recompile_for_new_sizes():
    f = lumen.jit(lambda x: (x.sum(axis=0), x.argmax(axis=1)))
    for n in (3, 8, 50):
        x = sample((n, n + 2), "float64", n)
        assert_same(f(x)[0], x.sum(axis=0))
        assert_same(f(x)[1], x.argmax(axis=1))
    assert f.cache_info()["compiles"] == 1


# -- errors ------------------------------------------------------------------------------------

def test_axis_errors():
    x = np.zeros((2, 3))
    with pytest.raises(np.exceptions.AxisError):
        lumen.jit(lambda x: x.sum(axis=2))(x)
    with pytest.raises(np.exceptions.AxisError):
        lumen.jit(lambda x: x.max(axis=-3))(x)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: x.sum(axis=(0, -2)))(x)
