"""Every elementwise primitive against NumPy: op records (JAX ``op_record`` style) x every dtype
the op accepts, hypothesis-drawn values and layouts, special float values, integer edge cases,
NEP 50 promotion, casts, ``np.where``, ``np.clip`` and ``np.round`` (SPEC §1, §7).

A jitted function is built once per op (``_jit``) and called for every example: it is only
specialised on dtype, ndim, length-1 axes and contiguity, so new sizes do not recompile.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lumen
from lumen.ir.ops.elementwise import BINARY, SCIPY, UFUNCS, UNARY
from lumen.ir.types import SUPPORTED_DTYPES

from .oracle import assert_same, check

DTYPES = tuple(np.dtype(d) for d in SUPPORTED_DTYPES)
FLOATS = tuple(d for d in DTYPES if d.kind == "f")
INTEGERS = tuple(d for d in DTYPES if d.kind in "iu")

#: LUMEN_TEST_EXAMPLES=10 runs ten times as many hypothesis examples (a soak run).
_SCALE = float(os.environ.get("LUMEN_TEST_EXAMPLES", "1"))


def _examples(n):
    return max(1, int(n * _SCALE))


SETTINGS = settings(max_examples=_examples(15), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# -- compiled functions, built once -------------------------------------------------------------

_JITTED: dict = {}


def _jit(key, fn, **options):
    """One ``lumen.jit`` per key for the whole module (compiles once per specialisation)."""
    f = _JITTED.get(key)
    if f is None:
        f = _JITTED[key] = lumen.jit(fn, **options)
    return f


def _numpy(fn, *args):
    with np.errstate(all="ignore"):
        return np.asarray(fn(*args))


def assert_matches(got, expected, rtol=None, exact=False, signed_zero=True):
    """`assert_same` plus: where both results are zero, the signs of the zeros agree (unless
    NumPy's own sign is unspecified: maximum(0.0, -0.0) depends on its SIMD path)."""
    assert_same(got, expected, rtol=rtol, exact=exact)
    expected = np.asarray(expected)
    if expected.dtype.kind == "f" and signed_zero:
        both_zero = (got == 0) & (expected == 0)
        np.testing.assert_array_equal(np.signbit(got[both_zero]), np.signbit(expected[both_zero]),
                                      err_msg="sign of a zero result differs from NumPy's")


def run_and_compare(f, fn, args, rtol=None, exact=False, signed_zero=True):
    expected = _numpy(fn, *args)
    got = f(*args)
    assert_matches(got, expected, rtol, exact, signed_zero)


def _raises_like(exc):
    """The builtin class NumPy's exception belongs to (UFuncNoLoopError -> TypeError, ...)."""
    for cls in (OverflowError, TypeError, ValueError, ZeroDivisionError, IndexError):
        if isinstance(exc, cls):
            return cls
    return type(exc)


def check_or_raises(fn, *args, rtol=None, exact=False, signed_zero=True):
    """Compare with NumPy; where NumPy raises, lumen raises the same class of error; where
    NumPy's result has a dtype lumen does not support (float16), lumen raises UnsupportedError."""
    try:
        with np.errstate(all="ignore"):
            expected = np.asarray(fn(*args))
    except Exception as e:  # noqa: BLE001 - NumPy's error is the expectation
        with pytest.raises(_raises_like(e)):
            lumen.jit(fn)(*args)
        return
    if expected.dtype not in DTYPES:
        with pytest.raises(lumen.UnsupportedError):
            lumen.jit(fn)(*args)
        return
    got = check(fn, *args, rtol=rtol, exact=exact)
    assert_matches(np.asarray(got), expected, rtol, exact, signed_zero)


# -- input domains -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Domain:
    """Real interval (optionally open at either end, optionally excluding 0) the values of one
    operand are drawn from; integer dtypes take the integers inside it (clipped to the dtype)."""
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    nonzero: bool = False

    def strategy(self, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            w = dtype.itemsize * 8
            big = float(np.finfo(dtype).max)
            lo = None if self.lo == -math.inf else max(self.lo, -big)
            hi = None if self.hi == math.inf else min(self.hi, big)
            s = st.floats(lo, hi, width=w, allow_nan=False, allow_infinity=False,
                          exclude_min=self.lo_open and lo is not None,
                          exclude_max=self.hi_open and hi is not None)
        else:
            info = np.iinfo(dtype) if dtype.kind != "b" else None
            dmin, dmax = (0, 1) if info is None else (int(info.min), int(info.max))
            lo = dmin if self.lo == -math.inf else math.ceil(self.lo)
            hi = dmax if self.hi == math.inf else math.floor(self.hi)
            if self.lo_open and lo == self.lo:
                lo += 1
            if self.hi_open and hi == self.hi:
                hi -= 1
            lo, hi = max(lo, dmin), min(hi, dmax)
            if lo > hi:   # e.g. logit's (0, 1) has no integers: NumPy's result is still defined
                lo, hi = max(math.floor(self.lo), dmin), min(math.ceil(self.hi), dmax)
            s = st.integers(lo, hi)
            if dtype.kind == "b":
                s = s.map(bool)
        if self.nonzero:
            s = s.filter(lambda v: v != 0)
        return s


ANY = Domain()
NONZERO = Domain(nonzero=True)
POSITIVE = Domain(0.0, lo_open=True)
NONNEG = Domain(0.0)
UNIT = Domain(-1.0, 1.0)


def _shift_domain(dtype):
    bits = 8 * (np.dtype(dtype).itemsize if np.dtype(dtype).kind != "b" else 1)
    return Domain(0, bits - 1)


# -- op records ----------------------------------------------------------------------------------

#: Ops whose results are correctly rounded (float64 rtol 1e-12) rather than transcendental.
#: Ops for which NumPy leaves the sign of a zero result unspecified (it differs between its
#: SIMD and scalar loops, even between array lengths): max/min of +0.0 and -0.0.
UNSIGNED_ZERO = frozenset(("maximum", "minimum", "fmax", "fmin"))

EXACT = frozenset((
    "negative", "positive", "absolute", "sign", "reciprocal", "square", "sqrt", "floor", "ceil",
    "trunc", "rint", "deg2rad", "rad2deg", "add", "subtract", "multiply", "divide",
    "floor_divide", "remainder", "fmod", "maximum", "minimum", "fmax", "fmin", "copysign"))


@dataclass(frozen=True, repr=False)
class OpRecord:
    name: str
    nin: int
    ufunc: Callable
    domains: tuple                  # one Domain (or dtype -> Domain) per operand
    accepted: tuple = ()            # dtypes d for which op(d, ..., d) is supported by lumen
    unsupported: tuple = ()         # NumPy accepts, but the loop is float16: UnsupportedError
    rejected: tuple = ()            # NumPy's resolve_dtypes raises TypeError
    exact: bool = False
    fn: Callable = field(default=None, compare=False)

    def __repr__(self):
        return f"OpRecord({self.name})"

    @property
    def signed_zero(self):
        return self.name not in UNSIGNED_ZERO

    def domain(self, i, dtype):
        d = self.domains[i]
        return d(dtype) if callable(d) else d

    def elements(self, i, dtype):
        return self.domain(i, dtype).strategy(dtype)

    @property
    def layout_dtype(self):
        for d in (np.dtype(np.float64), np.dtype(np.int64), np.dtype(bool)):
            if d in self.accepted:
                return d
        return self.accepted[0]

    def jitted(self):
        return _jit(("op", self.name), self.fn)


def _classify(ufunc, nin):
    accepted, unsupported, rejected = [], [], []
    for d in DTYPES:
        try:
            loop = ufunc.resolve_dtypes((d,) * nin + (None,))
        except TypeError:
            rejected.append(d)
            continue
        (accepted if all(np.dtype(t) in DTYPES for t in loop) else unsupported).append(d)
    return tuple(accepted), tuple(unsupported), tuple(rejected)


def op_record(name, *domains):
    uf = UFUNCS[name]
    nin = uf.nin
    if not domains:
        domains = (ANY,) * nin
    assert len(domains) == nin, name
    accepted, unsupported, rejected = _classify(uf, nin)
    fn = (lambda x: uf(x)) if nin == 1 else (lambda x, y: uf(x, y))
    fn.__name__ = name
    return OpRecord(name, nin, uf, tuple(domains), accepted, unsupported, rejected,
                    name in EXACT, fn)


RECORDS = [
    # unary
    op_record("negative"), op_record("positive"), op_record("absolute"), op_record("sign"),
    op_record("reciprocal", NONZERO),          # integer 0 is an edge case of its own
    op_record("square"), op_record("sqrt", NONNEG), op_record("cbrt"),
    op_record("exp"), op_record("exp2"), op_record("expm1"),
    op_record("log", POSITIVE), op_record("log2", POSITIVE), op_record("log10", POSITIVE),
    op_record("log1p", Domain(-1.0, lo_open=True)),
    op_record("sin"), op_record("cos"), op_record("tan"),
    op_record("arcsin", UNIT), op_record("arccos", UNIT), op_record("arctan"),
    op_record("sinh"), op_record("cosh"), op_record("tanh"),
    op_record("arcsinh"), op_record("arccosh", Domain(1.0)),
    op_record("arctanh", Domain(-1.0, 1.0, lo_open=True, hi_open=True)),
    op_record("floor"), op_record("ceil"), op_record("trunc"), op_record("rint"),
    op_record("deg2rad"), op_record("rad2deg"),
    op_record("logical_not"), op_record("invert"),
    op_record("isnan"), op_record("isinf"), op_record("isfinite"), op_record("signbit"),
    # binary
    op_record("add"), op_record("subtract"), op_record("multiply"), op_record("divide"),
    op_record("floor_divide", ANY, NONZERO), op_record("remainder", ANY, NONZERO),
    op_record("fmod", ANY, NONZERO),
    op_record("power", ANY, lambda d: Domain(0, 70) if d.kind in "iub" else Domain(-8.0, 8.0)),
    op_record("arctan2"), op_record("hypot"),
    op_record("maximum"), op_record("minimum"), op_record("fmax"), op_record("fmin"),
    op_record("logaddexp"), op_record("logaddexp2"), op_record("copysign"),
    op_record("equal"), op_record("not_equal"), op_record("less"), op_record("less_equal"),
    op_record("greater"), op_record("greater_equal"),
    op_record("logical_and"), op_record("logical_or"), op_record("logical_xor"),
    op_record("bitwise_and"), op_record("bitwise_or"), op_record("bitwise_xor"),
    op_record("left_shift", ANY, _shift_domain), op_record("right_shift", ANY, _shift_domain),
    # scipy.special
    op_record("expit"), op_record("logit", Domain(0.0, 1.0, lo_open=True, hi_open=True)),
    op_record("erf"), op_record("erfc"), op_record("gammaln"), op_record("psi"),
    op_record("xlogy", ANY, POSITIVE),
]
BY_NAME = {r.name: r for r in RECORDS}


def test_every_elementwise_primitive_has_a_record():
    assert set(BY_NAME) == set(UNARY + BINARY + SCIPY) == set(UFUNCS)
    for r in RECORDS:
        assert r.accepted, r.name


VALUE_CASES = [pytest.param(r, d, id=f"{r.name}-{d.name}") for r in RECORDS for d in r.accepted]


# -- every op x every dtype it accepts: hypothesis values ---------------------------------------

def _length():
    # length 1 is a different specialisation (broadcast pattern): keep one compile per case
    return st.integers(0, 16).map(lambda n: 2 if n == 1 else n)


@pytest.mark.parametrize("rec,dtype", VALUE_CASES)
# ~740 cases, so few examples each; the edge-value test below is exhaustive
@settings(SETTINGS, max_examples=_examples(10))
@given(data=st.data())
def test_values(rec, dtype, data):
    n = data.draw(_length(), label="n")
    args = [data.draw(hnp.arrays(dtype, n, elements=rec.elements(i, dtype)), label=f"x{i}")
            for i in range(rec.nin)]
    run_and_compare(rec.jitted(), rec.fn, args, exact=rec.exact,
                    signed_zero=rec.signed_zero)


# -- special float values and integer edge values: every op x dtype, all combinations ------------

def _float_specials(dtype):
    fi = np.finfo(dtype)
    vals = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 0.3,
            0.65, 1e-8, -1e-8, 0.9999999, -0.9999999, 1.0000001, math.pi, -math.pi / 2, 7.5,
            -100.5, 88.5, -103.5, 709.0, 710.0, -745.0, 1e30, -1e30, 1e300, -1e300, 1e-300,
            float(fi.max), -float(fi.max), float(fi.tiny), -float(fi.tiny),
            float(fi.smallest_subnormal), -float(fi.smallest_subnormal)]
    with np.errstate(all="ignore"):
        return np.array(vals, dtype=dtype)


def _int_edges(dtype):
    if dtype.kind == "b":
        return np.array([False, True])
    info = np.iinfo(dtype)
    vals = {int(info.min), int(info.min) + 1, int(info.max) - 1, int(info.max), 0, 1, 2, 3, 7,
            8, 63, 64, 100, -1, -2, -3, -7, -8}
    return np.array(sorted(v for v in vals if info.min <= v <= info.max), dtype=dtype)


def _edge_values(dtype):
    return _float_specials(dtype) if dtype.kind == "f" else _int_edges(dtype)


def _allowed_for_edges(rec, dtype, values, i):
    """Integer power with negative exponents raises (tested apart); everything else is defined."""
    if rec.name == "power" and i == 1 and dtype.kind == "i":
        return values[values >= 0]
    return values


@pytest.mark.parametrize("rec,dtype", VALUE_CASES)
def test_special_and_edge_values(rec, dtype):
    vals = [_allowed_for_edges(rec, dtype, _edge_values(dtype), i) for i in range(rec.nin)]
    if rec.nin == 1:
        args = vals
    else:
        a, b = np.meshgrid(vals[0], vals[1], indexing="ij")
        args = [a.ravel(), b.ravel()]
    run_and_compare(rec.jitted(), rec.fn, args, exact=rec.exact,
                    signed_zero=rec.signed_zero)


# -- layouts: 0-d, broadcasting, empty, strided, reversed, transposed, NumPy scalars ------------

UNARY_LAYOUTS = ("0d", "npscalar", "1d", "2d", "3d", "empty", "empty2d", "strided", "reversed",
                 "transposed", "bcast_row")
BINARY_LAYOUTS = UNARY_LAYOUTS + ("col_row", "row_col", "with_0d", "with_npscalar",
                                  "empty_bcast", "strided_reversed", "transposed_bcast",
                                  "3d_bcast")


@st.composite
def _operand(draw, rec, i, dtype, shape, view):
    """An operand of logical ``shape`` in memory layout ``view``."""
    if view == "npscalar":
        v = draw(rec.elements(i, dtype))
        return dtype.type(v)
    base_shape = list(shape)
    if view == "strided":
        base_shape[-1] = 2 * base_shape[-1]
    if view == "T":
        base_shape = base_shape[::-1]
    base = draw(hnp.arrays(dtype, tuple(base_shape), elements=rec.elements(i, dtype)))
    if view == "strided":
        return base[..., ::2]
    if view == "rev":
        return base[::-1]
    if view == "T":
        return base.T
    return base


@st.composite
def layout_args(draw, rec, dtype):
    layouts = UNARY_LAYOUTS if rec.nin == 1 else BINARY_LAYOUTS
    layout = draw(st.sampled_from(layouts), label="layout")
    m, n, k = (draw(st.integers(2, 5)) for _ in range(3))
    # (shape, view) per operand; the second only for binary ops
    table = {
        "0d": [((), "c"), ((), "c")],
        "npscalar": [((), "npscalar"), ((), "npscalar")],
        "1d": [((n,), "c"), ((n,), "c")],
        "2d": [((m, n), "c"), ((m, n), "c")],
        "3d": [((k, m, n), "c"), ((k, m, n), "c")],
        "empty": [((0,), "c"), ((0,), "c")],
        "empty2d": [((0, n), "c"), ((0, n), "c")],
        "strided": [((m, n), "strided"), ((m, n), "strided")],
        "reversed": [((n,), "rev"), ((n,), "c")],
        "transposed": [((m, n), "T"), ((m, n), "c")],
        "bcast_row": [((1, n), "c"), ((m, n), "c")],
        "col_row": [((m, 1), "c"), ((n,), "c")],
        "row_col": [((1, n), "c"), ((m, 1), "c")],
        "with_0d": [((m, n), "c"), ((), "c")],
        "with_npscalar": [((n,), "c"), ((), "npscalar")],
        "empty_bcast": [((0, n), "c"), ((n,), "c")],
        "strided_reversed": [((n,), "strided"), ((n,), "rev")],
        "transposed_bcast": [((m, n), "T"), ((m, 1), "T")],
        "3d_bcast": [((k, 1, n), "c"), ((m, 1), "c")],
    }[layout]
    return [draw(_operand(rec, i, dtype, *table[i])) for i in range(rec.nin)]


@pytest.mark.parametrize("rec", [pytest.param(r, id=r.name) for r in RECORDS])
@settings(SETTINGS, max_examples=_examples(12))
@given(data=st.data())
def test_layouts(rec, data):
    dtype = rec.layout_dtype
    args = data.draw(layout_args(rec, dtype))
    run_and_compare(rec.jitted(), rec.fn, args, exact=rec.exact,
                    signed_zero=rec.signed_zero)


@pytest.mark.parametrize("name", ["add", "less", "arctan2", "left_shift"])
def test_broadcast_mismatch_raises_value_error(name):
    """Sizes are not specialised on: a compiled function checks them at call time."""
    rec = BY_NAME[name]
    dt = rec.layout_dtype
    f = rec.jitted()
    run_and_compare(f, rec.fn, [np.ones((3, 4), dt), np.ones(4, dt)])
    for shapes in (((3, 4), (5,)), ((2, 3), (3, 2)), ((0,), (2,))):
        args = [np.ones(sh, dt) for sh in shapes]
        with pytest.raises(ValueError):
            rec.fn(*args)
        with pytest.raises(ValueError):
            f(*args)


# -- dtypes NumPy rejects, dtypes lumen does not support, complex -------------------------------

REJECT_CASES = [pytest.param(r, d, id=f"{r.name}-{d.name}") for r in RECORDS for d in r.rejected]
UNSUPPORTED_CASES = [pytest.param(r, d, id=f"{r.name}-{d.name}")
                     for r in RECORDS for d in r.unsupported]


@pytest.mark.parametrize("rec,dtype", REJECT_CASES)
def test_numpy_rejected_dtypes_raise_type_error(rec, dtype):
    args = [np.ones(3, dtype) for _ in range(rec.nin)]
    with pytest.raises(TypeError):
        rec.fn(*args)
    with pytest.raises(TypeError, match=rec.name):
        lumen.jit(rec.fn)(*args)


@pytest.mark.parametrize("rec,dtype", UNSUPPORTED_CASES)
def test_float16_loops_are_unsupported(rec, dtype):
    """e.g. np.sin(int8) computes in float16, which lumen does not support."""
    args = [np.ones(3, dtype) for _ in range(rec.nin)]
    loop = rec.ufunc.resolve_dtypes((dtype,) * rec.nin + (None,))
    assert np.dtype(np.float16) in loop
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(rec.fn)(*args)


@pytest.mark.parametrize("name", ["sin", "add", "absolute", "multiply"])
def test_complex_is_unsupported(name):
    uf = UFUNCS[name]
    z = np.array([1 + 2j, 3 - 1j])
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(BY_NAME[name].fn)(*[z] * uf.nin)
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: x * 1j)(np.ones(3))
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: np.sqrt(x + 0j))(np.ones(3))


