"""Reducing kernels: one thread block per output element (blocks take output elements in a
grid-stride loop), its threads sharing the reduced points.

Each thread folds the points ``r = tid, tid + ntid, ...`` of the reduced sub-space into an
accumulator in registers (in point order); the block then combines its threads' accumulators:
within each warp by shuffles (``shfl.sync.down``), then the warps' results through shared
memory, in the first warp again by shuffles. Thread 0 finishes the value (the conversion to the
output dtype, or the kernel's epilogue) and stores it. The accumulation dtypes and the combining
rules are the CPU backend's (`codegen_llvm.lower.kernel`), so both backends give NumPy's
dtypes, NaN propagation and first-occurrence argmax; float32 sums accumulate in float64.

Parameters (`reduce_params`): ``out``, one pointer per kernel input, ``err``, ``n_out``
(output elements), ``n_red`` (points reduced into each), the output's sizes, the reduced axes'
sizes, the byte strides of each input the body reads aligned to the space, and those of each
input the epilogue reads aligned to the output. Blocks must have a multiple of 32 threads, at
most 1024.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ..codegen_llvm.llvmtypes import i1, i32, i64
from ..codegen_llvm.lower.kernel import (accumulator_dtype, arg_better, combine, eval_body,
                                         identity)
from ..codegen_llvm.lower.scalar import cast, is_nan, truth
from ..ir.ops.kernel import body_dtype, used_inputs
from ..ir.ops.reduce import reduce_dtype
from .context import byte_ptr, err_ptr

WARP = 32
#: The "no element yet" index of an argmax/argmin accumulator: it loses every tie.
_NO_INDEX = (1 << 63) - 1


def _layout(node):
    p = node.params
    red = p["reduce"]
    axes = sorted(red.axes)
    d = len(p["space"])
    kept = [a for a in range(d) if a not in axes]
    # the space axis of each output axis (None: a reduced axis kept with length 1)
    out_axes = [None if a in axes else a for a in range(d)] if red.keepdims else kept
    return (axes, out_axes, sorted(used_inputs(p["body"])),
            sorted(used_inputs(p.get("epilogue"), n_lead=1)))


def reduce_params(node):
    """(name, type) of the kernel's parameters, in order."""
    axes, out_axes, used, epilogue_used = _layout(node)
    n, d = len(node.inputs), len(node.params["space"])
    return ([("out", byte_ptr)] + [(f"in{k}", byte_ptr) for k in range(n)] +
            [("err", err_ptr), ("n_out", i64), ("n_red", i64)] +
            [(f"outsize{j}", i64) for j in range(len(out_axes))] +
            [(f"redsize{r}", i64) for r in range(len(axes))] +
            [(f"stride{k}_{a}", i64) for k in used for a in range(d)] +
            [(f"estride{k}_{j}", i64) for k in epilogue_used for j in range(len(out_axes))])


class _Fold:
    """How accumulators are made, fed and merged for one reduction op."""

    def __init__(self, ctx, op, dtypes, body):
        self.ctx, self.op = ctx, op
        self.body_dtype = body_dtype(body, dtypes)
        self.red_dtype = reduce_dtype(op, self.body_dtype)
        self.acc_dtype = accumulator_dtype(op, self.body_dtype, self.red_dtype)
        self.arg = op in ("argmax", "argmin")

    def identity(self):
        state = [identity(self.op, self.acc_dtype)]
        return state + [ir.Constant(i64, _NO_INDEX)] if self.arg else state

    def element(self, v, dt):
        """A body value, as the accumulator takes it."""
        if self.op in ("any", "all"):
            return truth(self.ctx, v, dt)
        return v if self.arg else cast(self.ctx, v, dt, self.acc_dtype)

    def merge(self, state, other):
        """``state`` folded with ``other``, whose points come after state's (argmax: or
        whose index decides a tie)."""
        ctx, b = self.ctx, self.ctx.builder
        if not self.arg:
            return [combine(ctx, self.op, state[0], other[0], self.acc_dtype)]
        (v, i), (w, j) = state, other
        if np.dtype(self.acc_dtype).kind == "f":
            tie = b.or_(b.fcmp_ordered("==", w, v), b.and_(is_nan(ctx, w), is_nan(ctx, v)))
        else:
            tie = b.icmp_unsigned("==", w, v)
        take = b.or_(arg_better(ctx, self.op, w, v, self.body_dtype),
                     b.and_(tie, b.icmp_signed("<", j, i)))
        return [b.select(take, w, v), b.select(take, j, i)]

    def result(self, state):
        """The reduced value, in the reduction's dtype (argmax: the index)."""
        return state[1] if self.arg else cast(self.ctx, state[0], self.acc_dtype, self.red_dtype)


