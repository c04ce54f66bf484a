"""Lowering of `kernel` nodes: elementwise loop nests and reductions."""
from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import i1, value_type
from ..parallel import MAX_CHUNKS, block_bounds, chunk_count, element_cost, parallel_range, work_of
from .loops import Operand, align, for_each, nest
from ...ir.ops.kernel import body_dtype as body_dtype_of, used_inputs
from ...ir.ops.reduce import reduce_dtype
from .scalar import cast, is_nan, lower_scalar, truth

SUM_BLOCK = 128


def eval_body(ctx, body, values, dtypes):
    """Emit a kernel's scalar program; returns (result, result dtype)."""
    if not body.ops:
        return values[0], dtypes[0]
    values, dtypes = eval_values(ctx, body, values, dtypes)
    return values[-1], dtypes[-1]


def eval_values(ctx, body, values, dtypes):
    """Emit a kernel's scalar program; returns every value and its dtype (inputs, then ops)."""
    values, dtypes = list(values), list(dtypes)
    for s in body.ops:
        args = [values[a] for a in s.args]
        values.append(lower_scalar(ctx, s.op, args, [dtypes[a] for a in s.args], s.dtype, dict(s.params)))
        dtypes.append(s.dtype)
    return values, dtypes


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
        for_each(ctx, space_vals, ops, emit, cost=element_cost(body))
    else:
        _reduce(ctx, node, space, space_vals, args, operands, dtypes, out)
    ctx.raise_flagged()
    return [out]


def lower_kernel_map_reduce(ctx, node, args):
    """`kernel_map_reduce`: the reduction, storing body value ``keep`` at every point it
    visits. The kept values may go where an input that dies here was (read at the same point
    first), unless the epilogue reads that input after the reduction."""
    p = node.params
    space = list(p["space"])
    late = used_inputs(p.get("epilogue"), n_lead=1)
    out = ctx.new_array(node.outputs[0])
    kept = ctx.new_array(node.outputs[1], [(v, a) for i, (v, a) in
                                           enumerate(zip(node.inputs, args)) if i not in late])
    operands = [align(ctx, a, space) for a in args] + [align(ctx, kept, space)]
    _reduce(ctx, node, space, [ctx.dim(d) for d in space], args, operands,
            [a.dtype for a in args], out, (p["keep"], kept))
    ctx.raise_flagged()
    return [out, kept]


class _Epilogue:
    """What happens to a reduced value before it is stored: the kernel's epilogue (reading
    inputs at the output's index), or just the conversion to the output dtype."""

    def __init__(self, ctx, node, args, kept, red_dtype):
        self.ctx, self.args, self.red_dtype = ctx, args, red_dtype
        self.body = node.params.get("epilogue")
        red = node.params["reduce"]
        n_space = len(node.params["space"])
        self.axis_map = list(range(n_space)) if red.keepdims else list(kept)
        self.used = used_inputs(self.body, n_lead=1)
        out_dims = list(node.outputs[0].type.shape)
        self.operands = {i: align(ctx, args[i], out_dims) for i in self.used}
        self.out_dtype = node.outputs[0].dtype

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

def accumulator_dtype(op, body_dtype, out_dtype):
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


def arg_better(ctx, op, v, best, dtype):
    """argmax/argmin: does ``v`` replace ``best`` (first occurrence wins, NaN wins)?"""
    b = ctx.builder
    kind = np.dtype(dtype).kind
    sym = ">" if op == "argmax" else "<"
    if kind == "f":
        return b.or_(b.fcmp_ordered(sym, v, best), b.and_(is_nan(ctx, v), b.not_(is_nan(ctx, best))))
    if kind == "i":
        return b.icmp_signed(sym, v, best)
    return b.icmp_unsigned(sym, v, best)