@pytest.mark.parametrize("x_dt,y_dt", [(np.int64, np.float64), (np.uint64, np.int64),
                                       (np.float32, np.int8), (np.bool_, np.float32)])
@pytest.mark.parametrize("name", ["bitwise_and", "bitwise_or", "bitwise_xor", "left_shift",
                                  "right_shift"])
def test_mixed_dtypes_numpy_rejects(name, x_dt, y_dt):
    check_or_raises(BY_NAME[name].fn, np.array([1, 2], x_dt), np.array([1, 0], y_dt))


def test_bool_negative_and_subtract_raise():
    b = np.array([True, False])
    with pytest.raises(TypeError):
        lumen.jit(lambda x: -x)(b)
    with pytest.raises(TypeError):
        lumen.jit(lambda x, y: x - y)(b, b)
    with pytest.raises(TypeError):
        lumen.jit(lambda x: np.sign(x))(b)


# -- integer edge cases NumPy defines --------------------------------------------------------------

@pytest.mark.parametrize("dtype", INTEGERS, ids=str)
@pytest.mark.parametrize("name", ["floor_divide", "remainder", "fmod"])
def test_integer_division_by_zero_is_zero(name, dtype):
    info = np.iinfo(dtype)
    x = np.array([0, 1, 5, info.max, info.min, info.min + 1] + ([-1, -5] if info.min else []),
                 dtype)
    run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x, np.zeros_like(x)])
    assert not np.any(BY_NAME[name].jitted()(x, np.zeros_like(x)))