def lower_reduce(ctx, node, name):
    p = node.params
    op = p["reduce"].op
    axes, out_axes, used, epilogue_used = _layout(node)
    d = len(p["space"])
    dtypes = [v.dtype for v in node.inputs]
    fold = _Fold(ctx, op, dtypes, p["body"])
    with ctx.kernel(name, reduce_params(node)) as args:
        b = ctx.builder
        tid, ntid = ctx.sreg("tid.x"), ctx.sreg("ntid.x")
        strides = {k: [args[f"stride{k}_{a}"] for a in range(d)] for k in used}
        out_sizes = [args[f"outsize{j}"] for j in range(len(out_axes))]
        red_sizes = [args[f"redsize{r}"] for r in range(len(axes))]
        shared = _SharedState(ctx, fold)
        slots = [ctx.alloca(v.type, "acc") for v in fold.identity()]
        with ctx.loop(ctx.sreg("ctaid.x"), args["n_out"], ctx.sreg("nctaid.x"), "out") as o:
            out_index = ctx.unravel(o, out_sizes)
            base = {k: ctx.dot([i for i, a in zip(out_index, out_axes) if a is not None],
                               [s[a] for a in out_axes if a is not None])
                    for k, s in strides.items()}
            for slot, v in zip(slots, fold.identity()):
                b.store(v, slot)
            with ctx.loop(tid, args["n_red"], ntid, "red") as r:
                red_index = ctx.unravel(r, red_sizes)
                offsets = {k: b.add(base[k], ctx.dot(red_index, [s[a] for a in axes]))
                           for k, s in strides.items()}
                values = [ctx.load(args[f"in{k}"], offsets[k], dtypes[k]) if k in offsets
                          else None for k in range(len(dtypes))]
                v, dt = eval_body(ctx, p["body"], values, dtypes)
                point = [fold.element(v, dt)] + ([r] if fold.arg else [])
                state = fold.merge([b.load(s) for s in slots], point)
                for slot, value in zip(slots, state):
                    b.store(value, slot)
            total = shared.block_reduce([b.load(s) for s in slots], tid, ntid)
            with ctx.if_then(b.icmp_unsigned("==", tid, ctx.i64(0)), "finish"):
                value = _finish(ctx, node, args, fold.result(total), fold.red_dtype,
                                out_index, epilogue_used)
                ctx.store(args["out"], b.mul(o, ctx.i64(node.out.dtype.itemsize)),
                          node.out.dtype, value)
            ctx.barrier()       # the next output element reuses the shared arrays


def _finish(ctx, node, args, reduced, red_dtype, out_index, epilogue_used):
    """The value stored for ``reduced``: the epilogue's (reading inputs at the output's index)
    or just ``reduced`` in the output dtype."""
    epilogue = node.params.get("epilogue")
    if epilogue is None:
        return cast(ctx, reduced, red_dtype, node.out.dtype)
    dtypes = [v.dtype for v in node.inputs]
    values = [reduced] + [None] * len(dtypes)
    for k in epilogue_used:
        off = ctx.dot(out_index, [args[f"estride{k}_{j}"] for j in range(len(out_index))])
        values[1 + k] = ctx.load(args[f"in{k}"], off, dtypes[k])
    v, _ = eval_body(ctx, epilogue, values, [red_dtype] + dtypes)
    return v


