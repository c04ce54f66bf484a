"""Housekeeping rules: constant folding and algebraic simplification.

Guarantee of this phase: every rule in ``EXACT`` preserves IEEE results bit for bit (NaN, inf
and signed zeros included). ``FASTMATH`` rules (``lumen.jit(..., fastmath=True)``) do not:
x - x -> 0 is wrong for inf and NaN, x + 0 -> x is wrong for -0.0.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.ops import ELEMENTWISE, OPS
from ...ir.ops.creation import ConstValue
from ..pattern import Pat, Rule, const_scalar

FOLD_LIMIT = 256


def _all_constant(value) -> bool:
    node = value.node
    return all(v.node is not None and v.node.op == "const" and
               v.node.params["value"].array.size <= FOLD_LIMIT for v in node.inputs)


def _fold(g, v):
    node = v.node
    arrays = [u.node.params["value"].array for u in node.inputs]
    (out,) = OPS[node.op].reference(arrays, node.params, [])
    out = np.asarray(out, dtype=v.dtype)
    if out.size > FOLD_LIMIT:
        return None
    return g.emit("const", value=ConstValue(out), weak=False)


def _all_uniform(value) -> bool:
    """Every operand holds one scalar everywhere and at least one is broadcast (a plain
    constant operand list is `constant_fold`'s)."""
    node = value.node
    return all(const_scalar(v) is not None for v in node.inputs) and \
        not all(v.node.op == "const" for v in node.inputs)


def _fold_uniform(g, v):
    """``np.ones_like(x) * 2`` or ``np.exp(np.zeros_like(x))``: fold the scalars, broadcast
    the result to the node's shape."""
    node = v.node
    scalars = [np.asarray(const_scalar(u)) for u in node.inputs]
    (out,) = OPS[node.op].reference(scalars, node.params, [])
    scalar = g.emit("const", value=ConstValue(np.asarray(out, dtype=v.dtype)), weak=False)
    return g.emit("broadcast_to", scalar, shape=v.shape)


def _is_float(v):
    return v.dtype.kind == "f"


def _power_of_two_reciprocal(c) -> bool:
    """x / c == x * (1 / c) exactly when c is a power of two whose reciprocal is finite in c's
    dtype (1 / 2**-1074 overflows: x / 5e-324 is finite where x * inf is not)."""
    if not np.isfinite(c) or c == 0:
        return False
    m, _ = math.frexp(float(c))
    with np.errstate(over="ignore"):
        return abs(m) == 0.5 and bool(np.isfinite(np.divide(1, c, dtype=np.asarray(c).dtype)))


def _lossless(src, mid) -> bool:
    """Every value of ``src`` survives a round trip through ``mid``. NumPy calls int64 -> float64
    a "safe" cast, but 2**53 + 1 does not come back: integers need the float's mantissa."""
    src, mid = np.dtype(src), np.dtype(mid)
    if src.kind in "iu" and mid.kind in "fc":
        digits = np.finfo(mid).nmant + 1
        return np.iinfo(src).bits - (src.kind == "i") <= digits
    return bool(np.can_cast(src, mid, "safe"))


def _same_shape(a, b):
    return a.ndim == b.ndim and tuple(a.shape) == tuple(b.shape)


def _single_term_product(g, a, b, v):
    """``a @ b`` with an inner size of 1 (an outer product, such as the weight gradient of a
    batch of one) as an elementwise product, which fuses with what reads it: the SGD update
    ``W - lr * (h.T @ dz)`` becomes one pass over W instead of a copy of W and a BLAS call.
    Adding 0.0 keeps BLAS's signed zeros: its sum starts from +0.0, so a product of -0.0
    comes out +0.0."""
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1].value != 1 or b.shape[-2].value != 1:
        return None
    if not (a.dtype == b.dtype == v.dtype and v.dtype.kind in "iuf"):
        return None
    product = g.emit("multiply", a, b)
    if not _same_shape(product, v):
        return None
    return g.emit("add", product, g.const_like(v, 0.0)) if _is_float(v) else product


