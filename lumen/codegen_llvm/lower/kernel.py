"""Lowering of `kernel` nodes: elementwise loop nests and reductions."""
from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import i1, value_type
from .loops import Operand, align, for_each, nest
from ...ir.ops.kernel import body_dtype as body_dtype_of
from ...ir.ops.reduce import reduce_dtype
from .scalar import cast, is_nan, lower_scalar, truth

SUM_BLOCK = 128


def eval_body(ctx, body, values, dtypes):
    """Emit a kernel's scalar program; returns (result, result dtype)."""
    if not body.ops:
        return values[0], dtypes[0]
    values, dtypes = list(values), list(dtypes)
    for s in body.ops:
        args = [values[a] for a in s.args]
        values.append(lower_scalar(ctx, s.op, args, [dtypes[a] for a in s.args], s.dtype, dict(s.params)))
        dtypes.append(s.dtype)
    return values[-1], dtypes[-1]


def used_inputs(body, n_lead=0):
    """Indices of the kernel inputs a body reads (a body without ops reads value 0)."""
    if not body.ops:
        return {0} if n_lead == 0 else set()
    return {a - n_lead for s in body.ops for a in s.args if n_lead <= a < body.n_inputs}


def load_inputs(ctx, args, offsets, used):
    """Values of the used inputs at ``offsets`` (None for inputs the body does not read)."""
    return [ctx.load(a, o) if i in used else None for i, (a, o) in enumerate(zip(args, offsets))]


def lower_kernel(ctx, node, args):
    p = node.params
    space = list(p["space"])
    space_vals = [ctx.dim(d) for d in space]
    body = p["body"]
    used = used_inputs(body)
    operands = [align(ctx, a, space) for a in args]
    dtypes = [a.dtype for a in args]
    red = p["reduce"]
    out = ctx.new_array(node.out, list(zip(node.inputs, args)) if red is None else ())
    if red is None:
        ops = [align(ctx, out, space)] + operands

        def emit(off, idx):
            v, _ = eval_body(ctx, body, load_inputs(ctx, args, off[1:], used), dtypes)
            ctx.store(out, off[0], v)
        for_each(ctx, space_vals, ops, emit)
    else:
        _reduce(ctx, node, space, space_vals, args, operands, dtypes, out)
    ctx.raise_flagged()
    return [out]


class _Epilogue:
    """What happens to a reduced value before it is stored: the kernel's epilogue (reading
    inputs at the output's index), or just the conversion to the output dtype."""

    def __init__(self, ctx, node, args, kept, red_dtype):
        self.ctx, self.args, self.red_dtype = ctx, args, red_dtype
        self.body = node.params.get("epilogue")
        red = node.params["reduce"]
        n_space = len(node.params["space"])
        self.axis_map = list(range(n_space)) if red.keepdims else list(kept)
        self.used = used_inputs(self.body, n_lead=1) if self.body is not None else set()
        out_dims = list(node.out.type.shape)
        self.operands = {i: align(ctx, args[i], out_dims) for i in self.used}
        self.out_dtype = node.out.dtype

    def apply(self, value, space_indices):
        """The value to store for reduced ``value`` at the output element whose space indices
        (kept axes) are ``space_indices``."""
        ctx, b = self.ctx, self.ctx.builder
        if self.body is None:
            return cast(ctx, value, self.red_dtype, self.out_dtype)
        vals = [value] + [None] * len(self.args)
        for i, op in self.operands.items():
            off = ctx.i64(0)
            for k, axis in enumerate(self.axis_map):
                idx = space_indices.get(axis)
                if idx is not None:
                    off = b.add(off, b.mul(idx, op.strides[k]))
            vals[1 + i] = ctx.load(self.args[i], off)
        dtypes = [self.red_dtype] + [a.dtype for a in self.args]
        v, _ = eval_body(ctx, self.body, vals, dtypes)
        return v


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
    if kind == "f":
        # llvm.maximum / minimum propagate NaN as NumPy's max does, and vectorise as reductions
        return b.call(ctx.intrinsic("llvm.maximum" if op == "max" else "llvm.minimum", acc.type, 2),
                      [acc, v])
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