@pytest.mark.parametrize("dtype", [d for d in INTEGERS if d.kind == "i"], ids=str)
@pytest.mark.parametrize("name", ["floor_divide", "remainder", "fmod"])
def test_int_min_by_minus_one(name, dtype):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min, info.min + 1, info.max, -7, 7], dtype)
    y = np.array([-1, 1, -1, -1, -1, -1], dtype)
    run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x, y])


@pytest.mark.parametrize("dtype", [d for d in INTEGERS if d.kind == "i"], ids=str)
@SETTINGS
@given(data=st.data())
def test_python_sign_rules_for_floor_divide_and_remainder(dtype, data):
    """Negative operands: floor division rounds toward -inf and the remainder takes the divisor's
    sign (Python's rules), fmod truncates and takes the dividend's sign (C's)."""
    info = np.iinfo(dtype)
    n = data.draw(_length())
    x = data.draw(hnp.arrays(dtype, n, elements=st.integers(int(info.min), int(info.max))))
    y = data.draw(hnp.arrays(dtype, n, elements=st.integers(-9, 9).filter(bool)))
    for name in ("floor_divide", "remainder", "fmod"):
        run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x, y])
    small = np.array([7, -7, 7, -7, 0, 6, -6], dtype)
    div = np.array([2, 2, -2, -2, -3, -3, 3], dtype)
    assert BY_NAME["floor_divide"].jitted()(small, div).tolist() == [3, -4, -4, 3, 0, -2, -2]
    assert BY_NAME["remainder"].jitted()(small, div).tolist() == [1, 1, -1, -1, 0, 0, 0]
    assert BY_NAME["fmod"].jitted()(small, div).tolist() == [1, -1, 1, -1, 0, 0, 0]