def _reduce(ctx, node, space, space_vals, args, operands, dtypes, out, keep=None):
    """``keep``: (body value index, array) stored at every point, at the offset of the operand
    after the inputs' (`lower_kernel_map_reduce`)."""
    body, red = node.params["body"], node.params["reduce"]
    op = red.op
    axes = sorted(red.axes)
    kept = [a for a in range(len(space)) if a not in axes]
    body_dtype = body_dtype_of(body, dtypes)
    red_dtype = reduce_dtype(op, body_dtype)
    acc_dtype = accumulator_dtype(op, body_dtype, red_dtype)
    out_strides = _out_strides(ctx, red, space, out)
    epilogue = _Epilogue(ctx, node, args, kept, red_dtype)
    used = used_inputs(body)
    cost = element_cost(body)

    def element(off, target):
        """The body's value at ``off``, converted for accumulation in dtype ``target``."""
        if keep is None:
            v, dt = eval_body(ctx, body, load_inputs(ctx, args, off, used), dtypes)
        else:
            values, value_dtypes = eval_values(ctx, body, load_inputs(ctx, args, off, used),
                                               dtypes)
            ctx.store(keep[1], off[len(args)], values[keep[0]])
            v, dt = values[-1], value_dtypes[-1]
        if op in ("any", "all"):
            return truth(ctx, v, dt)
        if op in ("argmax", "argmin"):
            return v
        return cast(ctx, v, dt, target)

    def new_accumulator():
        return _Accumulator(ctx, op, axes, acc_dtype, body_dtype, element)

    inner = op in ("argmax", "argmin") or (axes and axes[-1] == len(space) - 1) or not kept
    if inner:
        _reduce_inner(ctx, axes, kept, space_vals, operands, out, out_strides, new_accumulator,
                      epilogue, cost)
    else:
        _reduce_into_output(ctx, node, op, space_vals, operands, out, element, epilogue,
                            red_dtype, kept, cost)


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


class _Accumulator:
    """One reduced value in the making, in slots of the function being emitted (initialised
    where it is created): the running value and, by op, a "saw a NaN" flag, the argmax index,
    and a block's partial sum."""

    def __init__(self, ctx, op, axes, acc_dtype, body_dtype, element):
        self.ctx, self.op, self.axes, self.element = ctx, op, axes, element
        self.acc_dtype, self.body_dtype = np.dtype(acc_dtype), body_dtype
        self.acc_t = value_type(acc_dtype)
        kind = self.acc_dtype.kind
        self.arg_mode = op in ("argmax", "argmin")
        self.blocked = op == "sum" and kind == "f" and bool(axes)     # 0-d: no axis
        # a block's partial sum stays in the body's float dtype (float32 sums add 16 lanes
        # per instruction instead of converting each element to float64); the partials are
        # added in the accumulator's dtype, so rounding grows with the block size only
        self.partial_dtype = np.dtype(body_dtype) if self.blocked and \
            np.dtype(body_dtype).kind == "f" else self.acc_dtype
        # float max/min: a NaN-ignoring maxnum/minnum reduction (which vectorises) plus a
        # "saw a NaN" flag, combined at the end into NumPy's NaN-propagating result
        self.split_nan = op in ("max", "min") and kind == "f"
        self.acc = self._slot(self.acc_t, "acc", identity(op, acc_dtype))
        self.saw_nan = self._slot(i1, "saw_nan", ir.Constant(i1, 0)) if self.split_nan else None
        self.index = self._slot(value_type(np.intp), "argidx", ctx.i64(0)) if self.arg_mode \
            else None
        self.partial = ctx.alloca(value_type(self.partial_dtype), "partial") if self.blocked \
            else None

    def _slot(self, ty, name, init):
        slot = self.ctx.alloca(ty, name)
        self.ctx.builder.store(init, slot)
        return slot

    def state(self) -> list:
        """The slots that hold what `merge` needs of this accumulator."""
        return [s for s in (self.acc, self.saw_nan, self.index) if s is not None]

    def run(self, space_vals, operands, off_outer, idx_outer, ranges=None):
        """Accumulate the points of the reduced axes (over ``ranges`` where given) at the
        kept position ``off_outer`` / ``idx_outer``."""
        if self.blocked:
            _blocked_sum(self.ctx, self.axes, space_vals, operands, off_outer, idx_outer,
                         self.visit, self.add_partial, self.partial, ranges or {})
        else:
            nest(self.ctx, space_vals, operands, self.visit, self.axes, 0, off_outer,
                 dict(idx_outer), ranges)

    def visit(self, off, idx):
        ctx, b = self.ctx, self.ctx.builder
        v = self.element(off, self.partial_dtype if self.blocked else self.acc_dtype)
        if self.arg_mode:
            self._take_better(v, idx[self.axes[-1]])
        elif self.blocked:
            # reassociable within a block: LLVM keeps several partial sums in vector lanes,
            # as NumPy's pairwise sum keeps eight
            b.store(b.fadd(b.load(self.partial), v, flags=("reassoc",)), self.partial)
        elif self.split_nan:
            self._fold_ignoring_nan(v, is_nan(ctx, v))
        else:
            b.store(combine(ctx, self.op, b.load(self.acc), v, self.acc_dtype), self.acc)

    def add_partial(self):
        """Add the finished block's partial sum to the accumulator."""
        b = self.ctx.builder
        part = cast(self.ctx, b.load(self.partial), self.partial_dtype, self.acc_dtype)
        b.store(b.fadd(b.load(self.acc), part), self.acc)

    def merge(self, values):
        """Fold in another accumulator's final `state` (values), as if its points came after
        this one's."""
        b = self.ctx.builder
        if self.arg_mode:
            self._take_better(*values)
        elif self.split_nan:
            self._fold_ignoring_nan(*values)
        else:
            b.store(combine(self.ctx, self.op, b.load(self.acc), values[0], self.acc_dtype),
                    self.acc)

    def _take_better(self, v, index):
        b = self.ctx.builder
        best = b.load(self.acc)
        take = arg_better(self.ctx, self.op, v, best, self.body_dtype)
        b.store(b.select(take, v, best), self.acc)
        b.store(b.select(take, index, b.load(self.index)), self.index)

    def _fold_ignoring_nan(self, v, nan):
        b = self.ctx.builder
        name = "llvm.maxnum" if self.op == "max" else "llvm.minnum"
        # nnan: a NaN here makes acc poison, but the flag then discards acc
        b.store(b.call(self.ctx.intrinsic(name, self.acc_t, 2), [b.load(self.acc), v],
                       fastmath=("nnan", "nsz")), self.acc)
        b.store(b.or_(b.load(self.saw_nan), nan), self.saw_nan)

    def result(self, red_dtype):
        """The reduced value, in ``red_dtype`` (the argmax index for argmax)."""
        b = self.ctx.builder
        if self.arg_mode:
            return b.load(self.index)
        acc = b.load(self.acc)
        if self.split_nan:
            acc = b.select(b.load(self.saw_nan), ir.Constant(self.acc_t, float("nan")), acc)
        return cast(self.ctx, acc, self.acc_dtype, red_dtype)


