"""Lowering of `kernel_matvec` (passes/matvec_siblings.py): one loop over the rows of W that
computes the elementwise kernel and, from the same loaded elements, ``v @ W.T``.

Threads share the rows. Each row's dot product is summed as `kernel._blocked_sum` sums floats:
blocks of `ROW_BLOCK` elements added in W's dtype with reassociation (several vector lanes),
the block sums added in float64, so the product is at least as accurate as BLAS's gemv.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import value_type
from ..parallel import element_cost, parallel_range, work_of
from ...ir.ops.kernel import used_inputs
from .kernel import eval_body, load_inputs
from .loops import align
from .scalar import cast

#: Columns per block of a row's dot product (see the module's docstring)
ROW_BLOCK = 1024


def lower_kernel_matvec(ctx, node, args):
    p = node.params
    b = ctx.builder
    space = list(p["space"])
    rows, cols = (ctx.dim(d) for d in space)
    body, matrix = p["body"], p["matrix"]
    kernel_args, vector = args[:-1], args[-1]
    used = used_inputs(body) | {matrix}
    dtypes = [a.dtype for a in kernel_args]
    out = ctx.new_array(node.outputs[0], list(zip(node.inputs, kernel_args)))
    product = ctx.new_array(node.outputs[1])
    operands = [align(ctx, a, space) for a in [out, vector, *kernel_args]]
    w_dtype = np.dtype(kernel_args[matrix].dtype)
    acc_dtype = np.dtype(np.float64)
    block_t, acc_t = value_type(w_dtype), value_type(acc_dtype)

    def row_block(lo, hi):
        with ctx.loop(hi, "row", start=lo) as i:
            row = [b.mul(i, op.strides[0], flags=["nsw"]) for op in operands]
            acc = ctx.alloca(acc_t, "dot")
            b.store(ir.Constant(acc_t, 0.0), acc)
            partial = ctx.alloca(block_t, "dot_block")
            nblocks = b.sdiv(b.add(cols, ctx.i64(ROW_BLOCK - 1)), ctx.i64(ROW_BLOCK))
            with ctx.loop(nblocks, "blk") as blk:
                start = b.mul(blk, ctx.i64(ROW_BLOCK))
                rest = b.sub(cols, start)
                count = b.select(b.icmp_signed("<", rest, ctx.i64(ROW_BLOCK)), rest,
                                 ctx.i64(ROW_BLOCK))
                b.store(ir.Constant(block_t, 0.0), partial)
                with ctx.loop(count, "col") as j:
                    col = b.add(start, j)
                    off = [b.add(r, b.mul(col, op.strides[1], flags=["nsw"]), flags=["nsw"])
                           for r, op in zip(row, operands)]
                    values = load_inputs(ctx, kernel_args, off[2:], used)
                    term = b.fmul(values[matrix], ctx.load(vector, off[1]))
                    b.store(b.fadd(b.load(partial), term, flags=("reassoc",)), partial)
                    v, _ = eval_body(ctx, body, values, dtypes)
                    ctx.store(out, off[0], v)
                b.store(b.fadd(b.load(acc), cast(ctx, b.load(partial), w_dtype, acc_dtype)), acc)
            dot = cast(ctx, b.load(acc), acc_dtype, product.dtype)
            ctx.store(product, b.mul(i, product.strides[-1], flags=["nsw"]), dot)

    parallel_range(ctx, rows, row_block, work_of(ctx, [rows, cols], element_cost(body) + 1))
    ctx.raise_flagged()
    return [out, product]


LOWER = {"kernel_matvec": lower_kernel_matvec}