@pytest.mark.parametrize("dtype", INTEGERS, ids=str)
@pytest.mark.parametrize("name", ["left_shift", "right_shift"])
def test_shifts_past_the_width(name, dtype):
    bits = 8 * dtype.itemsize
    info = np.iinfo(dtype)
    counts = [bits - 1, bits, bits + 1, 2 * bits, int(info.max)] + ([-1, -bits] if info.min else [])
    xs = [1, 3, int(info.max), int(info.min)] + ([-1, -8] if info.min else [])
    x, y = (a.ravel() for a in np.meshgrid(np.array(xs, dtype), np.array(counts, dtype)))
    run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x, y])


@pytest.mark.parametrize("dtype", INTEGERS + (np.dtype(bool),), ids=str)
def test_integer_reciprocal(dtype):
    """NumPy computes ``1.0 / x`` and converts back: 1, -1 stay, |x| > 1 gives 0, and 0 gives
    the conversion of inf (INT_MIN for 32/64-bit signed types, 0 otherwise, on x86-64)."""
    x = _int_edges(dtype)
    run_and_compare(BY_NAME["reciprocal"].jitted(), BY_NAME["reciprocal"].fn, [x])


@pytest.mark.parametrize("dtype", [d for d in INTEGERS if d.kind == "i"], ids=str)
def test_integer_power_negative_exponent_raises(dtype):
    f = BY_NAME["power"].jitted()
    with pytest.raises(ValueError, match="negative integer powers"):
        np.power(np.array([2, 3], dtype), np.array([1, -1], dtype))
    with pytest.raises(ValueError, match="negative integer powers"):
        f(np.array([2, 3], dtype), np.array([1, -1], dtype))
    with pytest.raises(ValueError, match="negative integer powers"):
        lumen.jit(lambda x: x ** -1)(np.array([2, 3], dtype))


