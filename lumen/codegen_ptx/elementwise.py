"""Kernels without a reduction: one thread per point of the iteration space, in a grid-stride
loop (``for i = global thread id; i < total; i += threads in the grid``).

Parameters (`map_params`): ``out``, one pointer per kernel input, ``err``, ``total`` (points in
the space), ``flat``, the space's sizes, then the byte strides of each input the body reads,
aligned to the space (0 along broadcast axes). The output is C-contiguous with the space's
shape. With ``flat`` set (the runtime sets it when every input read is C-contiguous with the
space's shape or a broadcast scalar) input k is read at ``i * stride[k][last axis]`` and no
index is unravelled; otherwise each point's indices are unravelled from ``i``.
"""
from __future__ import annotations

from ..codegen_llvm.llvmtypes import i64
from ..codegen_llvm.lower.kernel import eval_body
from ..ir.ops.kernel import used_inputs
from .context import byte_ptr, err_ptr


def map_params(node):
    """(name, type) of the kernel's parameters, in order."""
    n, d = len(node.inputs), len(node.params["space"])
    used = sorted(used_inputs(node.params["body"]))
    return ([("out", byte_ptr)] + [(f"in{k}", byte_ptr) for k in range(n)] +
            [("err", err_ptr), ("total", i64), ("flat", i64)] +
            [(f"size{a}", i64) for a in range(d)] +
            [(f"stride{k}_{a}", i64) for k in used for a in range(d)])


def lower_map(ctx, node, name):
    body = node.params["body"]
    d = len(node.params["space"])
    used = sorted(used_inputs(body))
    dtypes = [v.dtype for v in node.inputs]
    out_dtype = node.out.dtype
    with ctx.kernel(name, map_params(node)) as args:
        b = ctx.builder
        start = b.add(b.mul(ctx.sreg("ctaid.x"), ctx.sreg("ntid.x")), ctx.sreg("tid.x"))
        step = b.mul(ctx.sreg("nctaid.x"), ctx.sreg("ntid.x"))
        sizes = [args[f"size{a}"] for a in range(d)]
        strides = {k: [args[f"stride{k}_{a}"] for a in range(d)] for k in used}

        def emit(i, offsets):
            values = [ctx.load(args[f"in{k}"], offsets[k], dtypes[k]) if k in offsets else None
                      for k in range(len(dtypes))]
            v, _ = eval_body(ctx, body, values, dtypes)
            ctx.store(args["out"], b.mul(i, ctx.i64(out_dtype.itemsize)), out_dtype, v)

        flat = b.icmp_signed("!=", args["flat"], ctx.i64(0))
        with b.if_else(flat) as (then, otherwise):
            with then:
                with ctx.loop(start, args["total"], step, "flat") as i:
                    emit(i, {k: b.mul(i, s[-1]) if d else ctx.i64(0)
                             for k, s in strides.items()})
            with otherwise:
                with ctx.loop(start, args["total"], step, "point") as i:
                    index = ctx.unravel(i, sizes)
                    emit(i, {k: ctx.dot(index, s) for k, s in strides.items()})