EXACT = (
    Rule("constant_fold", Pat(tuple(sorted(ELEMENTWISE)), name="v", where=_all_constant),
         lambda g, v: _fold(g, v)),
    Rule("constant_fold_uniform", Pat(tuple(sorted(ELEMENTWISE)), name="v", where=_all_uniform),
         lambda g, v: _fold_uniform(g, v)),
    Rule("mul_by_one", Pat("multiply", Pat.var("x"), Pat.const(1), name="v"),
         lambda g, x, v: x if _same_shape(x, v) else None),
    Rule("div_by_one", Pat("divide", Pat.var("x"), Pat.const(1), name="v"),
         lambda g, x, v: x if _same_shape(x, v) else None),
    Rule("sub_zero", Pat("subtract", Pat.var("x"), Pat.const(0.0), name="v"),
         lambda g, x, v: x if _same_shape(x, v) and _is_float(x) else None),
    Rule("neg_neg", Pat("negative", Pat("negative", Pat.var("x"))), lambda g, x: x),
    Rule("square_as_mul", Pat("power", Pat.var("x"), Pat.const(2), name="v"),
         lambda g, x, v: g.emit("multiply", x, x) if _is_float(x) and _same_shape(x, v) else None),
    Rule("pow_one", Pat("power", Pat.var("x"), Pat.const(1), name="v"),
         lambda g, x, v: x if _same_shape(x, v) else None),
    Rule("div_by_power_of_two", Pat("divide", Pat.var("x"), Pat.var("c", where=lambda c:
         const_scalar(c) is not None and _power_of_two_reciprocal(const_scalar(c))), name="v"),
         lambda g, x, c, v: g.emit("multiply", x, g.const_like(c, 1.0 / const_scalar(c)))
         if _same_shape(x, v) else None),
    Rule("drop_stop_gradient", Pat("stop_gradient", Pat.var("x")), lambda g, x: x),
    Rule("matmul_of_one_term", Pat("matmul", Pat.var("a"), Pat.var("b"), name="v"),
         _single_term_product),
    Rule("cast_to_same", Pat("cast", Pat.var("x"), name="v"),
         lambda g, x, v: x if x.dtype == v.dtype else None),
    Rule("cast_roundtrip", Pat("cast", Pat("cast", Pat.var("x"), name="mid"), name="v"),
         lambda g, x, mid, v: x if x.dtype == v.dtype and _lossless(x.dtype, mid.dtype) else None),
    # a gradient reshaped to its parameter's sizes, once unify_dims has proved them equal
    Rule("reshape_to_same_shape", Pat("reshape", Pat.var("x"), name="v"),
         lambda g, x, v: x if tuple(x.shape) == tuple(v.shape) else None),
)

FASTMATH = (
    Rule("sub_self", Pat("subtract", Pat.var("x"), Pat.var("x"), name="v"),
         lambda g, x, v: g.emit("broadcast_to", g.const_like(v, 0), shape=v.shape)
         if _is_float(x) else None),
    Rule("div_self", Pat("divide", Pat.var("x"), Pat.var("x"), name="v"),
         lambda g, x, v: g.emit("broadcast_to", g.const_like(v, 1), shape=v.shape)),
    Rule("add_zero", Pat("add", Pat.var("x"), Pat.const(0.0), name="v"),
         lambda g, x, v: x if _same_shape(x, v) and _is_float(x) else None),
    Rule("mul_zero", Pat("multiply", Pat.var("x"), Pat.const(0.0), name="v"),
         lambda g, x, v: g.emit("broadcast_to", g.const_like(v, 0), shape=v.shape)
         if _is_float(x) else None),
    Rule("reassociate_add_consts",
         Pat("add", Pat("add", Pat.var("x"), Pat.var("c1", where=lambda c: const_scalar(c) is not None)),
             Pat.var("c2", where=lambda c: const_scalar(c) is not None), name="v"),
         lambda g, x, c1, c2, v: g.emit("add", x, g.const_like(v, const_scalar(c1) + const_scalar(c2)))
         if _same_shape(x, v) and _is_float(x) else None),
    Rule("reassociate_mul_consts",
         Pat("multiply", Pat("multiply", Pat.var("x"), Pat.var("c1", where=lambda c: const_scalar(c) is not None)),
             Pat.var("c2", where=lambda c: const_scalar(c) is not None), name="v"),
         lambda g, x, c1, c2, v: g.emit("multiply", x, g.const_like(v, const_scalar(c1) * const_scalar(c2)))
         if _same_shape(x, v) and _is_float(x) else None),
)