@pytest.mark.parametrize("dtype", INTEGERS, ids=str)
def test_integer_power_wraps_and_zero_exponent(dtype):
    info = np.iinfo(dtype)
    base = np.array([0, 1, 2, 3, int(info.max), int(info.min), 7] + ([-1, -2] if info.min else []),
                    dtype)
    x, y = (a.ravel() for a in np.meshgrid(base, np.array([0, 1, 2, 3, 31, 63, 64, 65], dtype)))
    run_and_compare(BY_NAME["power"].jitted(), BY_NAME["power"].fn, [x, y])


@pytest.mark.parametrize("dtype", INTEGERS, ids=str)
def test_integer_overflow_wraps(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.max, info.min, info.max, info.min], dtype)
    y = np.array([1, -1 if info.min else 1, info.max, info.max], dtype)
    for name in ("add", "subtract", "multiply"):
        run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x, y])
    for name in ("negative", "absolute", "square"):
        run_and_compare(BY_NAME[name].jitted(), BY_NAME[name].fn, [x])


# -- NEP 50 promotion ------------------------------------------------------------------------------

def _values_for(dtype, n=5, positive=False):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.array([True, False, True, True, False][:n])
    if dtype.kind == "u" or positive:
        return np.array([1, 2, 3, 5, 7][:n], dtype)
    return np.array([1, -2, 3, -5, 7][:n], dtype)


SCALAR_SIDES = [
    # (array dtype, python scalar, scalar on the left)
    (np.int8, 3, False), (np.uint8, 2, True), (np.float32, 2.5, False), (np.float32, 3, True),
    (np.int16, 1.5, True), (np.bool_, 2, False), (np.uint64, 3, False), (np.float64, -2, True),
]


@pytest.mark.parametrize("arr_dt,scalar,left", SCALAR_SIDES,
                         ids=[f"{np.dtype(a).name}-{s!r}-{'l' if l else 'r'}"
                              for a, s, l in SCALAR_SIDES])
@pytest.mark.parametrize("name", BINARY + ("xlogy",))
def test_nep50_python_scalar_argument(name, arr_dt, scalar, left):
    """A Python scalar passed to the jitted function is weak, as NumPy 2 treats it."""
    uf = UFUNCS[name]
    x = _values_for(arr_dt, positive=True)
    if left:
        def fn(s, a):
            return uf(s, a)
        args = (scalar, x)
    else:
        def fn(a, s):
            return uf(a, s)
        args = (x, scalar)
    fn.__name__ = name
    check_or_raises(fn, *args, exact=name in EXACT, signed_zero=name not in UNSIGNED_ZERO)


LITERAL_CASES = [
    ("int8+3", lambda x: x + 3, np.int8), ("3-int8", lambda x: 3 - x, np.int8),
    ("uint8*2", lambda x: x * 2, np.uint8), ("float32+2.5", lambda x: x + 2.5, np.float32),
    ("float32*3", lambda x: x * 3, np.float32), ("int8+2.5", lambda x: x + 2.5, np.int8),
    ("int16/2", lambda x: x / 2, np.int16), ("float32/3", lambda x: x / 3, np.float32),
    ("int8//2", lambda x: x // 2, np.int8), ("-7%int8", lambda x: -7 % x, np.int8),
    ("int8**2", lambda x: x ** 2, np.int8), ("float32**0.5", lambda x: x ** 0.5, np.float32),
    ("uint8<<1", lambda x: x << 1, np.uint8), ("int32>>1", lambda x: x >> 1, np.int32),
    ("int8&3", lambda x: x & 3, np.int8), ("bool|True", lambda x: x | True, np.bool_),
    ("bool+1", lambda x: x + 1, np.bool_), ("bool*1.5", lambda x: x * 1.5, np.bool_),
    ("maximum(int8,2)", lambda x: np.maximum(x, 2), np.int8),
    ("minimum(float32,0.5)", lambda x: np.minimum(x, 0.5), np.float32),
    ("arctan2(float32,1)", lambda x: np.arctan2(x, 1), np.float32),
    ("hypot(int16,1.0)", lambda x: np.hypot(x, 1.0), np.int16),
    ("copysign(float32,-1)", lambda x: np.copysign(x, -1), np.float32),
    ("logaddexp(float32,0)", lambda x: np.logaddexp(x, 0), np.float32),
    ("int8==3", lambda x: x == 3, np.int8), ("float32<2.5", lambda x: x < 2.5, np.float32),
    ("uint64+1", lambda x: x + 1, np.uint64), ("uint64+2**63", lambda x: x + 2 ** 63, np.uint64),
    ("int64+1.5", lambda x: x + 1.5, np.int64),
    ("float32+np.float64", lambda x: x + np.float64(2.5), np.float32),
    ("int8+np.int64", lambda x: x + np.int64(3), np.int8),
    ("int8+np.int8", lambda x: x + np.int8(3), np.int8),
    ("float32+np.float32", lambda x: x + np.float32(0.1), np.float32),
    ("uint8+np.int8", lambda x: x + np.int8(-1), np.uint8),
    ("float32+0d-float64", lambda x: x + np.array(2.0), np.float32),
    ("int8+0d-int64", lambda x: x + np.array(3), np.int8),
    ("int8+True", lambda x: x + True, np.int8),
    ("sqrt(int8)*1.5", lambda x: np.sqrt(x.astype(np.float32)) * 1.5, np.int8),
    ("exp(float32)+1", lambda x: np.exp(x) + 1, np.float32),
]


@pytest.mark.parametrize("fn,dtype", [pytest.param(f, d, id=i) for i, f, d in LITERAL_CASES])
def test_nep50_python_scalar_literal(fn, dtype):
    check_or_raises(fn, _values_for(dtype, positive=True))


MIXED_PAIRS = [(np.int32, np.float32), (np.uint64, np.int64), (np.bool_, np.int8),
               (np.int8, np.uint8), (np.uint32, np.int32), (np.int16, np.float32),
               (np.int64, np.float32), (np.uint8, np.float64), (np.float32, np.float64),
               (np.bool_, np.float32), (np.uint16, np.int8), (np.uint64, np.float32)]


@pytest.mark.parametrize("x_dt,y_dt", MIXED_PAIRS,
                         ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in MIXED_PAIRS])
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "floor_divide",
                                  "remainder", "power", "maximum", "fmin", "less", "equal",
                                  "arctan2", "logaddexp", "copysign", "bitwise_or", "right_shift",
                                  "logical_xor"])
