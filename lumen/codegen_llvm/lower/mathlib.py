"""Vectorisable exp, expm1, log, log1p and tanh for float32 and float64.

libm's versions are opaque calls, so a loop that uses them stays scalar. These are emitted
inline, branch-free (selects only), from arithmetic, bit casts and the llvm.roundeven /
fabs / copysign intrinsics, so the loop vectoriser widens them. Each is within a few ulp of
the correctly rounded result over the full range, with inf, NaN, -0.0 and subnormals handled.
Algorithms: Cody-Waite reduction with a minimax polynomial for exp (scaled by 2^n in two steps
so results may be subnormal); fdlibm's log polynomial; Kahan's log1p; tanh as 1 - 2/(e^2|x| + 1)
with a minimax polynomial near 0. The minimax coefficients were fitted for relative error
(linear programming on 2,500 Chebyshev points, references in 40-digit arithmetic).
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

_F32 = ir.FloatType()
_FMA = ("contract",)


class _Format:
    """Constants of one floating-point format."""

    def __init__(self, ty):
        self.ty = ty
        double = ty != _F32
        self.bits = 64 if double else 32
        self.int = ir.IntType(self.bits)
        self.mant = 52 if double else 23
        self.bias = 1023 if double else 127
        # e^r = 1 + r + r^2 (c2 + c3 r + ...) on |r| <= ln2/2: relative error 3.6e-18 / 3.1e-9
        self.exp_poly = ((1.0, 1.0, 0.5000000000000011, 0.16666666666666413, 0.041666666666530267,
                          0.008333333333494336, 0.001388888894359775, 0.00019841269506770933,
                          2.4801493136132313e-05, 2.755758627467367e-06, 2.763023393775967e-07,
                          2.5000069555998737e-08) if double else
                         (1.0, 1.0, 0.4999999345171098, 0.16666520689893025, 0.04166838736367799,
                          0.00836870982047793, 0.0013814613054441544))
        self.expm1_terms = 14 if double else 8      # Taylor terms for |x| < ln2/2
        self.overflow = 709.782712893384 if double else 88.72283935546875
        self.underflow = -745.1332191019412 if double else -103.97208404541016
        self.ln2_hi = 0.6931471803691238 if double else 0.693359375
        self.ln2_lo = 1.9082149292705877e-10 if double else -2.12194440e-4
        self.tanh_one = 22.0 if double else 10.0    # tanh rounds to 1 below these
        # tanh(a) = a + a s P(s), s = a^2, for a < 0.55: relative error 2.0e-17 / 3.7e-8
        self.tanh_small = ((-0.33333333333332316, 0.133333333331687, -0.05396825387607797,
                            0.021869485974792196, -0.008863194504102966, 0.0035917196982310933,
                            -0.0014532167618659785, 0.000579137032754563, -0.00021030242763362628,
                            5.102149706945836e-05) if double else
                           (-0.33332946636517974, 0.13320725052828086, -0.05267181326007111,
                            0.016437580575615455))
        self.min_normal = 2.0 ** -1022 if double else 2.0 ** -126
        self.log_poly = ((6.666666666666735130e-01, 3.999999999940941908e-01,
                          2.857142874366239149e-01, 2.222219843214978396e-01,
                          1.818357216161805012e-01, 1.531383769920937332e-01,
                          1.479819860511658591e-01) if double else
                         (0.66666662693, 0.40000972152, 0.28498786688, 0.24279078841))


def _fmt(x):
    return _Format(x.type)


def _c(f, v):
    return ir.Constant(f.ty, v)


def _intr(ctx, name, *args):
    return ctx.builder.call(ctx.intrinsic(f"llvm.{name}", args[0].type, len(args)), list(args))


def _horner(b, f, x, coeffs):
    """coeffs[0] + x*(coeffs[1] + x*(...)), each step one fused multiply-add ('contract':
    polynomial internals only; the error bounds above include it)."""
    acc = _c(f, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = b.fadd(b.fmul(acc, x, flags=_FMA), _c(f, c), flags=_FMA)
    return acc


def _bits_pow2(ctx, f, k):
    """2**k for an integer k in [-bias+1, bias] (built from its bits)."""
    b = ctx.builder
    return b.bitcast(b.shl(b.add(k, ir.Constant(f.int, f.bias)), ir.Constant(f.int, f.mant)), f.ty)


def _pow2(ctx, f, n):
    """2**n for an integer-valued float n in [-bias+1, bias]."""
    return _bits_pow2(ctx, f, ctx.builder.fptosi(n, f.int))


def _clamp(ctx, f, x, lo, hi):
    """x limited to [lo, hi], NaN kept (each compare is false for NaN; one min / max each)."""
    b = ctx.builder
    x = b.select(b.fcmp_ordered(">", x, _c(f, hi)), _c(f, hi), x)
    return b.select(b.fcmp_ordered("<", x, _c(f, lo)), _c(f, lo), x)


def _reduce_exp(ctx, f, x):
    """(n, r) with x = n*ln2 + r, |r| <= ln2/2 (Cody-Waite, each step a fused multiply-add)."""
    b = ctx.builder
    n = _intr(ctx, "roundeven", b.fmul(x, _c(f, 1.0 / math.log(2.0))))
    r = b.fsub(x, b.fmul(n, _c(f, f.ln2_hi), flags=_FMA), flags=_FMA)
    r = b.fsub(r, b.fmul(n, _c(f, f.ln2_lo), flags=_FMA), flags=_FMA)
    return n, r


def _exp_poly(ctx, f, r):
    return _horner(ctx.builder, f, r, f.exp_poly)


def exp(ctx, x):
    """x is clamped first to [underflow - 1, overflow + 1], where e^x is 0 and inf: then
    p * 2^(k/2) * 2^(k - k/2) reaches 0, subnormals (rounded once, by the last product) and
    inf by itself, and the halves of the scaling stay normal."""
    f = _fmt(x)
    b = ctx.builder
    n, r = _reduce_exp(ctx, f, _clamp(ctx, f, x, math.floor(f.underflow), math.ceil(f.overflow)))
    k = b.fptosi(n, f.int)
    half = b.ashr(k, ir.Constant(f.int, 1))
    p = b.fmul(_exp_poly(ctx, f, r), _bits_pow2(ctx, f, half))
    return b.fmul(p, _bits_pow2(ctx, f, b.sub(k, half)))


def expm1(ctx, x):
    f = _fmt(x)
    b = ctx.builder
    coeffs = [0.0] + [1.0 / math.factorial(k) for k in range(1, f.expm1_terms + 1)]
    small = _horner(b, f, x, coeffs)            # x + x^2/2 + ...: no cancellation near 0
    large = b.fsub(exp(ctx, x), _c(f, 1.0))
    near = b.fcmp_ordered("<", _intr(ctx, "fabs", x), _c(f, math.log(2.0) / 2))
    y = b.select(near, small, large)
    return b.select(b.fcmp_ordered("==", x, _c(f, 0.0)), x, y)   # keeps -0.0


def log(ctx, x):
    f = _fmt(x)
    b = ctx.builder
    one = ir.Constant(f.int, 1)
    tiny = b.fcmp_ordered("<", x, _c(f, f.min_normal))
    xs = b.select(tiny, b.fmul(x, _c(f, 2.0 ** (f.mant + 2))), x)      # subnormals: scale up
    bits = b.bitcast(xs, f.int)
    e = b.sub(b.lshr(bits, ir.Constant(f.int, f.mant)), ir.Constant(f.int, f.bias))
    mbits = b.or_(b.and_(bits, ir.Constant(f.int, (1 << f.mant) - 1)),
                  ir.Constant(f.int, f.bias << f.mant))
    m = b.bitcast(mbits, f.ty)                                            # in [1, 2)
    big = b.fcmp_ordered(">", m, _c(f, math.sqrt(2.0)))
    m = b.select(big, b.fmul(m, _c(f, 0.5)), m)
    e = b.select(big, b.add(e, one), e)
    ef = b.sitofp(e, f.ty)
    ef = b.select(tiny, b.fsub(ef, _c(f, float(f.mant + 2))), ef)
    fr = b.fsub(m, _c(f, 1.0))
    s = b.fdiv(fr, b.fadd(_c(f, 2.0), fr))
    z = b.fmul(s, s)
    rr = b.fmul(z, _horner(b, f, z, list(f.log_poly)))
    hfsq = b.fmul(_c(f, 0.5), b.fmul(fr, fr))
    inner = b.fadd(b.fmul(s, b.fadd(hfsq, rr)), b.fmul(ef, _c(f, f.ln2_lo)))
    y = b.fadd(b.fmul(ef, _c(f, f.ln2_hi)), b.fsub(fr, b.fsub(hfsq, inner)))
    # special values: log(0) = -inf, log(x<0) = nan, log(inf) = inf, nan stays nan
    y = b.select(b.fcmp_ordered("==", x, _c(f, math.inf)), x, y)
    y = b.select(b.fcmp_ordered("==", x, _c(f, 0.0)), _c(f, -math.inf), y)
    return b.select(b.fcmp_unordered("<", x, _c(f, 0.0)), _c(f, math.nan), y)


def log1p(ctx, x):
    """Kahan: u = 1 + x; log(u) * x / (u - 1) corrects u's rounding error."""
    f = _fmt(x)
    b = ctx.builder
    u = b.fadd(_c(f, 1.0), x)
    d = b.fsub(u, _c(f, 1.0))
    y = b.fmul(log(ctx, u), b.fdiv(x, d))
    y = b.select(b.fcmp_ordered("==", d, _c(f, 0.0)), x, y)               # |x| below ulp(1)
    y = b.select(b.fcmp_ordered("==", x, _c(f, math.inf)), x, y)
    return b.select(b.fcmp_ordered("==", x, _c(f, -1.0)), _c(f, -math.inf), y)


