"""gather / scatter / update_slice. Indices are bounds-checked in the loop; a bad index raises
IndexError after the loop, having read (or written) only in-bounds memory."""
from __future__ import annotations

from ..parallel import parallel_range
from .loops import Operand, align, copy, for_each
from .movement import slice_view
from .scalar import cast


def _index_space(ctx, x, idx_arrays, start, space_dims):
    """Operands for the index arrays over a gathered space, and a function that maps the
    space's indices and the loaded index values to x's byte offset."""
    b = ctx.builder
    k = len(idx_arrays)
    nb = len(space_dims) - (x.ndim - k)
    b_dims = space_dims[start:start + nb]
    idx_ops = []
    for arr in idx_arrays:
        op = align(ctx, arr, b_dims)
        strides = [ctx.i64(0)] * start + op.strides + [ctx.i64(0)] * (len(space_dims) - start - nb)
        idx_ops.append(Operand(arr, strides, False))

    def x_offset(indices, loaded):
        off = ctx.i64(0)
        for a in range(start):
            off = b.add(off, b.mul(indices[a], x.strides[a]))
        for a in range(start + nb, len(space_dims)):
            xa = a - nb + k
            off = b.add(off, b.mul(indices[a], x.strides[xa]))
        for j, v in enumerate(loaded):
            axis = start + j
            n = x.shape[axis]
            v = cast(ctx, v, idx_arrays[j].dtype, "int64")
            v = b.select(b.icmp_signed("<", v, ctx.i64(0)), b.add(v, n), v)
            bad = b.or_(b.icmp_signed("<", v, ctx.i64(0)), b.icmp_signed(">=", v, n))
            ctx.flag_error(bad, "IndexError", f"index out of bounds for axis {axis} in {ctx.where}")
            v = b.select(bad, ctx.i64(0), v)
            off = b.add(off, b.mul(v, x.strides[axis]))
        return off
    return idx_ops, x_offset


def lower_gather(ctx, node, args):
    x, *idx = args
    out = ctx.new_array(node.out)
    space = list(node.out.type.shape)
    idx_ops, x_offset = _index_space(ctx, x, idx, node.params["start"], space)
    ops = [align(ctx, out, space)] + idx_ops

    def body(off, indices):
        loaded = [ctx.load(a, o) for a, o in zip(idx, off[1:])]
        ctx.store(out, off[0], ctx.load(x, x_offset(indices, loaded)))
    # threads may share the points: each writes its own output element (cost: the index
    # loads, the bounds checks and the element copied)
    for_each(ctx, out.shape, ops, body, indices=True, cost=1 + len(idx), vectorise=False)
    ctx.raise_flagged()
    return [out]


def lower_scatter(ctx, node, args):
    x, v, *idx = args
    out = ctx.new_array(node.out)
    from ...ir.ops.indexing import gathered_shape
    space, _ = gathered_shape(x.dims, [a.dims for a in idx], node.params["start"])
    space_vals = [ctx.dim(d) for d in space]
    idx_ops, x_offset = _index_space(ctx, out, idx, node.params["start"], list(space))
    ops = [align(ctx, v, list(space))] + idx_ops
    add = node.params["mode"] == "add"

    def body(off, indices):
        loaded = [ctx.load(a, o) for a, o in zip(idx, off[1:])]
        target = x_offset(indices, loaded)
        val = cast(ctx, ctx.load(v, off[0]), v.dtype, out.dtype)
        if add:
            from .scalar import LOWER
            val = LOWER["add"](ctx, [ctx.load(out, target), val], out.dtype, out.dtype, {})
        ctx.store(out, target, val)

    def copy_then_scatter(lo, hi):      # one loop function for both (each costs LLVM ~10 ms)
        copy(ctx, x, out)
        for_each(ctx, space_vals, ops, body, indices=True)
    parallel_range(ctx, ctx.i64(1), copy_then_scatter, vectorise=False)
    ctx.raise_flagged()
    return [out]


def lower_update_slice(ctx, node, args):
    x, v = args
    out = ctx.new_array(node.out)
    copy(ctx, x, out)
    from ...ir.ops.movement import slice_out_dims
    dims = slice_out_dims(x.dims, node.params["specs"])
    region = slice_view(ctx, out, node.params["specs"], dims)
    copy(ctx, v, region, convert=lambda e: cast(ctx, e, v.dtype, out.dtype))
    return [out]


LOWER = {"gather": lower_gather, "scatter": lower_scatter, "update_slice": lower_update_slice}
