"""Scalar lowering of elementwise primitives: one function per primitive, with the signature
``(ctx, args, in_dtype, out_dtype, params) -> llvm value`` (Numba's ``(context, builder, sig,
args)``). Semantics are NumPy's loops', including integer division by zero (0), Python-style
floor division and modulo signs, NaN propagation of maximum/minimum and shifts past the width."""
from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from . import mathlib
from ..llvmtypes import i1, value_type

LOWER = {}


def rule(*names):
    def deco(fn):
        for n in names:
            LOWER[n] = fn
        return fn
    return deco


def _kind(dtype):
    return np.dtype(dtype).kind


def _libm(ctx, name, ty, nargs=1):
    suffix = "f" if ty == ir.FloatType() else ""
    return ctx.function(name + suffix, ty, [ty] * nargs)


def own_math(ctx) -> dict:
    """The math functions a context emits itself, by libm / LLVM intrinsic name ->
    ``fn(ctx, *args)``: its ``math_functions`` where it has them (the GPU's call libdevice),
    else the inline one-argument `mathlib` versions of exp, expm1, log, log1p and tanh."""
    return getattr(ctx, "math_functions", mathlib.FUNCTIONS)


def call_libm(ctx, name, x, *more):
    """libm's ``name`` (``namef`` for float32), unless the context emits it itself (`own_math`;
    on the CPU exp, expm1, log, log1p and tanh are inline, so that loops using them vectorise)."""
    own = own_math(ctx).get(name)
    if own is not None:
        return own(ctx, x, *more)
    return ctx.builder.call(_libm(ctx, name, x.type, 1 + len(more)), [x, *more])


def call_intrinsic(ctx, name, *args):
    """LLVM intrinsic ``llvm.name``, unless the context emits it itself (`own_math`)."""
    own = own_math(ctx).get(name)
    if own is not None:
        return own(ctx, *args)
    return ctx.builder.call(ctx.intrinsic(f"llvm.{name}", args[0].type, len(args)), list(args))


def frem(ctx, x, y):
    """C's fmod: LLVM's frem, unless the context has its own fmod (NVPTX expands frem to
    x - y * trunc(x / y), which is not exact)."""
    own = own_math(ctx).get("fmod")
    return own(ctx, x, y) if own is not None else ctx.builder.frem(x, y)


def _fconst(x, v):
    return ir.Constant(x.type, v)


def _iconst(x, v):
    return ir.Constant(x.type, v)


def truth(ctx, x, dtype):
    """NumPy truthiness of one element -> i1."""
    b = ctx.builder
    k = _kind(dtype)
    if k == "b":
        return x
    if k == "f":
        return b.fcmp_unordered("!=", x, _fconst(x, 0.0))
    return b.icmp_unsigned("!=", x, _iconst(x, 0))


def is_nan(ctx, x):
    return ctx.builder.fcmp_unordered("uno", x, x)


# -- arithmetic -------------------------------------------------------------------------------

@rule("add")
def _add(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    return {"f": b.fadd, "b": b.or_}.get(_kind(dt), b.add)(x, y)


@rule("subtract")
def _sub(ctx, a, dt, out, p):
    b = ctx.builder
    return (b.fsub if _kind(dt) == "f" else b.sub)(*a)


@rule("multiply")
def _mul(ctx, a, dt, out, p):
    b = ctx.builder
    return {"f": b.fmul, "b": b.and_}.get(_kind(dt), b.mul)(*a)


@rule("divide")
def _div(ctx, a, dt, out, p):
    return ctx.builder.fdiv(*a)


def _safe_int_divisor(ctx, x, y, dt):
    """(divisor that cannot trap, i1 'result is zero by NumPy's rule')."""
    b = ctx.builder
    zero = b.icmp_unsigned("==", y, _iconst(y, 0))
    bad = zero
    if _kind(dt) == "i":
        minv = _iconst(x, 1 << (x.type.width - 1))
        overflow = b.and_(b.icmp_unsigned("==", x, minv), b.icmp_signed("==", y, _iconst(y, -1)))
        bad = b.or_(zero, overflow)
    return b.select(bad, _iconst(y, 1), y), zero


def _fdivmod(ctx, x, y):
    """NumPy's npy_divmod for floats -> (floordiv, mod)."""
    b = ctx.builder
    zero = _fconst(x, 0.0)
    mod = frem(ctx, x, y)
    y_zero = b.fcmp_ordered("==", y, zero)
    div = b.fdiv(b.fsub(x, mod), y)
    mod_nz = b.fcmp_unordered("!=", mod, zero)
    sign_diff = b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero))
    fix = b.and_(mod_nz, sign_diff)
    mod2 = b.select(fix, b.fadd(mod, y), b.select(mod_nz, mod, call_intrinsic(ctx, "copysign", zero, y)))
    div2 = b.select(fix, b.fsub(div, _fconst(x, 1.0)), div)
    fl = call_intrinsic(ctx, "floor", div2)
    fl = b.select(b.fcmp_ordered(">", b.fsub(div2, fl), _fconst(x, 0.5)), b.fadd(fl, _fconst(x, 1.0)), fl)
    fl = b.select(b.fcmp_unordered("!=", div2, zero), fl,
                  call_intrinsic(ctx, "copysign", zero, b.fdiv(x, y)))
    q = b.select(y_zero, b.fdiv(x, y), fl)
    m = b.select(y_zero, mod, mod2)
    return q, m