def _reduce(ctx, node, space, space_vals, args, operands, dtypes, out):
    body, red = node.params["body"], node.params["reduce"]
    op = red.op
    axes = sorted(red.axes)
    kept = [a for a in range(len(space)) if a not in axes]
    body_dtype = body_dtype_of(body, dtypes)
    red_dtype = reduce_dtype(op, body_dtype)
    acc_dtype = _acc_dtype(op, body_dtype, red_dtype)
    out_strides = _out_strides(ctx, red, space, out)
    epilogue = _Epilogue(ctx, node, args, kept, red_dtype)
    used = used_inputs(body)

    def element(off, target):
        """The body's value at ``off``, converted for accumulation in dtype ``target``."""
        v, dt = eval_body(ctx, body, load_inputs(ctx, args, off, used), dtypes)
        if op in ("any", "all"):
            return truth(ctx, v, dt)
        if op in ("argmax", "argmin"):
            return v
        return cast(ctx, v, dt, target)

    inner = op in ("argmax", "argmin") or (axes and axes[-1] == len(space) - 1) or not kept
    if inner:
        _reduce_inner(ctx, op, axes, kept, space_vals, operands, out, out_strides, element,
                      acc_dtype, body_dtype, epilogue)
    else:
        _reduce_into_output(ctx, node, op, space_vals, operands, out, out_strides, element,
                            epilogue, red_dtype)


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
                  acc_dtype, body_dtype, epilogue):
    """Reduced axes innermost: an accumulator in registers per output element."""
    b = ctx.builder
    arg_mode = op in ("argmax", "argmin")
    acc_t = value_type(acc_dtype)
    blocked = op == "sum" and np.dtype(acc_dtype).kind == "f" and bool(axes)  # 0-d: no axis
    # float max/min: a NaN-ignoring maxnum/minnum reduction (which vectorises) plus a
    # "saw a NaN" flag, combined at the end into NumPy's NaN-propagating result
    split_nan = op in ("max", "min") and np.dtype(acc_dtype).kind == "f"

    def per_output(off_outer, idx_outer):
        acc_slot = ctx.alloca(acc_t, "acc")
        b.store(identity(op, acc_dtype), acc_slot)
        nan_slot = ctx.alloca(ir.IntType(1), "saw_nan") if split_nan else None
        if split_nan:
            b.store(ir.Constant(ir.IntType(1), 0), nan_slot)
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
                # reassociable within a block: LLVM keeps several partial sums in vector lanes,
                # as NumPy's pairwise sum keeps eight
                b.store(b.fadd(b.load(partial_slot), v, flags=("reassoc",)), partial_slot)
            elif split_nan:
                name = "llvm.maxnum" if op == "max" else "llvm.minnum"
                # nnan: a NaN here makes acc poison, but the flag then discards acc
                b.store(b.call(ctx.intrinsic(name, acc_t, 2), [b.load(acc_slot), v],
                               fastmath=("nnan", "nsz")), acc_slot)
                b.store(b.or_(b.load(nan_slot), is_nan(ctx, v)), nan_slot)
            else:
                b.store(combine(ctx, op, b.load(acc_slot), v, acc_dtype), acc_slot)

        if blocked:
            _blocked_sum(ctx, axes, space_vals, operands, off_outer, idx_outer, visit,
                         acc_slot, partial_slot)
        else:
            nest(ctx, space_vals, operands, visit, axes, 0, off_outer, dict(idx_outer))
        out_off = _offset(ctx, idx_outer, out_strides, kept)
        acc = b.load(acc_slot)
        if split_nan:
            acc = b.select(b.load(nan_slot), ir.Constant(acc_t, float("nan")), acc)
        reduced = b.load(idx_slot) if arg_mode else cast(ctx, acc, acc_dtype, epilogue.red_dtype)
        ctx.store(out, out_off, epilogue.apply(reduced, idx_outer))

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


def _reduce_into_output(ctx, node, op, space_vals, operands, out, out_strides, element,
                        epilogue, red_dtype):
    """Reduced axes outside the innermost one: accumulate in memory order into the output (or,
    with an epilogue or another dtype, into a scratch buffer finished by a last pass)."""
    b = ctx.builder
    direct = epilogue.body is None and np.dtype(red_dtype) == out.dtype
    acc = out if direct else ctx.malloc_buffer(red_dtype, node.out.type.shape, "reduce_acc")
    init = identity(op, acc.dtype)
    with ctx.loop(ctx.count(acc.shape), "init") as i:
        ctx.store(acc, b.mul(i, ctx.i64(acc.dtype.itemsize)), init)
    acc_op = Operand(acc, _out_strides(ctx, node.params["reduce"], node.params["space"], acc), False)

    def visit(off, idx):
        v = element(off[1:], acc.dtype)
        ctx.store(acc, off[0], combine(ctx, op, ctx.load(acc, off[0]), v, acc.dtype))
    for_each(ctx, space_vals, [acc_op] + operands, visit)
    if direct:
        return
    out_dims = list(node.out.type.shape)
    finish_ops = [align(ctx, out, out_dims), align(ctx, acc, out_dims)]

    def finish(off, idx):
        space_idx = {epilogue.axis_map[k]: i for k, i in idx.items()}
        ctx.store(out, off[0], epilogue.apply(ctx.load(acc, off[1]), space_idx))
    for_each(ctx, out.shape, finish_ops, finish, indices=True)