def _reduce_inner(ctx, axes, kept, space_vals, operands, out, out_strides, new_accumulator,
                  epilogue, cost):
    """Reduced axes innermost: an accumulator in registers per output element. Threads share
    the output elements along the outermost kept axis; a reduction of the whole space is cut
    into chunks instead (`_reduce_in_chunks`)."""
    zero = [ctx.i64(0)] * len(operands)

    def store(acc, idx_outer):
        reduced = acc.result(epilogue.red_dtype)
        ctx.store(out, _offset(ctx, idx_outer, out_strides, kept),
                  epilogue.apply(reduced, idx_outer))

    def per_output(off_outer, idx_outer):
        acc = new_accumulator()
        acc.run(space_vals, operands, off_outer, idx_outer)
        store(acc, idx_outer)

    work = work_of(ctx, space_vals, cost)
    if kept:
        parallel_range(ctx, space_vals[kept[0]],
                       lambda lo, hi: nest(ctx, space_vals, operands, per_output, kept, 0, zero,
                                           {}, {kept[0]: (lo, hi)}), work)
    elif axes and work is not None:
        store(_reduce_in_chunks(ctx, new_accumulator, axes, space_vals, operands, work), {})
    elif axes:
        parallel_range(ctx, ctx.i64(1), lambda lo, hi: per_output(zero, {}))
    else:
        per_output(zero, {})


