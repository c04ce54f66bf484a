"""Constants (private globals in the module), iota and run-time sizes."""
from __future__ import annotations

import llvmlite.ir as ir

from ..context import Arr, contiguous_strides
from ..llvmtypes import i8, i8p, i64
from ..parallel import parallel_range
from .scalar import cast


def lower_const(ctx, node, args):
    a = node.params["value"].array
    data = bytearray(a.tobytes()) or bytearray(8)
    ty = ir.ArrayType(i8, len(data))
    g = ir.GlobalVariable(ctx.module, ty, name=f"const{len(ctx.module.globals)}")
    g.global_constant, g.linkage, g.initializer = True, "private", ir.Constant(ty, data)
    g.align = 64
    shape = [ctx.i64(n) for n in a.shape]
    strides = contiguous_strides(ctx.builder, shape, a.dtype.itemsize, ctx.i64)
    return [Arr(ctx.builder.bitcast(g, i8p), shape, strides, a.dtype, node.out.type.shape, True)]


def lower_iota(ctx, node, args):
    out = ctx.new_array(node.out)
    b = ctx.builder

    def values(lo, hi):
        with ctx.loop(hi, "iota", start=lo) as i:
            ctx.store(out, b.mul(i, ctx.i64(out.dtype.itemsize)), cast(ctx, i, "int64", out.dtype))
    parallel_range(ctx, out.shape[0], values, vectorise=False)
    return [out]


def lower_dim(ctx, node, args):
    slot = ctx.alloca(i64, "dimval")
    ctx.builder.store(ctx.dim(node.params["dim"]), slot)
    return [Arr(ctx.builder.bitcast(slot, i8p), [], [], "int64", (), True)]


LOWER = {"const": lower_const, "iota": lower_iota, "dim": lower_dim}
