"""Scalar lowering of the stability primitives (`lumen.ir.ops.stable`)."""
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


LOWER = {"softplus": _softplus, "log1mexp": _log1mexp}