class _SharedState:
    """The block-wide combination of the threads' accumulators."""

    def __init__(self, ctx, fold):
        self.ctx, self.fold = ctx, fold
        self.types = [v.type for v in fold.identity()]
        self.arrays = [ctx.shared_array(_in_memory(t), WARP, f"{ctx.fn.name}_warps{n}")
                       for n, t in enumerate(self.types)]

    def block_reduce(self, state, tid, ntid):
        """The fold of every thread's ``state``, valid in thread 0."""
        ctx, b = self.ctx, self.ctx.builder
        lane = b.trunc(b.and_(tid, ctx.i64(WARP - 1)), i32)
        warp = b.trunc(b.lshr(tid, ctx.i64(5)), i32)
        state = self._warp_reduce(state)
        with ctx.if_then(b.icmp_unsigned("==", lane, ir.Constant(i32, 0)), "to_shared"):
            for array, v in zip(self.arrays, state):
                b.store(_to_memory(b, v), ctx.shared_element(array, warp))
        ctx.barrier()
        n_warps = b.trunc(b.lshr(b.add(ntid, ctx.i64(WARP - 1)), ctx.i64(5)), i32)
        result = [ctx.alloca(t, "block") for t in self.types]
        with ctx.if_then(b.icmp_unsigned("==", warp, ir.Constant(i32, 0)), "first_warp"):
            present = b.icmp_unsigned("<", lane, n_warps)
            safe_lane = b.select(present, lane, ir.Constant(i32, 0))
            mine = [b.select(present, _from_memory(b, b.load(ctx.shared_element(a, safe_lane)), t),
                             init)
                    for a, t, init in zip(self.arrays, self.types, self.fold.identity())]
            for slot, v in zip(result, self._warp_reduce(mine)):
                b.store(v, slot)
        return [b.load(slot) for slot in result]

    def _warp_reduce(self, state):
        """Lane 0 ends with the fold of the warp's 32 states (the others with partial ones)."""
        for offset in (16, 8, 4, 2, 1):
            other = [shuffle_down(self.ctx, v, offset) for v in state]
            state = self.fold.merge(state, other)
        return state


def _in_memory(ty):
    return ir.IntType(8) if ty == i1 else ty


def _to_memory(b, v):
    return b.zext(v, ir.IntType(8)) if v.type == i1 else v


def _from_memory(b, v, ty):
    return b.trunc(v, i1) if ty == i1 else v


def shuffle_down(ctx, v, offset: int):
    """The value ``v`` of the lane ``offset`` above this one in the warp (this lane's own
    value where there is none), for any scalar type: 32-bit pieces through
    ``llvm.nvvm.shfl.sync.down.i32``."""
    b = ctx.builder
    ty = v.type
    bits = ty.width if isinstance(ty, ir.IntType) else (32 if ty == ir.FloatType() else 64)
    as_int = b.bitcast(v, ir.IntType(bits)) if not isinstance(ty, ir.IntType) else v
    shfl = ctx.function("llvm.nvvm.shfl.sync.down.i32", i32, [i32] * 4)

    def piece(x):
        return b.call(shfl, [ir.Constant(i32, -1), x, ir.Constant(i32, offset),
                             ir.Constant(i32, WARP - 1)])
    if bits <= 32:
        moved = piece(b.zext(as_int, i32) if bits < 32 else as_int)
        moved = b.trunc(moved, ir.IntType(bits)) if bits < 32 else moved
    else:
        lo = piece(b.trunc(as_int, i32))
        hi = piece(b.trunc(b.lshr(as_int, ir.Constant(i64, 32)), i32))
        moved = b.or_(b.zext(lo, i64), b.shl(b.zext(hi, i64), ir.Constant(i64, 32)))
    return b.bitcast(moved, ty) if not isinstance(ty, ir.IntType) else moved