@rule("floor_divide")
def _floordiv(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    k = _kind(dt)
    if k == "f":
        return _fdivmod(ctx, x, y)[0]
    if k == "b":
        return b.and_(x, y)
    ys, zero = _safe_int_divisor(ctx, x, y, dt)
    if k == "u":
        q = b.udiv(x, ys)
    else:
        q = b.sdiv(x, ys)
        r = b.srem(x, ys)
        adjust = b.and_(b.icmp_signed("!=", r, _iconst(r, 0)),
                        b.xor(b.icmp_signed("<", r, _iconst(r, 0)), b.icmp_signed("<", ys, _iconst(ys, 0))))
        q = b.select(adjust, b.sub(q, _iconst(q, 1)), q)
        # INT_MIN // -1 wraps to INT_MIN as in NumPy
        q = b.select(b.and_(b.icmp_signed("==", y, _iconst(y, -1)), b.icmp_unsigned("!=", y, _iconst(y, 0))),
                     b.sub(_iconst(x, 0), x), q)
    return b.select(zero, _iconst(x, 0), q)


@rule("remainder")
def _remainder(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    k = _kind(dt)
    if k == "f":
        return _fdivmod(ctx, x, y)[1]
    if k == "b":
        return b.and_(x, b.not_(y))
    ys, zero = _safe_int_divisor(ctx, x, y, dt)
    if k == "u":
        r = b.urem(x, ys)
    else:
        r = b.srem(x, ys)
        fix = b.and_(b.icmp_signed("!=", r, _iconst(r, 0)),
                     b.xor(b.icmp_signed("<", r, _iconst(r, 0)), b.icmp_signed("<", ys, _iconst(ys, 0))))
        r = b.select(fix, b.add(r, ys), r)
        r = b.select(b.icmp_signed("==", y, _iconst(y, -1)), _iconst(x, 0), r)
    return b.select(zero, _iconst(x, 0), r)


@rule("fmod")
def _fmod(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    k = _kind(dt)
    if k == "f":
        return frem(ctx, x, y)
    ys, zero = _safe_int_divisor(ctx, x, y, dt)
    r = b.urem(x, ys) if k == "u" else b.srem(x, ys)
    if k == "i":
        r = b.select(b.icmp_signed("==", y, _iconst(y, -1)), _iconst(x, 0), r)
    return b.select(zero, _iconst(x, 0), r)


@rule("power")
def _power(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    k = _kind(dt)
    if k == "f":
        return call_intrinsic(ctx, "pow", x, y)
    if k == "b":
        return b.or_(x, b.not_(y))
    if k == "i":
        ctx.flag_error(b.icmp_signed("<", y, _iconst(y, 0)), "ValueError",
                       "Integers to negative integer powers are not allowed.")
    # exponentiation by squaring
    fn = b.block.function
    pre = b.block
    head, body, done = (fn.append_basic_block(n) for n in ("pow.head", "pow.body", "pow.done"))
    b.branch(head)
    b.position_at_end(head)
    acc, base, e = b.phi(x.type), b.phi(x.type), b.phi(y.type)
    acc.add_incoming(_iconst(x, 1), pre)
    base.add_incoming(x, pre)
    e.add_incoming(y, pre)
    # unsigned exponents use every bit (a negative signed one was flagged above)
    b.cbranch(b.icmp_unsigned("!=", e, _iconst(e, 0)), body, done)
    b.position_at_end(body)
    odd = b.trunc(e, i1)
    acc2 = b.select(odd, b.mul(acc, base), acc)
    base2 = b.mul(base, base)
    e2 = b.lshr(e, _iconst(e, 1))
    acc.add_incoming(acc2, body)
    base.add_incoming(base2, body)
    e.add_incoming(e2, body)
    b.branch(head)
    b.position_at_end(done)
    return acc


@rule("negative")
def _neg(ctx, a, dt, out, p):
    b = ctx.builder
    (x,) = a
    return b.fneg(x) if _kind(dt) == "f" else b.sub(_iconst(x, 0), x)


@rule("positive")
def _pos(ctx, a, dt, out, p):
    return a[0]


@rule("absolute")
def _abs(ctx, a, dt, out, p):
    b = ctx.builder
    (x,) = a
    k = _kind(dt)
    if k == "f":
        return call_intrinsic(ctx, "fabs", x)
    if k == "i":
        return b.select(b.icmp_signed("<", x, _iconst(x, 0)), b.sub(_iconst(x, 0), x), x)
    return x


@rule("sign")
def _sign(ctx, a, dt, out, p):
    b = ctx.builder
    (x,) = a
    k = _kind(dt)
    if k == "f":
        one, zero = _fconst(x, 1.0), _fconst(x, 0.0)
        pos = b.fcmp_ordered(">", x, zero)
        neg = b.fcmp_ordered("<", x, zero)
        return b.select(pos, one, b.select(neg, _fconst(x, -1.0), b.select(is_nan(ctx, x), x, zero)))
    if k == "u":
        return b.zext(b.icmp_unsigned("!=", x, _iconst(x, 0)), x.type)
    pos = b.zext(b.icmp_signed(">", x, _iconst(x, 0)), x.type)
    neg = b.zext(b.icmp_signed("<", x, _iconst(x, 0)), x.type)
    return b.sub(pos, neg)


@rule("reciprocal")
def _reciprocal(ctx, a, dt, out, p):
    """Integers: NumPy's loop converts ``1.0 / x`` back to the integer type, so 1 and -1 give
    themselves and |x| > 1 gives 0; x = 0 gives C's conversion of inf, which on x86-64 is
    INT_MIN for 32- and 64-bit signed types and 0 for narrower and for unsigned ones."""
    b = ctx.builder
    (x,) = a
    if _kind(dt) == "f":
        return b.fdiv(_fconst(x, 1.0), x)
    zero = b.icmp_unsigned("==", x, _iconst(x, 0))
    safe = b.select(zero, _iconst(x, 1), x)
    q = b.udiv(_iconst(x, 1), safe) if _kind(dt) == "u" else b.sdiv(_iconst(x, 1), safe)
    at_zero = 1 << (x.type.width - 1) if _kind(dt) == "i" and x.type.width >= 32 else 0
    return b.select(zero, _iconst(x, at_zero), q)


@rule("square")
def _square(ctx, a, dt, out, p):
    return _mul(ctx, [a[0], a[0]], dt, out, p)


@rule("sqrt")
def _sqrt(ctx, a, dt, out, p):
    return call_intrinsic(ctx, "sqrt", a[0])


def _libm_rule(op, name):
    LOWER[op] = lambda ctx, a, dt, out, p: call_libm(ctx, name, *a)


for _op, _name in (("cbrt", "cbrt"), ("expm1", "expm1"), ("log1p", "log1p"), ("tan", "tan"),
                   ("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"), ("sinh", "sinh"),
                   ("cosh", "cosh"), ("tanh", "tanh"), ("arcsinh", "asinh"), ("arccosh", "acosh"),
                   ("arctanh", "atanh"), ("arctan2", "atan2"), ("hypot", "hypot"), ("erf", "erf"),
                   ("erfc", "erfc")):
    _libm_rule(_op, _name)


@rule("gammaln")
def _gammaln(ctx, a, dt, out, p):
    """libm's lgamma, with scipy's (cephes') answers where they differ: gammaln(-inf) = -inf,
    and inf for float64 x so small that 1/x overflows (cephes starts from z = 1/x)."""
    b = ctx.builder
    (x,) = a
    r = call_libm(ctx, "lgamma", x)
    r = b.select(b.fcmp_ordered("==", x, _fconst(x, -math.inf)), x, r)
    if x.type == ir.DoubleType():
        inv = call_intrinsic(ctx, "fabs", b.fdiv(_fconst(x, 1.0), x))
        tiny = b.and_(b.fcmp_ordered("==", inv, _fconst(x, math.inf)),
                      b.fcmp_ordered("!=", x, _fconst(x, 0.0)))
        r = b.select(tiny, _fconst(x, math.inf), r)
    return r


def _intrinsic_rule(op, name):
    LOWER[op] = lambda ctx, a, dt, out, p: call_intrinsic(ctx, name, *a)


for _op, _name in (("exp", "exp"), ("exp2", "exp2"), ("log", "log"), ("log2", "log2"),
                   ("log10", "log10"), ("sin", "sin"), ("cos", "cos"), ("copysign", "copysign")):
    _intrinsic_rule(_op, _name)


for _op, _name in (("floor", "floor"), ("ceil", "ceil"), ("trunc", "trunc"), ("rint", "roundeven")):
    LOWER[_op] = (lambda name: lambda ctx, a, dt, out, p:
                  call_intrinsic(ctx, name, a[0]) if _kind(dt) == "f" else a[0])(_name)


@rule("deg2rad")
def _deg2rad(ctx, a, dt, out, p):
    return ctx.builder.fmul(a[0], _fconst(a[0], math.pi / 180.0))


@rule("rad2deg")
def _rad2deg(ctx, a, dt, out, p):
    return ctx.builder.fmul(a[0], _fconst(a[0], 180.0 / math.pi))


def _minmax_rule(op):
    greater = op in ("maximum", "fmax")
    nan_wins = op in ("maximum", "minimum")

    def lower(ctx, a, dt, out, p):
        b = ctx.builder
        x, y = a
        k = _kind(dt)
        if k == "f":
            keep_x = b.fcmp_ordered(">=" if greater else "<=", x, y)
            keep_x = b.or_(keep_x, is_nan(ctx, x) if nan_wins else is_nan(ctx, y))
            return b.select(keep_x, x, y)
        cmp = b.icmp_signed if k == "i" else b.icmp_unsigned
        return b.select(cmp(">=" if greater else "<=", x, y), x, y)
    LOWER[op] = lower


for _op in ("maximum", "minimum", "fmax", "fmin"):
    _minmax_rule(_op)


def _logaddexp_rule(op, log_one_plus, exp, ln2):
    def lower(ctx, a, dt, out, p):
        b = ctx.builder
        x, y = a
        equal = b.fcmp_ordered("==", x, y)
        tmp = b.fsub(x, y)
        pos = b.fcmp_ordered(">", tmp, _fconst(x, 0.0))
        nonpos = b.fcmp_ordered("<=", tmp, _fconst(x, 0.0))
        negabs = b.select(pos, b.fneg(tmp), tmp)
        corr = log_one_plus(ctx, exp(ctx, negabs))
        big = b.select(pos, x, y)
        res = b.select(b.or_(pos, nonpos), b.fadd(big, corr), tmp)
        return b.select(equal, b.fadd(x, _fconst(x, ln2)), res)
    LOWER[op] = lower


_logaddexp_rule("logaddexp", lambda c, v: call_libm(c, "log1p", v), lambda c, v: call_intrinsic(c, "exp", v),
                math.log(2.0))
_logaddexp_rule("logaddexp2",
                lambda c, v: c.builder.fmul(call_libm(c, "log1p", v), _fconst(v, 1.0 / math.log(2.0))),
                lambda c, v: call_intrinsic(c, "exp2", v), 1.0)


# -- comparisons and logic ----------------------------------------------------------------------

_CMP = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
        "greater_equal": ">="}


def _cmp_rule(op):
    sym = _CMP[op]

    def lower(ctx, a, dt, out, p):
        b = ctx.builder
        x, y = a
        k = _kind(dt)
        if k == "f":
            return (b.fcmp_unordered if sym == "!=" else b.fcmp_ordered)(sym, x, y)
        return (b.icmp_signed if k == "i" else b.icmp_unsigned)(sym, x, y)
    LOWER[op] = lower


for _op in _CMP:
    _cmp_rule(_op)


@rule("logical_and")
def _land(ctx, a, dt, out, p):
    return ctx.builder.and_(truth(ctx, a[0], dt), truth(ctx, a[1], dt))


@rule("logical_or")
def _lor(ctx, a, dt, out, p):
    return ctx.builder.or_(truth(ctx, a[0], dt), truth(ctx, a[1], dt))


@rule("logical_xor")
def _lxor(ctx, a, dt, out, p):
    return ctx.builder.xor(truth(ctx, a[0], dt), truth(ctx, a[1], dt))


@rule("logical_not")
def _lnot(ctx, a, dt, out, p):
    return ctx.builder.not_(truth(ctx, a[0], dt))


@rule("bitwise_and")
def _band(ctx, a, dt, out, p):
    return ctx.builder.and_(*a)


@rule("bitwise_or")
def _bor(ctx, a, dt, out, p):
    return ctx.builder.or_(*a)


@rule("bitwise_xor")
def _bxor(ctx, a, dt, out, p):
    return ctx.builder.xor(*a)


@rule("invert")
def _invert(ctx, a, dt, out, p):
    return ctx.builder.not_(a[0])


@rule("left_shift")
def _lshift(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    width = _iconst(y, x.type.width)
    too_far = b.icmp_unsigned(">=", y, width)   # negative shifts are huge unsigned: 0 too
    return b.select(too_far, _iconst(x, 0), b.shl(x, b.select(too_far, _iconst(y, 0), y)))


@rule("right_shift")
def _rshift(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    too_far = b.icmp_unsigned(">=", y, _iconst(y, x.type.width))
    safe = b.select(too_far, _iconst(y, 0), y)
    if _kind(dt) == "i":
        fill = b.select(b.icmp_signed("<", x, _iconst(x, 0)), _iconst(x, -1), _iconst(x, 0))
        return b.select(too_far, fill, b.ashr(x, safe))
    return b.select(too_far, _iconst(x, 0), b.lshr(x, safe))


@rule("isnan")
def _isnan(ctx, a, dt, out, p):
    return is_nan(ctx, a[0]) if _kind(dt) == "f" else ir.Constant(i1, 0)


@rule("isinf")
def _isinf(ctx, a, dt, out, p):
    if _kind(dt) != "f":
        return ir.Constant(i1, 0)
    x = a[0]
    return ctx.builder.fcmp_ordered("==", call_intrinsic(ctx, "fabs", x), _fconst(x, math.inf))


@rule("isfinite")
def _isfinite(ctx, a, dt, out, p):
    if _kind(dt) != "f":
        return ir.Constant(i1, 1)
    x = a[0]
    return ctx.builder.fcmp_ordered("<", call_intrinsic(ctx, "fabs", x), _fconst(x, math.inf))


@rule("signbit")
def _signbit(ctx, a, dt, out, p):
    b = ctx.builder
    x = a[0]
    k = _kind(dt)
    if k == "f":
        bits = b.bitcast(x, ir.IntType(32 if x.type == ir.FloatType() else 64))
        return b.icmp_signed("<", bits, _iconst(bits, 0))
    if k == "i":
        return b.icmp_signed("<", x, _iconst(x, 0))
    return ir.Constant(i1, 0)


# -- scipy.special -------------------------------------------------------------------------------

@rule("expit")
def _expit(ctx, a, dt, out, p):
    b = ctx.builder
    (x,) = a
    one = _fconst(x, 1.0)
    neg = b.fcmp_ordered("<", x, _fconst(x, 0.0))
    e = call_intrinsic(ctx, "exp", b.select(neg, x, b.fneg(x)))
    return b.select(neg, b.fdiv(e, b.fadd(one, e)), b.fdiv(one, b.fadd(one, e)))


@rule("logit")
def _logit(ctx, a, dt, out, p):
    b = ctx.builder
    (x,) = a
    one = _fconst(x, 1.0)
    naive = call_intrinsic(ctx, "log", b.fdiv(x, b.fsub(one, x)))
    s = b.fsub(b.fmul(_fconst(x, 2.0), x), one)
    middle = b.fsub(call_libm(ctx, "log1p", s), call_libm(ctx, "log1p", b.fneg(s)))
    inside = b.and_(b.fcmp_ordered(">=", x, _fconst(x, 0.3)), b.fcmp_ordered("<=", x, _fconst(x, 0.65)))
    return b.select(inside, middle, naive)


@rule("xlogy")
def _xlogy(ctx, a, dt, out, p):
    b = ctx.builder
    x, y = a
    zero = _fconst(x, 0.0)
    prod = b.fmul(x, call_intrinsic(ctx, "log", y))
    take_zero = b.and_(b.fcmp_ordered("==", x, zero), b.not_(is_nan(ctx, y)))
    return b.select(take_zero, zero, prod)


# -- cast and select -------------------------------------------------------------------------------

def cast(ctx, x, src, dst):
    """Convert one element from dtype ``src`` to ``dst`` (NumPy's unsafe casting)."""
    b = ctx.builder
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return x
    ks, kd = src.kind, dst.kind
    t = value_type(dst)
    if kd == "b":
        return truth(ctx, x, src)
    if ks == "b":
        return b.uitofp(x, t) if kd == "f" else b.zext(x, t)
    if ks == "f" and kd == "f":
        return b.fpext(x, t) if dst.itemsize > src.itemsize else b.fptrunc(x, t)
    if ks == "f":
        return _float_to_int(ctx, x, dst)
    if kd == "f":
        return b.sitofp(x, t) if ks == "i" else b.uitofp(x, t)
    if dst.itemsize == src.itemsize:
        return x
    if dst.itemsize < src.itemsize:
        return b.trunc(x, t)
    return b.sext(x, t) if ks == "i" else b.zext(x, t)


def _truncate_x86(ctx, x, bits):
    """cvttsd2si: x truncated to a signed ``bits``-bit integer, INT_MIN when x is NaN or out of
    range (what NumPy's casts give on x86-64)."""
    b = ctx.builder
    t = ir.IntType(bits)
    limit = ir.Constant(x.type, 2.0 ** (bits - 1))
    inside = b.and_(b.fcmp_ordered("<", x, limit), b.fcmp_ordered(">=", x, b.fneg(limit)))
    sat = ctx.function(f"llvm.fptosi.sat.{t}.{_fname(x.type)}", t, [x.type])
    return b.select(inside, b.call(sat, [x]), ir.Constant(t, 1 << (bits - 1)))


def _float_to_int(ctx, x, dst):
    """NumPy's float -> integer cast on x86-64 (values outside the target's range give the
    same integers NumPy gives there: narrow types wrap through int32)."""
    b = ctx.builder
    t = value_type(dst)
    if dst.itemsize < 4:
        return b.trunc(_truncate_x86(ctx, x, 32), t)
    if dst == np.int32:
        return _truncate_x86(ctx, x, 32)
    if dst == np.int64:
        return _truncate_x86(ctx, x, 64)
    wide = _truncate_x86(ctx, x, 64)
    if dst == np.uint32:
        return b.trunc(wide, t)
    # uint64: values in [2^63, 2^64) convert exactly, beyond that 0
    big = b.fcmp_ordered(">=", x, ir.Constant(x.type, 2.0 ** 63))
    huge = b.fcmp_ordered(">=", x, ir.Constant(x.type, 2.0 ** 64))
    sat = ctx.function(f"llvm.fptoui.sat.{t}.{_fname(x.type)}", t, [x.type])
    return b.select(huge, ir.Constant(t, 0), b.select(big, b.call(sat, [x]), wide))


def _fname(ty):
    return "f32" if ty == ir.FloatType() else "f64"


@rule("cast")
def _cast(ctx, a, dt, out, p):
    return cast(ctx, a[0], dt, out)


@rule("select")
def _select(ctx, a, dt, out, p):
    c, x, y = a
    return ctx.builder.select(c, x, y)


from .stable import LOWER as STABLE  # noqa: E402  (stable.py calls back into this module)


def lower_scalar(ctx, op, args, in_dtypes, out_dtype, params):
    """Lower one scalar primitive. ``in_dtypes`` are the operands' dtypes; for ``select`` the
    first is the condition's."""
    dt = in_dtypes[1] if op == "select" else in_dtypes[0]
    if op == "select":
        args = [truth(ctx, args[0], in_dtypes[0]), *args[1:]]
    return (LOWER.get(op) or STABLE[op])(ctx, args, dt, out_dtype, params)