def _reduce_in_chunks(ctx, new_accumulator, axes, space_vals, operands, work):
    """A reduction of the whole space, cut into chunks along its outermost reduced axis (into
    whole SUM_BLOCKs when that is the blocked axis too): each chunk is reduced into a partial
    of its own, by whichever thread, and the partials are folded in chunk order. The chunks
    depend on the sizes only, so the result is the same on any number of threads."""
    b = ctx.builder
    axis = axes[0]
    n = space_vals[axis]
    final = new_accumulator()
    step = ctx.i64(SUM_BLOCK if final.blocked and len(axes) == 1 else 1)
    units = b.sdiv(b.add(n, b.sub(step, ctx.i64(1))), step)
    chunks = chunk_count(ctx, units, work)
    partials = [ctx.alloca(ir.ArrayType(slot.type.pointee, MAX_CHUNKS), "partials")
                for slot in final.state()]
    zero = [ctx.i64(0)] * len(operands)

    def reduce_chunks(lo, hi):
        with ctx.loop(hi, "chunk", start=lo) as c:
            first, last = block_bounds(ctx, c, chunks, units)
            end = b.mul(last, step)
            end = b.select(b.icmp_signed("<", end, n), end, n)
            acc = new_accumulator()
            acc.run(space_vals, operands, zero, {}, {axis: (b.mul(first, step), end)})
            for slot, partial in zip(acc.state(), partials):
                b.store(b.load(slot), b.gep(partial, [ctx.i64(0), c]))
    parallel_range(ctx, chunks, reduce_chunks, work)
    with ctx.loop(chunks, "merge") as c:
        final.merge([b.load(b.gep(partial, [ctx.i64(0), c])) for partial in partials])
    return final


def _blocked_sum(ctx, axes, space_vals, operands, off_outer, idx_outer, visit, add_partial,
                 partial_slot, ranges):
    """Float sums: the innermost reduced axis is summed in blocks of SUM_BLOCK whose partial
    sums are added to the accumulator, bounding rounding growth as NumPy's pairwise sum does.
    ``ranges`` restricts axes as for `nest` (the innermost one to whole blocks from its lo)."""
    b = ctx.builder
    last = axes[-1]
    lo, hi = ranges.get(last, (ctx.i64(0), space_vals[last]))
    n = b.sub(hi, lo)
    zero = ir.Constant(partial_slot.type.pointee, 0.0)

    def outer_axes(off, idx):
        nblocks = b.sdiv(b.add(n, ctx.i64(SUM_BLOCK - 1)), ctx.i64(SUM_BLOCK))
        with ctx.loop(nblocks, "blk") as blk:
            start = b.add(lo, b.mul(blk, ctx.i64(SUM_BLOCK)))
            rest = b.sub(hi, start)
            count = b.select(b.icmp_signed("<", rest, ctx.i64(SUM_BLOCK)), rest, ctx.i64(SUM_BLOCK))
            b.store(zero, partial_slot)
            with ctx.loop(count, "j") as j:
                pos = b.add(start, j)
                offs = [b.add(o, b.mul(pos, op.strides[last])) for o, op in zip(off, operands)]
                visit(offs, {**idx, last: pos})
            add_partial()

    nest(ctx, space_vals, operands, outer_axes, axes[:-1], 0, off_outer, dict(idx_outer), ranges)


def _reduce_into_output(ctx, node, op, space_vals, operands, out, element, epilogue, red_dtype,
                        kept, cost):
    """Reduced axes outside the innermost one: accumulate in memory order into the output (or,
    with an epilogue or another dtype, into a scratch buffer finished by a last pass). Threads
    share the outermost kept axis: each sets, accumulates (in the serial order) and finishes
    the output elements of its block, all in one region."""
    direct = epilogue.body is None and np.dtype(red_dtype) == out.dtype
    acc = out if direct else ctx.malloc_buffer(red_dtype, node.outputs[0].type.shape,
                                               "reduce_acc")
    init = identity(op, acc.dtype)
    red, space = node.params["reduce"], node.params["space"]
    acc_op = Operand(acc, _out_strides(ctx, red, space, acc), False)
    out_op = Operand(out, _out_strides(ctx, red, space, out), False)

    def visit(off, idx):
        v = element(off[1:], acc.dtype)
        ctx.store(acc, off[0], combine(ctx, op, ctx.load(acc, off[0]), v, acc.dtype))

    def finish(off, idx):
        ctx.store(out, off[0], epilogue.apply(ctx.load(acc, off[1]), idx))

    def block(lo, hi):
        mine, zero = {kept[0]: (lo, hi)}, ctx.i64(0)
        nest(ctx, space_vals, [acc_op], lambda off, _: ctx.store(acc, off[0], init), kept, 0,
             [zero], {}, mine)
        nest(ctx, space_vals, [acc_op] + operands, visit, list(range(len(space_vals))), 0,
             [zero] * (1 + len(operands)), {}, mine)
        if not direct:
            nest(ctx, space_vals, [out_op, acc_op], finish, kept, 0, [zero] * 2, {}, mine)
    parallel_range(ctx, space_vals[kept[0]], block, work_of(ctx, space_vals, cost))
