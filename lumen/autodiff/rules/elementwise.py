"""Partial derivatives of the elementwise primitives: ``PARTIALS[op](e, inputs, out)`` returns
one value per input (None: zero). Forward mode sums ``partial * tangent``; reverse mode
multiplies the cotangent by each partial and sums it back to the input's shape.

Conventions at kinks: d|x|/dx = sign(x) (0 at 0); maximum / minimum (and so clip) split the
gradient evenly at ties, as JAX's jnp.maximum does, so relu written maximum(x, 0) has the
derivative 1/2 at 0; fmax / fmin also pass it to the number past a NaN; x ** 0 has the
derivative 0, at 0 too.
"""
from __future__ import annotations

import math

from ..emit import LN2, LN10

#: Elementwise primitives whose output does not change smoothly with their inputs.
ZERO = frozenset(("sign", "floor", "ceil", "trunc", "rint", "floor_divide", "equal", "not_equal",
                  "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
                  "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
                  "invert", "left_shift", "right_shift", "isnan", "isinf", "isfinite", "signbit",
                  "stop_gradient"))


def _one(e, x):
    return e.const(1, x)


def _sqrt_term(e, x, sign):
    """sqrt(x*x + sign)."""
    return e.op("sqrt", e.add(e.square(x), e.const(sign, x)))


def _half_split(e, x, y, greater, skip_nan=False):
    """d max(x, y)/dx: 1 where x wins, 1/2 at ties, 0 where y wins. ``skip_nan`` (fmax,
    fmin): x also wins where y is NaN."""
    win = e.op("greater" if greater else "less", x, y)
    if skip_nan:
        win = e.op("logical_or", win, e.op("isnan", y))
    tie = e.op("equal", x, y)
    one, half, zero = e.const(1, x), e.const(0.5, x), e.const(0, x)
    px = e.select(win, one, e.select(tie, half, zero))
    return px, e.sub(one, px)


#: Bernoulli-number coefficients of trigamma's asymptotic series in 1/z (z >= _SHIFT):
#: 1/z + 1/(2z²) + 1/(6z³) - 1/(30z⁵) + 1/(42z⁷) - 1/(30z⁹) + 5/(66z¹¹) - 691/(2730z¹³).
_TRIGAMMA_SERIES = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)
_SHIFT = 10


def _trigamma_positive(e, x):
    """psi'(x) for x > 0: the recurrence psi'(x) = psi'(x + 1) + 1/x² up to z = x + _SHIFT,
    then the asymptotic series (relative error below 1e-15 there)."""
    total = None
    for k in range(_SHIFT):
        term = e.recip(e.square(e.add(x, e.const(k, x))))
        total = term if total is None else e.add(total, term)
    z = e.add(x, e.const(_SHIFT, x))
    w = e.recip(e.square(z))
    poly = e.const(_TRIGAMMA_SERIES[-1], x)
    for c in reversed(_TRIGAMMA_SERIES[:-1]):
        poly = e.add(e.mul(poly, w), e.const(c, x))
    # 1/z + 1/(2z²) + (1/z³) * poly(1/z²)
    rz = e.recip(z)
    series = e.add(rz, e.add(e.scale(w, 0.5), e.mul(e.mul(w, rz), poly)))
    return e.add(total, series)


def _trigamma(e, x):
    """psi'(x), the derivative of digamma; for x < 1/2 by reflection,
    psi'(x) = pi² / sin²(pi x) - psi'(1 - x)."""
    left = e.op("less", x, e.const(0.5, x))
    y = e.select(left, e.sub(_one(e, x), x), x)          # y >= 1/2
    t = _trigamma_positive(e, y)
    s = e.op("sin", e.scale(x, math.pi))
    return e.select(left, e.sub(e.div(e.const(math.pi ** 2, x), e.square(s)), t), t)


def _psi(e, xs, out):
    return [_trigamma(e, xs[0])]