def test_nep50_mixed_array_dtypes(name, x_dt, y_dt):
    check_or_raises(BY_NAME[name].fn, _values_for(x_dt, positive=True),
                    _values_for(y_dt, positive=True)[::-1].copy(), exact=name in EXACT,
                    signed_zero=name not in UNSIGNED_ZERO)


NUMPY_SCALAR_ARGS = [
    (np.float32, np.float64(2.5)), (np.float32, np.float32(2.5)), (np.int8, np.int64(3)),
    (np.int8, np.int8(3)), (np.uint8, np.int8(-1)), (np.int16, np.float32(0.5)),
    (np.float64, np.bool_(True)), (np.uint64, np.int64(2)), (np.int32, np.float32(1.5)),
]


@pytest.mark.parametrize("arr_dt,scalar", NUMPY_SCALAR_ARGS,
                         ids=[f"{np.dtype(a).name}-{type(s).__name__}"
                              for a, s in NUMPY_SCALAR_ARGS])
@pytest.mark.parametrize("name", ["add", "multiply", "maximum", "less", "divide"])
def test_nep50_numpy_scalar_argument(name, arr_dt, scalar):
    """NumPy scalars are strong (they promote like arrays), as arguments and as 0-d arrays."""
    fn = BY_NAME[name].fn
    x = _values_for(arr_dt, positive=True)
    check_or_raises(fn, x, scalar, exact=True, signed_zero=name not in UNSIGNED_ZERO)
    check_or_raises(fn, np.asarray(scalar), x, exact=True, signed_zero=name not in UNSIGNED_ZERO)


UNARY_RECORDS = [r for r in RECORDS if r.nin == 1]


@pytest.mark.parametrize("scalar", [-2, -0.0, True], ids=repr)
@pytest.mark.parametrize("rec", [pytest.param(r, id=r.name) for r in UNARY_RECORDS])
def test_unary_python_scalar_argument(rec, scalar):
    """A lone Python int / float / bool argument computes in int64 / float64 / bool."""
    kind = np.dtype(bool) if isinstance(scalar, bool) else type(scalar)
    try:
        loop = rec.ufunc.resolve_dtypes((kind, None))
    except TypeError:
        loop = ()
    if any(np.dtype(d) not in DTYPES for d in loop):     # e.g. signbit(True) loops in float16
        with pytest.raises(lumen.UnsupportedError):
            lumen.jit(rec.fn)(scalar)
        return
    check_or_raises(rec.fn, scalar, exact=rec.exact)


def test_ufunc_dtype_argument():
    check(lambda x, y: np.add(x, y, dtype=np.float32), np.arange(4, dtype=np.int8),
          np.arange(4, dtype=np.int8))
    check(lambda x: np.sqrt(x, dtype=np.float64), np.arange(4, dtype=np.float32))


# Out-of-range Python ints: NumPy 2 raises for arithmetic and answers comparisons exactly.
OOB_CASES = [
    ("int8+1000", lambda x: x + 1000, np.int8), ("uint8+-1", lambda x: x + -1, np.uint8),
    ("maximum(int8,1000)", lambda x: np.maximum(x, 1000), np.int8),
    ("int8<1000", lambda x: x < 1000, np.int8), ("int8==1000", lambda x: x == 1000, np.int8),
    ("uint8>-1", lambda x: x > -1, np.uint8), ("uint8!=-1", lambda x: x != -1, np.uint8),
]


@pytest.mark.parametrize("fn,dtype", [pytest.param(f, d, id=i) for i, f, d in OOB_CASES])
def test_nep50_out_of_range_python_int_literal(fn, dtype):
    check_or_raises(fn, _values_for(dtype, positive=True))


OOB_ARGUMENTS = [
    ("int8+1000", lambda x, s: x + s, np.int8, 1000),
    ("uint8+-1", lambda x, s: x + s, np.uint8, -1),
    ("int8<1000", lambda x, s: x < s, np.int8, 1000),
    ("uint8!=-1", lambda x, s: x != s, np.uint8, -1),
    ("uint64+2**63+1", lambda x, s: x + s, np.uint64, 2 ** 63 + 1),
    ("uint64<2**64-1", lambda x, s: x < s, np.uint64, 2 ** 64 - 1),
]


@pytest.mark.parametrize("fn,dtype,scalar", [pytest.param(f, d, v, id=i)
                                             for i, f, d, v in OOB_ARGUMENTS])
def test_nep50_out_of_range_python_int_argument(fn, dtype, scalar):
    """The same with the Python int passed to the jitted function (its value is only known at
    call time): NumPy raises OverflowError for arithmetic and compares exactly."""
    check_or_raises(fn, _values_for(dtype, positive=True), scalar)


# -- casts between all supported dtypes ------------------------------------------------------------

CAST_PAIRS = [pytest.param(s, d, id=f"{s.name}->{d.name}") for s in DTYPES for d in DTYPES]


def _cast_elements(src, dst):
    """Values whose conversion NumPy defines: float -> integer only inside the target's range
    (C leaves the rest undefined, and NumPy's answers differ by platform)."""
    if src.kind == "f" and dst.kind in "iu":
        info = np.iinfo(dst)
        lo, hi = float(info.min), float(info.max)
        # largest float of src below 2**bits (and above -2**bits) converts exactly in range
        hi = float(np.nextafter(src.type(hi + 1.0), src.type(0)))
        lo = max(lo, -float(np.finfo(src).max)) if info.min else -0.5
        return st.floats(lo, hi, width=8 * src.itemsize, allow_nan=False, allow_infinity=False)
    return ANY.strategy(src)


