"""cumsum / cumprod along one axis: the other axes outside, a running accumulator inside."""
from __future__ import annotations

from ..llvmtypes import value_type
from ..parallel import parallel_range
from .kernel import combine, identity
from .loops import align, nest
from .scalar import cast

_REDUCTION = {"cumsum": "sum", "cumprod": "prod"}


def lower_cumulative(ctx, node, args):
    (x,) = args
    b = ctx.builder
    op = _REDUCTION[node.op]
    axis = node.params["axis"]
    out = ctx.new_array(node.out)
    space = list(out.dims)
    operands = [align(ctx, out, space), align(ctx, x, space)]
    others = [a for a in range(len(space)) if a != axis]
    outer = others[0] if others else None

    def lines(lo, hi):
        acc = ctx.alloca(value_type(out.dtype), "cum_acc")

        def line(off, idx):
            b.store(identity(op, out.dtype), acc)
            with ctx.loop(out.shape[axis], "cum") as i:
                o_out = b.add(off[0], b.mul(i, operands[0].strides[axis]))
                o_in = b.add(off[1], b.mul(i, operands[1].strides[axis]))
                v = cast(ctx, ctx.load(x, o_in), x.dtype, out.dtype)
                s = combine(ctx, op, b.load(acc), v, out.dtype)
                b.store(s, acc)
                ctx.store(out, o_out, s)
        nest(ctx, out.shape, operands, line, others, 0, [ctx.i64(0)] * 2, {},
             None if outer is None else {outer: (lo, hi)})
    parallel_range(ctx, ctx.i64(1) if outer is None else out.shape[outer], lines)
    return [out]


LOWER = {"cumsum": lower_cumulative, "cumprod": lower_cumulative}
