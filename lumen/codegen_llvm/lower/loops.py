"""Loop nests over an iteration space, reading and writing strided arrays in place.

An *operand* is an array aligned to the iteration space: one byte stride per space axis, 0
where it broadcasts. When every operand is C-contiguous with exactly the space's sizes (known
at compile time), the nest collapses into one flat loop that LLVM vectorises.
"""
from __future__ import annotations

import llvmlite.ir as ir

from ..context import Arr
from ..llvmtypes import i8p, i64
from ..parallel import COPY_NAME, parallel_range, work_of


class Operand:
    __slots__ = ("arr", "strides", "dense")

    def __init__(self, arr, strides, dense):
        self.arr, self.strides, self.dense = arr, strides, dense


def align(ctx, arr: Arr, space_dims) -> Operand:
    """View ``arr`` as broadcast to ``space_dims`` (NumPy's right-aligned rule)."""
    b = ctx.builder
    n, k = len(space_dims), arr.ndim
    zero = ctx.i64(0)
    strides = []
    for axis in range(n):
        j = axis - (n - k)
        if j < 0 or arr.dims[j].value == 1:
            strides.append(zero)
        elif arr.dims[j] == space_dims[axis]:
            strides.append(arr.strides[j])
        else:
            strides.append(b.select(b.icmp_signed("==", arr.shape[j], ctx.i64(1)), zero, arr.strides[j]))
    dense = arr.contiguous and k == n and all(arr.dims[j] == space_dims[j] for j in range(n))
    return Operand(arr, strides, dense)


def is_broadcast_scalar(op: Operand) -> bool:
    return all(getattr(s, "constant", None) == 0 for s in op.strides)


def for_each(ctx, space_vals, operands, body, order=None, indices=False, cost=None,
             split_axis=None, vectorise=True):
    """Run ``body(offsets, indices)`` at every point of the space; ``offsets[i]`` is operand
    i's byte offset there. ``order`` lists the axes outermost first (default: 0..n-1);
    ``indices=True`` asks for the per-axis indices (else they may be None). With ``cost``
    (work per point) the points may be shared among threads, split along the outermost axis
    or ``split_axis``: ``body`` must then write nothing that another point reads or writes.
    ``vectorise``: `parallel_range`'s."""
    n = len(space_vals)
    order = list(range(n)) if order is None else list(order)
    work = work_of(ctx, space_vals, cost)
    flat = n > 0 and not indices and order == list(range(n)) and split_axis is None and all(
        op.dense or is_broadcast_scalar(op) for op in operands)
    if flat:
        def flat_range(lo, hi):
            with ctx.loop(hi, "flat", start=lo) as i:
                body([ctx.builder.mul(i, ctx.i64(op.arr.dtype.itemsize), flags=["nsw"])
                      if op.dense else ctx.i64(0) for op in operands], None)
        parallel_range(ctx, ctx.count(space_vals), flat_range, work, vectorise)
        return
    zero = [ctx.i64(0)] * len(operands)
    if n == 0:
        body(zero, {})
        return
    axis = order[0] if split_axis is None else split_axis
    parallel_range(ctx, space_vals[axis],
                   lambda lo, hi: nest(ctx, space_vals, operands, body, order, 0, zero, {},
                                       {axis: (lo, hi)}), work, vectorise)


def nest(ctx, space_vals, operands, body, order, level, offsets, indices, ranges=None):
    """Loops over the axes ``order[level:]``, carrying operand offsets and indices; ``ranges``
    maps an axis to the (lo, hi) it runs over instead of all of it."""
    if level == len(order):
        body(offsets, indices)
        return
    axis = order[level]
    lo, hi = (ranges or {}).get(axis, (None, space_vals[axis]))
    b = ctx.builder
    with ctx.loop(hi, f"ax{axis}", start=lo) as i:
        inner = [b.add(off, b.mul(i, op.strides[axis], flags=["nsw"]), flags=["nsw"])
                 for off, op in zip(offsets, operands)]
        nest(ctx, space_vals, operands, body, order, level + 1, inner, {**indices, axis: i},
             ranges)


def copy(ctx, src: Arr, dst: Arr, convert=None):
    """dst[...] = src (broadcast to dst's shape), converting each element with ``convert``.
    A strided copy without conversion is a call to one function per rank and element size
    (`strided_copy_function`); the others are loops here."""
    space = list(dst.dims)
    ops = [align(ctx, dst, space), align(ctx, src, space)]
    if convert is None and space and all(op.dense for op in ops):
        ctx.move_bytes(dst.data, src.data,
                       ctx.builder.mul(ctx.count(dst.shape), ctx.i64(dst.dtype.itemsize)))
        return
    if convert is None and space and not all(op.dense or is_broadcast_scalar(op) for op in ops):
        fn = strided_copy_function(ctx, len(space), dst.dtype)
        ctx.builder.call(fn, [dst.data, src.data, *dst.shape, *ops[0].strides, *ops[1].strides])
        return

    def body(off, idx):
        v = ctx.load(src, off[1])
        ctx.store(dst, off[0], convert(v) if convert else v)
    for_each(ctx, dst.shape, ops, body)


def strided_copy_function(ctx, ndim, dtype):
    """``void copy(i8 *dst, i8 *src, i64 shape[ndim], i64 dst_strides[ndim],
    i64 src_strides[ndim])``, emitted once per module for each rank and element size: every
    strided copy (gemm operands BLAS cannot read, a bias broadcast into a gemm's result,
    transposes, scan carries, the transposing copy of `linalg._transposed_product`) calls it.
    Inlined, each copy was a loop nest LLVM vectorised on its own: a third of the compile time
    of an MLP training step. The elements move as integers of their size, so one function
    serves every dtype of that size."""
    name = f"{COPY_NAME}{ndim}d.{dtype.itemsize}.{dtype.alignment}"
    fn = ctx.module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(ctx.module, ir.FunctionType(ir.VoidType(), [i8p, i8p] + [i64] * (3 * ndim)),
                     name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    dst, src = fn.args[:2]
    shape, dst_strides, src_strides = (list(fn.args[2 + k * ndim:2 + (k + 1) * ndim])
                                       for k in range(3))
    element = ir.IntType(8 * dtype.itemsize).as_pointer()

    def body(offsets, indices):
        b = ctx.builder
        to, frm = (b.bitcast(b.gep(p, [off]), element) for p, off in zip((dst, src), offsets))
        b.store(b.load(frm, align=dtype.alignment), to, align=dtype.alignment)
    with ctx.function_body(fn):
        operands = [Operand(None, strides, False) for strides in (dst_strides, src_strides)]
        nest(ctx, shape, operands, body, list(range(ndim)), 0, [ctx.i64(0)] * 2, {})
        ctx.builder.ret_void()
    return fn
