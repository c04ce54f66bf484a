"""Lowering of `kernel` nodes: elementwise loop nests and reductions."""
from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import i1, value_type
from .loops import Operand, align, for_each, nest
from .scalar import cast, is_nan, lower_scalar, truth

SUM_BLOCK = 128


def eval_body(ctx, body, values, dtypes):
    """Emit a kernel's scalar program; returns (result, result dtype)."""
    values, dtypes = list(values), list(dtypes)
    for s in body.ops:
        args = [values[a] for a in s.args]
        values.append(lower_scalar(ctx, s.op, args, [dtypes[a] for a in s.args], s.dtype, dict(s.params)))
        dtypes.append(s.dtype)
    return values[-1], dtypes[-1]


def lower_kernel(ctx, node, args):
    p = node.params
    space = list(p["space"])
    space_vals = [ctx.dim(d) for d in space]
    operands = [align(ctx, a, space) for a in args]
    dtypes = [a.dtype for a in args]
    red = p["reduce"]
    out = ctx.new_array(node.out)
    if red is None:
        ops = [align(ctx, out, space)] + operands

        def body(off, idx):
            vals = [ctx.load(a, o) for a, o in zip(args, off[1:])]
            v, _ = eval_body(ctx, p["body"], vals, dtypes)
            ctx.store(out, off[0], v)
        for_each(ctx, space_vals, ops, body)
    else:
        _reduce(ctx, p["body"], red, space, space_vals, args, operands, dtypes, out)
    ctx.raise_flagged()
    return [out]


# -- reductions -------------------------------------------------------------------------------

def _acc_dtype(op, body_dtype, out_dtype):
    if op == "sum" and np.dtype(out_dtype) == np.float32:
        return np.dtype(np.float64)
    if op in ("any", "all"):
        return np.dtype(bool)
    if op in ("argmax", "argmin"):
        return np.dtype(body_dtype)
    return np.dtype(out_dtype)


def identity(op, dtype):
    dtype = np.dtype(dtype)
    t = value_type(dtype)
    if op == "sum":
        return ir.Constant(t, 0.0 if dtype.kind == "f" else 0)
    if op == "prod":
        return ir.Constant(t, 1.0 if dtype.kind == "f" else 1)
    if op in ("any", "all"):
        return ir.Constant(i1, int(op == "all"))
    lowest = op in ("max", "argmax")
    if dtype.kind == "f":
        return ir.Constant(t, -math.inf if lowest else math.inf)
    if dtype.kind == "b":
        return ir.Constant(i1, 0 if lowest else 1)
    info = np.iinfo(dtype)
    v = info.min if lowest else info.max
    return ir.Constant(t, v & ((1 << (8 * dtype.itemsize)) - 1))


def combine(ctx, op, acc, v, dtype):
    b = ctx.builder
    kind = np.dtype(dtype).kind
    if op == "sum":
        return b.fadd(acc, v) if kind == "f" else (b.or_(acc, v) if kind == "b" else b.add(acc, v))
    if op == "prod":
        return b.fmul(acc, v) if kind == "f" else (b.and_(acc, v) if kind == "b" else b.mul(acc, v))
    if op == "any":
        return b.or_(acc, v)
    if op == "all":
        return b.and_(acc, v)
    from .scalar import LOWER
    return LOWER["maximum" if op == "max" else "minimum"](ctx, [acc, v], dtype, dtype, {})


def _better(ctx, op, v, best, dtype):
    """argmax/argmin: does ``v`` replace ``best`` (first occurrence wins, NaN wins)?"""
    b = ctx.builder
    kind = np.dtype(dtype).kind
    sym = ">" if op == "argmax" else "<"
    if kind == "f":
        return b.or_(b.fcmp_ordered(sym, v, best), b.and_(is_nan(ctx, v), b.not_(is_nan(ctx, best))))
    if kind == "i":
        return b.icmp_signed(sym, v, best)
    return b.icmp_unsigned(sym, v, best)


def _reduce(ctx, body, red, space, space_vals, args, operands, dtypes, out):
    b = ctx.builder
    op = red.op
    axes = sorted(red.axes)
    kept = [a for a in range(len(space)) if a not in axes]
    body_dtype = body.ops[-1].dtype if body.ops else dtypes[0]
    acc_dtype = _acc_dtype(op, body_dtype, out.dtype)
    out_strides = _out_strides(ctx, red, space, out)

    def element(off, target):
        """The body's value at ``off``, converted for accumulation in dtype ``target``."""
        vals = [ctx.load(a, o) for a, o in zip(args, off)]
        v, dt = eval_body(ctx, body, vals, dtypes)
        if op in ("any", "all"):
            return truth(ctx, v, dt)
        if op in ("argmax", "argmin"):
            return v
        return cast(ctx, v, dt, target)

    inner = op in ("argmax", "argmin") or (axes and axes[-1] == len(space) - 1) or not kept
    if inner:
        _reduce_inner(ctx, op, axes, kept, space_vals, operands, out, out_strides, element,
                      acc_dtype, body_dtype)
    else:
        _reduce_into_output(ctx, op, space_vals, operands, out, out_strides, element)