@pytest.mark.parametrize("src,dst", CAST_PAIRS)
@settings(SETTINGS, max_examples=_examples(10))
@given(data=st.data())
def test_astype(src, dst, data):
    x = data.draw(hnp.arrays(src, _length(), elements=_cast_elements(src, dst)))
    f = _jit(("astype", dst), lambda a: a.astype(dst))
    run_and_compare(f, lambda a: a.astype(dst), [x], exact=True)


@pytest.mark.parametrize("src", FLOATS, ids=str)
@pytest.mark.parametrize("dst", FLOATS + (np.dtype(bool),), ids=str)
def test_astype_special_floats(src, dst):
    x = _float_specials(src)
    f = _jit(("astype", dst), lambda a: a.astype(dst))
    run_and_compare(f, lambda a: a.astype(dst), [x], exact=True)


@pytest.mark.parametrize("src", INTEGERS + (np.dtype(bool),), ids=str)
@pytest.mark.parametrize("dst", DTYPES, ids=str)
def test_astype_integer_edges(src, dst):
    x = _int_edges(src)
    f = _jit(("astype", dst), lambda a: a.astype(dst))
    run_and_compare(f, lambda a: a.astype(dst), [x], exact=True)


def test_astype_spellings():
    x = np.array([1.5, -2.5, 3.0], np.float32)
    check(lambda a: a.astype("int16"), x)
    check(lambda a: a.astype(float), x)
    check(lambda a: a.astype(int), x)
    check(lambda a: a.astype(bool), x)
    check(lambda a: np.astype(a, np.uint8), np.abs(x))
    check(lambda a: a.astype(np.float32), x)      # same dtype: still a new array
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda a: a.astype(np.complex128))(x)
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda a: a.astype(np.float16))(x)


# -- np.where --------------------------------------------------------------------------------------

WHERE_TYPES = ([(np.dtype(bool), d, d) for d in DTYPES] +
               [(np.dtype(c), np.dtype(x), np.dtype(y)) for c, x, y in
                [(np.int8, np.float32, np.float32), (np.float64, np.int8, np.uint8),
                 (np.uint16, np.int32, np.float32), (bool, np.uint64, np.int64),
                 (bool, bool, np.int8), (np.float32, np.float32, np.float64)]])


@pytest.mark.parametrize("c_dt,x_dt,y_dt", WHERE_TYPES,
                         ids=[f"{c.name}-{x.name}-{y.name}" for c, x, y in WHERE_TYPES])
@SETTINGS
@given(data=st.data())
def test_where(c_dt, x_dt, y_dt, data):
    m, n = data.draw(st.integers(2, 5)), data.draw(st.integers(0, 5).map(lambda v: v or 2))
    shapes = data.draw(st.sampled_from([((n,), (n,), (n,)), ((m, 1), (n,), ()),
                                        ((), (m, n), (n,)), ((0, n), (n,), (1, n))]))

    def arr(dt, shape):
        if dt.kind == "f":   # conditions and values include nan and -0.0
            el = st.one_of(ANY.strategy(dt), st.sampled_from([np.nan, -0.0, np.inf]))
        else:
            el = ANY.strategy(dt)
        return data.draw(hnp.arrays(dt, shape, elements=el))

    args = [arr(c_dt, shapes[0]), arr(x_dt, shapes[1]), arr(y_dt, shapes[2])]
    f = _jit("where", lambda c, x, y: np.where(c, x, y))
    run_and_compare(f, lambda c, x, y: np.where(c, x, y), args, exact=True)


WHERE_LITERALS = [
    ("int8-0", lambda c, x: np.where(c, x, 0), np.int8),
    ("float32-1.5", lambda c, x: np.where(c, 1.5, x), np.float32),
    ("int8-1000-wraps", lambda c, x: np.where(c, 1000, x), np.int8),
    ("uint8--1-wraps", lambda c, x: np.where(c, x, -1), np.uint8),
    ("int16-2.5", lambda c, x: np.where(c, x, 2.5), np.int16),
    ("bool-float64-scalar", lambda c, x: np.where(c, x, np.float64(0.5)), np.float32),
    ("expr", lambda c, x: np.where(x > 2, x * 2, -x), np.int32),
    ("nan", lambda c, x: np.where(c, np.nan, x), np.float32),
]


@pytest.mark.parametrize("fn,dtype", [pytest.param(f, d, id=i) for i, f, d in WHERE_LITERALS])
def test_where_literals(fn, dtype):
    check_or_raises(fn, np.array([True, False, True, False, False]), _values_for(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.int8], ids=str)
def test_where_scalar_arguments(dtype):
    c = np.array([True, False, True])
    check(lambda c, x, s: np.where(c, x, s), c, _values_for(dtype, 3), 2)
    check(lambda c, x, s: np.where(c, s, x), c, _values_for(dtype, 3), 2.5)
    check(lambda c, s, t: np.where(c, s, t), c, 1, 2.5)


# -- np.clip ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@SETTINGS
@given(data=st.data())
def test_clip_arrays(dtype, data):
    n = data.draw(_length())
    el = ANY.strategy(dtype)
    if dtype.kind == "f":
        el = st.one_of(el, st.sampled_from([np.nan, -0.0, np.inf, -np.inf]))
    x, lo, hi = (data.draw(hnp.arrays(dtype, n, elements=el)) for _ in range(3))
    f = _jit("clip3", lambda x, lo, hi: np.clip(x, lo, hi))
    run_and_compare(f, lambda x, lo, hi: np.clip(x, lo, hi), [x, lo, hi], exact=True,
                    signed_zero=False)
    g = _jit("clip_method", lambda x, hi: x.clip(None, hi))
    run_and_compare(g, lambda x, hi: x.clip(None, hi), [x, hi], exact=True, signed_zero=False)


