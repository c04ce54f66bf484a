"""Vectorisable exp, expm1, log, log1p and tanh for float32 and float64.

libm's versions are opaque calls, so a loop that uses them stays scalar. These are emitted
inline, branch-free (selects only), from arithmetic, bit casts and the llvm.roundeven /
fabs / copysign intrinsics, so the loop vectoriser widens them. Each is within a few ulp of
the correctly rounded result over the full range, with inf, NaN, -0.0 and subnormals handled.
Algorithms: Cody-Waite reduction with a minimax polynomial for exp (scaled by 2^n in two steps
so results may be subnormal); fdlibm's log polynomial; Kahan's log1p; tanh as -m / (2 + m)
with m = e^-2|x| - 1 from the same reduction. The minimax coefficients were fitted for
relative error (linear programming on 2,500-4,000 Chebyshev points, references in 40-digit
arithmetic). Every float32 input has been checked offline (against float64 NumPy rounded
once): exp and tanh at most 2 ulp, expm1 and expit 3.
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
        # e^r = 1 + r + r^2 (c2 + c3 r + ...) on |r| <= ln2/2: relative error 3.6e-18 / 1.05e-7
        # (float32: degree 5, 0.9 ulp, one multiply-add fewer than the 3e-9 of degree 6)
        self.exp_poly = ((1.0, 1.0, 0.5000000000000011, 0.16666666666666413, 0.041666666666530267,
                          0.008333333333494336, 0.001388888894359775, 0.00019841269506770933,
                          2.4801493136132313e-05, 2.755758627467367e-06, 2.763023393775967e-07,
                          2.5000069555998737e-08) if double else
                         (1.0, 1.0, 0.4999923030937009, 0.16667115268522475, 0.04189033181564688,
                          0.008312511738627472))
        # the same form with r + r^2 (c2 + ...) within 1.3e-8 of e^r - 1 (float32; degree 5
        # would be 4.5e-7), for tanh and expm1; float64's exp polynomial already is
        self.expm1_poly = self.exp_poly if double else (
            1.0, 1.0, 0.49999998267795354, 0.16666543894975, 0.04166718632155874,
            0.008366505423769394, 0.0013882883173556503)
        self.expm1_terms = 14 if double else 8      # Taylor terms for |x| < ln2/2
        self.overflow = 709.782712893384 if double else 88.72283935546875
        self.underflow = -745.1332191019412 if double else -103.97208404541016
        self.ln2_hi = 0.6931471803691238 if double else 0.693359375
        self.ln2_lo = 1.9082149292705877e-10 if double else -2.12194440e-4
        self.tanh_one = 22.0 if double else 10.0    # tanh rounds to 1 below these
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


def exp(ctx, x, poly="exp_poly"):
    """x is clamped first to [underflow - 1, overflow + 1], where e^x is 0 and inf: then
    p * 2^(k/2) * 2^(k - k/2) reaches 0, subnormals (rounded once, by the last product) and
    inf by itself, and the halves of the scaling stay normal. ``poly`` names the polynomial
    of e^r (expm1 takes the one accurate relative to e^r - 1)."""
    f = _fmt(x)
    b = ctx.builder
    n, r = _reduce_exp(ctx, f, _clamp(ctx, f, x, math.floor(f.underflow), math.ceil(f.overflow)))
    k = b.fptosi(n, f.int)
    half = b.ashr(k, ir.Constant(f.int, 1))
    p = b.fmul(_horner(b, f, r, getattr(f, poly)), _bits_pow2(ctx, f, half))
    return b.fmul(p, _bits_pow2(ctx, f, b.sub(k, half)))


def expm1(ctx, x):
    f = _fmt(x)
    b = ctx.builder
    coeffs = [0.0] + [1.0 / math.factorial(k) for k in range(1, f.expm1_terms + 1)]
    small = _horner(b, f, x, coeffs)            # x + x^2/2 + ...: no cancellation near 0
    large = b.fsub(exp(ctx, x, "expm1_poly"), _c(f, 1.0))
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
    """tanh|x| = -m / (2 + m) with m = e^-2|x| - 1, the sign restored after. m is computed
    as 2^n (e^r - 1) + (2^n - 1), e^r - 1 = r + r^2 P(r): one fused multiply-add from the
    reduction, so it keeps its relative accuracy from |x| = 0 (where it is -2|x| exactly,
    subnormals included) to the clamp at `tanh_one` (where tanh rounds to 1 and m to -1). m
    lies in (-1, 0], so 2 + m does not cancel: one formula over the whole range, without the
    polynomial branch near 0 (and its select) the 1 - 2/(e^2|x| + 1) form needed."""
    f = _fmt(x)
    b = ctx.builder
    a = _intr(ctx, "fabs", x)
    top = _c(f, f.tanh_one)
    clamped = b.select(b.fcmp_ordered(">", a, top), top, a)               # NaN stays NaN
    n, r = _reduce_exp(ctx, f, b.fneg(b.fadd(clamped, clamped)))          # -2|x|: no multiply
    em1_r = b.fadd(b.fmul(b.fmul(r, r), _horner(b, f, r, f.expm1_poly[2:]), flags=_FMA), r,
                   flags=_FMA)
    scale = _pow2(ctx, f, n)
    m = b.fadd(b.fmul(scale, em1_r, flags=_FMA), b.fsub(scale, _c(f, 1.0)), flags=_FMA)
    y = b.fdiv(b.fneg(m), b.fadd(_c(f, 2.0), m))
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