PARTIALS = {
    "add": lambda e, xs, out: [_one(e, xs[0]), _one(e, xs[1])],
    "subtract": lambda e, xs, out: [_one(e, xs[0]), e.const(-1, xs[1])],
    "multiply": lambda e, xs, out: [xs[1], xs[0]],
    "divide": lambda e, xs, out: [e.recip(xs[1]), e.neg(e.div(out, xs[1]))],
    "negative": lambda e, xs, out: [e.const(-1, xs[0])],
    "positive": lambda e, xs, out: [_one(e, xs[0])],
    "absolute": lambda e, xs, out: [e.op("sign", xs[0])],
    "reciprocal": lambda e, xs, out: [e.neg(e.square(out))],
    "square": lambda e, xs, out: [e.scale(xs[0], 2)],
    "sqrt": lambda e, xs, out: [e.div(e.const(0.5, out), out)],
    "cbrt": lambda e, xs, out: [e.recip(e.scale(e.square(out), 3))],
    "exp": lambda e, xs, out: [out],
    "exp2": lambda e, xs, out: [e.scale(out, LN2)],
    "expm1": lambda e, xs, out: [e.add(out, _one(e, out))],
    "log": lambda e, xs, out: [e.recip(xs[0])],
    "log2": lambda e, xs, out: [e.recip(e.scale(xs[0], LN2))],
    "log10": lambda e, xs, out: [e.recip(e.scale(xs[0], LN10))],
    "log1p": lambda e, xs, out: [e.recip(e.add(xs[0], _one(e, xs[0])))],
    "sin": lambda e, xs, out: [e.op("cos", xs[0])],
    "cos": lambda e, xs, out: [e.neg(e.op("sin", xs[0]))],
    "tan": lambda e, xs, out: [e.add(_one(e, out), e.square(out))],
    "arcsin": lambda e, xs, out: [e.recip(e.op("sqrt", e.sub(_one(e, xs[0]), e.square(xs[0]))))],
    "arccos": lambda e, xs, out: [e.neg(e.recip(e.op("sqrt", e.sub(_one(e, xs[0]), e.square(xs[0])))))],
    "arctan": lambda e, xs, out: [e.recip(e.add(_one(e, xs[0]), e.square(xs[0])))],
    "sinh": lambda e, xs, out: [e.op("cosh", xs[0])],
    "cosh": lambda e, xs, out: [e.op("sinh", xs[0])],
    "tanh": lambda e, xs, out: [e.sub(_one(e, out), e.square(out))],
    "arcsinh": lambda e, xs, out: [e.recip(_sqrt_term(e, xs[0], 1))],
    "arccosh": lambda e, xs, out: [e.recip(_sqrt_term(e, xs[0], -1))],
    "arctanh": lambda e, xs, out: [e.recip(e.sub(_one(e, xs[0]), e.square(xs[0])))],
    "deg2rad": lambda e, xs, out: [e.const(math.pi / 180, xs[0])],
    "rad2deg": lambda e, xs, out: [e.const(180 / math.pi, xs[0])],
    "power": lambda e, xs, out: [
        e.where_zero(e.op("equal", xs[1], e.const(0, xs[1])),
                     e.mul(xs[1], e.op("power", xs[0], e.sub(xs[1], _one(e, xs[1]))))),
        e.where_zero(e.op("equal", xs[0], e.const(0, xs[0])), e.mul(out, e.op("log", xs[0])))],
    "arctan2": lambda e, xs, out: [
        e.div(xs[1], e.add(e.square(xs[0]), e.square(xs[1]))),
        e.neg(e.div(xs[0], e.add(e.square(xs[0]), e.square(xs[1]))))],
    "hypot": lambda e, xs, out: [e.div(xs[0], out), e.div(xs[1], out)],
    "maximum": lambda e, xs, out: list(_half_split(e, xs[0], xs[1], True)),
    "minimum": lambda e, xs, out: list(_half_split(e, xs[0], xs[1], False)),
    "fmax": lambda e, xs, out: list(_half_split(e, xs[0], xs[1], True, skip_nan=True)),
    "fmin": lambda e, xs, out: list(_half_split(e, xs[0], xs[1], False, skip_nan=True)),
    "logaddexp": lambda e, xs, out: [e.op("exp", e.sub(xs[0], out)), e.op("exp", e.sub(xs[1], out))],
    "logaddexp2": lambda e, xs, out: [e.op("exp2", e.sub(xs[0], out)), e.op("exp2", e.sub(xs[1], out))],
    "copysign": lambda e, xs, out: [e.mul(e.op("sign", xs[0]), e.op("copysign", _one(e, xs[1]), xs[1])), None],
    "fmod": lambda e, xs, out: [_one(e, xs[0]), e.neg(e.op("trunc", e.div(xs[0], xs[1])))],
    "remainder": lambda e, xs, out: [_one(e, xs[0]), e.neg(e.op("floor", e.div(xs[0], xs[1])))],
    "expit": lambda e, xs, out: [e.mul(out, e.op("expit", e.neg(xs[0])))],   # no 1 - out
    "logit": lambda e, xs, out: [e.recip(e.mul(xs[0], e.sub(_one(e, xs[0]), xs[0])))],
    "erf": lambda e, xs, out: [e.scale(e.op("exp", e.neg(e.square(xs[0]))), 2 / math.sqrt(math.pi))],
    "erfc": lambda e, xs, out: [e.scale(e.op("exp", e.neg(e.square(xs[0]))), -2 / math.sqrt(math.pi))],
    "gammaln": lambda e, xs, out: [e.op("psi", xs[0])],
    "psi": _psi,
    "xlogy": lambda e, xs, out: [
        e.where_zero(e.op("equal", xs[0], e.const(0, xs[0])), e.op("log", xs[1])),
        e.div(xs[0], xs[1])],
    "softplus": lambda e, xs, out: [e.op("expit", xs[0])],
    "log1mexp": lambda e, xs, out: [e.recip(e.op("expm1", xs[0]))],
}