CLIP_LITERALS = [
    ("int8-0-10", lambda x: np.clip(x, 0, 10), np.int8),
    ("uint8-2-4", lambda x: np.clip(x, 2, 4), np.uint8),
    ("float32-0.5-2.5", lambda x: np.clip(x, 0.5, 2.5), np.float32),
    ("float64-lo-gt-hi", lambda x: np.clip(x, 3.0, 1.0), np.float64),
    ("int8-float-bounds", lambda x: np.clip(x, -1.5, 2.5), np.int8),
    ("float32-np.float64", lambda x: np.clip(x, 1.5, np.float64(2.5)), np.float32),
    ("int16-min-kw", lambda x: np.clip(x, min=2), np.int16),
    ("float64-max-kw", lambda x: np.clip(x, max=2.0), np.float64),
    ("float64-nan-bound", lambda x: np.clip(x, np.nan, 2.0), np.float64),
    ("int8-0-1000", lambda x: np.clip(x, 0, 1000), np.int8),
    ("uint8--5-10", lambda x: np.clip(x, -5, 10), np.uint8),
]


@pytest.mark.parametrize("fn,dtype", [pytest.param(f, d, id=i) for i, f, d in CLIP_LITERALS])
def test_clip_literals(fn, dtype):
    check_or_raises(fn, _values_for(dtype), signed_zero=False)


def test_clip_scalar_arguments_broadcasting():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    check(lambda x, lo, hi: np.clip(x, lo, hi), x, -1, 2.5)
    check(lambda x, lo, hi: np.clip(x, lo, hi), x, np.array([[-1.0], [0.0], [1.0]]),
          np.float32(3))
    check(lambda x, lo: np.clip(x, lo, None), x[:, ::-1], np.array([0, 1, 2, 3], np.int8))


# -- np.round --------------------------------------------------------------------------------------

ROUND_DECIMALS = (-3, -1, 0, 1, 2, 5)


@pytest.mark.parametrize("decimals", ROUND_DECIMALS)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@SETTINGS
@given(data=st.data())
def test_round_floats(dtype, decimals, data):
    el = st.one_of(st.floats(-1e6, 1e6, width=8 * dtype.itemsize),
                   st.integers(-20000, 20000).map(lambda v: v / 8),   # exact halves
                   ANY.strategy(dtype))
    x = data.draw(hnp.arrays(dtype, _length(), elements=el))
    f = _jit(("round", decimals), lambda a: np.round(a, decimals))
    run_and_compare(f, lambda a: np.round(a, decimals), [x], exact=True)
    g = _jit(("round-method", decimals), lambda a: a.round(decimals))
    run_and_compare(g, lambda a: a.round(decimals), [x], exact=True)


def test_round_specials_and_spellings():
    for dtype in FLOATS:
        x = _float_specials(dtype)
        check(lambda a: np.round(a), x, exact=True)
        check(lambda a: np.around(a, 2), x, exact=True)
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.675, -0.0])
    check(lambda a: np.round(a), x, exact=True)      # half to even, -0.0 kept
    check(lambda a: np.round(a, 2), x, exact=True)


@pytest.mark.parametrize("decimals", (0, 2, -1, -2))
@pytest.mark.parametrize("dtype", INTEGERS + (np.dtype(bool),), ids=str)
def test_round_integers(dtype, decimals):
    x = _int_edges(dtype)
    check_or_raises(lambda a: np.round(a, decimals), x)


# -- fused chains of elementwise primitives (casts inside one kernel) ------------------------------

COMPOSITES = {
    "poly": lambda x, y: x * x + 3 * y - 1,
    "sin_cast_cmp": lambda x, y: np.sin(x.astype(np.float32)) + (y > 0),
    "where_sqrt": lambda x, y: np.where(x > y, np.sqrt(np.abs(x) * 1.0), y / 2),
    "logic": lambda x, y: np.logical_and(x > 0, ~(y < 0)) | np.isnan(x / 3.0),
    "clip_round": lambda x, y: np.round(np.clip(x, 0, 2), 1) * y,
    "divmod": lambda x, y: (x // np.where(y == 0, 1, y), x % np.where(y == 0, 1, y)),
    "exp_log": lambda x, y: np.log1p(np.exp(-np.abs(x * 0.5))) - np.maximum(y, 0),
    "bits": lambda x, y: ((x & 15) << 2) ^ (y >> 1),
}
COMPOSITE_DTYPES = [(np.float64, np.float64), (np.float32, np.float32), (np.int32, np.float32),
                    (np.int16, np.int16), (np.uint8, np.int8), (np.bool_, np.float64)]


class _Small:
    """Element source for composite tests: moderate values so exponentials stay finite."""
    nin = 2

    @staticmethod
    def elements(i, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return st.floats(-50, 50, width=8 * dtype.itemsize)
        return Domain(-50, 50).strategy(dtype)


@pytest.mark.parametrize("x_dt,y_dt", COMPOSITE_DTYPES,
                         ids=[f"{np.dtype(a).name}-{np.dtype(b).name}"
                              for a, b in COMPOSITE_DTYPES])
@pytest.mark.parametrize("name", list(COMPOSITES))
@settings(SETTINGS, max_examples=_examples(8))
@given(data=st.data())
def test_fused_composites(name, x_dt, y_dt, data):
    fn = COMPOSITES[name]
    x_dt, y_dt = np.dtype(x_dt), np.dtype(y_dt)
    layout = data.draw(st.sampled_from([((6,), (6,)), ((3, 1), (4,)), ((2, 3), ())]))
    x = data.draw(hnp.arrays(x_dt, layout[0], elements=_Small.elements(0, x_dt)))
    y = data.draw(hnp.arrays(y_dt, layout[1], elements=_Small.elements(1, y_dt)))
    try:
        with np.errstate(all="ignore"):
            expected = fn(x, y)
    except Exception as e:  # noqa: BLE001 - NumPy's error is the expectation
        with pytest.raises(_raises_like(e)):
            _jit(("composite", name), fn)(x, y)
        return
    got = _jit(("composite", name), fn)(x, y)
    if isinstance(expected, tuple):
        for g, e in zip(got, expected):
            assert_matches(g, np.asarray(e), signed_zero=False)
    else:
        assert_matches(got, np.asarray(expected), signed_zero=False)
