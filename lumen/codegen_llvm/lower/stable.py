"""Scalar lowering of the primitives only lumen creates (`lumen.ir.ops.stable`), and of
scipy.special.psi (digamma), which libm lacks."""
from __future__ import annotations

import math

import llvmlite.ir as ir


def _softplus(ctx, a, dt, out, p):
    """x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) (never overflows)."""
    from .scalar import call_intrinsic, call_libm
    b = ctx.builder
    (x,) = a
    zero = ir.Constant(x.type, 0.0)
    pos = b.fcmp_ordered(">", x, zero)
    t = b.select(pos, b.fneg(x), x)
    tail = call_libm(ctx, "log1p", call_intrinsic(ctx, "exp", t))
    return b.select(pos, b.fadd(x, tail), tail)


def _log1mexp(ctx, a, dt, out, p):
    """x < ln 2 ? log(-expm1(-x)) : log1p(-exp(-x)) (Maechler's note)."""
    from .scalar import call_intrinsic, call_libm
    b = ctx.builder
    (x,) = a
    negx = b.fneg(x)
    near = call_intrinsic(ctx, "log", b.fneg(call_libm(ctx, "expm1", negx)))
    far = call_libm(ctx, "log1p", b.fneg(call_intrinsic(ctx, "exp", negx)))
    return b.select(b.fcmp_ordered("<", x, ir.Constant(x.type, math.log(2.0))), near, far)


def _psi(ctx, a, dt, out, p):
    """digamma: psi(x) = psi(x + 6) - sum_{k<6} 1/(x + k), then the asymptotic series at
    z = x + 6 >= 6; for x < 0 the reflection psi(x) = psi(1 - x) - pi / tan(pi x)."""
    from .scalar import call_intrinsic, call_libm
    b = ctx.builder
    (x,) = a
    if x.type == ir.FloatType():          # float32: computed in float64, rounded once
        wide = _psi(ctx, [b.fpext(x, ir.DoubleType())], dt, out, p)
        return b.fptrunc(wide, ir.FloatType())

    def c(v):
        return ir.Constant(x.type, v)
    reflect = b.fcmp_ordered("<", x, c(0.0))
    y = b.select(reflect, b.fsub(c(1.0), x), x)
    shift = c(0.0)
    for k in range(6):
        shift = b.fadd(shift, b.fdiv(c(1.0), b.fadd(y, c(float(k)))))
    z = b.fadd(y, c(6.0))
    iz2 = b.fdiv(c(1.0), b.fmul(z, z))
    # ln z - 1/(2z) - sum_k B_2k / (2k z^2k), as a polynomial in 1/z^2
    poly = c(0.0)
    for coef in (691.0 / 32760, -1.0 / 132, 1.0 / 240, -1.0 / 252, 1.0 / 120, -1.0 / 12):
        poly = b.fadd(b.fmul(poly, iz2), c(coef))
    poly = b.fmul(poly, iz2)
    psi_z = b.fadd(b.fsub(call_intrinsic(ctx, "log", z), b.fdiv(c(0.5), z)), poly)
    result = b.fsub(psi_z, shift)
    # reflection: pi / tan(pi x), with x reduced exactly modulo 2 first (tan of a huge
    # argument would have lost its fractional part); poles at 0, -1, -2, ... give NaN
    pi = c(math.pi)
    r = b.fsub(x, b.fmul(c(2.0), call_intrinsic(ctx, "roundeven", b.fmul(x, c(0.5)))))
    reflected = b.fsub(result, b.fdiv(pi, call_libm(ctx, "tan", b.fmul(pi, r))))
    pole = b.fcmp_ordered("==", x, call_intrinsic(ctx, "floor", x))
    reflected = b.select(pole, c(math.nan), reflected)
    out = b.select(reflect, reflected, result)
    # psi(+0) = -inf, psi(-0) = +inf (SciPy's limits)
    zero = b.fcmp_ordered("==", x, c(0.0))
    return b.select(zero, call_intrinsic(ctx, "copysign", c(math.inf), b.fneg(x)), out)


LOWER = {"softplus": _softplus, "log1mexp": _log1mexp, "psi": _psi,
         "stop_gradient": lambda ctx, a, dt, out, p: a[0]}