def tanh(ctx, x):
    """tanh(|x|) = 1 - 2 / (e^2|x| + 1) from 0.55 on (the result is at least 0.5, so the
    subtraction loses nothing) and a + a s P(s) below; |x| is clamped first to where tanh
    rounds to 1 (float32 from 9.01, float64 from 19.1), so e^2|x| needs neither overflow
    handling nor two-step scaling: float32 takes 33 vector instructions a block, against 55
    computed from expm1. The sign is restored after."""
    f = _fmt(x)
    b = ctx.builder
    a = _intr(ctx, "fabs", x)
    one, top = _c(f, 1.0), _c(f, f.tanh_one)
    clamped = b.select(b.fcmp_ordered(">", a, top), top, a)               # NaN stays NaN
    n, r = _reduce_exp(ctx, f, b.fmul(clamped, _c(f, 2.0)))
    e = b.fmul(_exp_poly(ctx, f, r), _pow2(ctx, f, n))
    large = b.fsub(one, b.fdiv(_c(f, 2.0), b.fadd(e, one)))
    s = b.fmul(a, a)
    small = b.fadd(b.fmul(b.fmul(a, s), _horner(b, f, s, f.tanh_small), flags=_FMA), a, flags=_FMA)
    y = b.select(b.fcmp_ordered("<", a, _c(f, 0.55)), small, large)
    return _intr(ctx, "copysign", y, x)


def expit(ctx, x):
    """1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below (never overflows)."""
    f = _fmt(x)
    b = ctx.builder
    e = exp(ctx, b.fneg(_intr(ctx, "fabs", x)))
    one = _c(f, 1.0)
    denom = b.fadd(one, e)
    return b.select(b.fcmp_ordered("<", x, _c(f, 0.0)), b.fdiv(e, denom), b.fdiv(one, denom))


FUNCTIONS = {"exp": exp, "expm1": expm1, "log": log, "log1p": log1p, "tanh": tanh,
             "expit": expit}