def _out_strides(ctx, red, space, out):
    """Byte stride of the output per space axis (0 on reduced axes)."""
    strides, k = [], 0
    for axis in range(len(space)):
        if axis in red.axes:
            strides.append(ctx.i64(0))
            if red.keepdims:
                k += 1
        else:
            strides.append(out.strides[k])
            k += 1
    return strides


def _offset(ctx, indices, strides, axes):
    b = ctx.builder
    off = ctx.i64(0)
    for a in axes:
        off = b.add(off, b.mul(indices[a], strides[a]))
    return off


def _reduce_inner(ctx, op, axes, kept, space_vals, operands, out, out_strides, element,
                  acc_dtype, body_dtype):
    """Reduced axes innermost: an accumulator in registers per output element."""
    b = ctx.builder
    arg_mode = op in ("argmax", "argmin")
    acc_t = value_type(acc_dtype)
    blocked = op == "sum" and np.dtype(acc_dtype).kind == "f"

    def per_output(off_outer, idx_outer):
        acc_slot = ctx.alloca(acc_t, "acc")
        b.store(identity(op, acc_dtype), acc_slot)
        partial_slot = ctx.alloca(acc_t, "partial") if blocked else None
        idx_slot = ctx.alloca(value_type(np.intp), "argidx") if arg_mode else None
        if arg_mode:
            b.store(ctx.i64(0), idx_slot)

        def visit(off, idx):
            v = element(off, acc_dtype)
            if arg_mode:
                best = b.load(acc_slot)
                take = _better(ctx, op, v, best, body_dtype)
                b.store(b.select(take, v, best), acc_slot)
                b.store(b.select(take, idx[axes[-1]], b.load(idx_slot)), idx_slot)
            elif blocked:
                b.store(b.fadd(b.load(partial_slot), v), partial_slot)
            else:
                b.store(combine(ctx, op, b.load(acc_slot), v, acc_dtype), acc_slot)

        if blocked:
            _blocked_sum(ctx, axes, space_vals, operands, off_outer, idx_outer, visit,
                         acc_slot, partial_slot)
        else:
            nest(ctx, space_vals, operands, visit, axes, 0, off_outer, dict(idx_outer))
        out_off = _offset(ctx, idx_outer, out_strides, kept)
        result = b.load(idx_slot) if arg_mode else cast(ctx, b.load(acc_slot), acc_dtype, out.dtype)
        ctx.store(out, out_off, result)

    nest(ctx, space_vals, operands, per_output, kept, 0, [ctx.i64(0)] * len(operands), {})


def _blocked_sum(ctx, axes, space_vals, operands, off_outer, idx_outer, visit, acc_slot, partial_slot):
    """Float sums: the innermost reduced axis is summed in blocks of SUM_BLOCK whose partial
    sums are added to the accumulator, bounding rounding growth as NumPy's pairwise sum does."""
    b = ctx.builder
    last = axes[-1]
    n = space_vals[last]
    zero = ir.Constant(acc_slot.type.pointee, 0.0)

    def outer_axes(off, idx):
        nblocks = b.sdiv(b.add(n, ctx.i64(SUM_BLOCK - 1)), ctx.i64(SUM_BLOCK))
        with ctx.loop(nblocks, "blk") as blk:
            start = b.mul(blk, ctx.i64(SUM_BLOCK))
            rest = b.sub(n, start)
            count = b.select(b.icmp_signed("<", rest, ctx.i64(SUM_BLOCK)), rest, ctx.i64(SUM_BLOCK))
            b.store(zero, partial_slot)
            with ctx.loop(count, "j") as j:
                pos = b.add(start, j)
                offs = [b.add(o, b.mul(pos, op.strides[last])) for o, op in zip(off, operands)]
                visit(offs, {**idx, last: pos})
            b.store(b.fadd(b.load(acc_slot), b.load(partial_slot)), acc_slot)

    nest(ctx, space_vals, operands, outer_axes, axes[:-1], 0, off_outer, dict(idx_outer))


def _reduce_into_output(ctx, op, space_vals, operands, out, out_strides, element):
    """Reduced axes outside the innermost one: accumulate into the output in memory order."""
    b = ctx.builder
    init = identity(op, out.dtype)
    with ctx.loop(ctx.count(out.shape), "init") as i:
        ctx.store(out, b.mul(i, ctx.i64(out.dtype.itemsize)), init)
    out_op = Operand(out, out_strides, False)

    def visit(off, idx):
        v = element(off[1:], out.dtype)
        ctx.store(out, off[0], combine(ctx, op, ctx.load(out, off[0]), v, out.dtype))
    for_each(ctx, space_vals, [out_op] + operands, visit)
