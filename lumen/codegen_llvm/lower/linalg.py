"""matmul: float32/float64 through BLAS ``?gemm`` (SciPy's function pointers), one call per
batch element; other dtypes through a loop nest."""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import f32, f64, i8, i8p, i32, value_type
from .loops import align, copy, nest
from .scalar import LOWER as SCALAR, cast


def lower_gemm(ctx, node, args):
    """alpha * (a @ b) + beta * c: c copied into the result, then ?gemm with beta."""
    a, b_, c = args
    out = ctx.new_array(node.out)
    alpha, beta = node.params["alpha"], node.params["beta"]
    if beta:
        copy(ctx, c, out)
    batch = list(node.out.type.shape[:-2])
    gemm = _Gemm(ctx, a, b_, out, alpha, beta)
    operands = [align(ctx, _batch_view(x), batch) for x in (out, gemm.a.arr, gemm.b.arr)]
    nest(ctx, [ctx.dim(d) for d in batch], operands, lambda off, idx: gemm.call(*off),
         list(range(len(batch))), 0, [ctx.i64(0)] * 3, {})
    return [out]


def _merged_rows(ctx, x, dims):
    """A C-contiguous (..., M, K) array seen as one (prod(...) * M, K) matrix."""
    from ..context import Arr, contiguous_strides
    rows = ctx.count(x.shape[:-1])
    shape = [rows, x.shape[-1]]
    return Arr(x.data, shape, contiguous_strides(ctx.builder, shape, x.dtype.itemsize, ctx.i64),
               x.dtype, dims, True, x.owner)


def lower_matmul(ctx, node, args):
    a, b_ = args
    out = ctx.new_array(node.out)
    batch = list(node.out.type.shape[:-2])
    if batch and b_.ndim == 2 and a.ndim == len(batch) + 2 and a.contiguous and out.contiguous \
            and out.dtype.kind == "f" and a.dtype == b_.dtype == out.dtype:
        # (..., M, K) @ (K, N): one matrix product over all the rows, not one per batch element
        from ...ir.dims import prod
        rows = prod(node.out.type.shape[:-1])
        a2 = _merged_rows(ctx, a, (rows, a.dims[-1]))
        out2 = _merged_rows(ctx, out, (rows, out.dims[-1]))
        _Gemm(ctx, a2, b_, out2).call(ctx.i64(0), ctx.i64(0), ctx.i64(0))
        return [out]
    batch_vals = [ctx.dim(d) for d in batch]
    if out.dtype.kind == "f" and a.dtype == out.dtype and b_.dtype == out.dtype:
        gemm = _Gemm(ctx, a, b_, out)
        operands = [align(ctx, _batch_view(x), batch) for x in (out, gemm.a.arr, gemm.b.arr)]
        nest(ctx, batch_vals, operands, lambda off, idx: gemm.call(*off), list(range(len(batch))),
             0, [ctx.i64(0)] * 3, {})
    else:
        operands = [align(ctx, _batch_view(x), batch) for x in (out, a, b_)]
        nest(ctx, batch_vals, operands, lambda off, idx: _loop_matmul(ctx, a, b_, out, *off),
             list(range(len(batch))), 0, [ctx.i64(0)] * 3, {})
    return [out]


def _batch_view(x):
    """x restricted to its batch axes (the last two are the matrix)."""
    from ..context import Arr
    return Arr(x.data, x.shape[:-2], x.strides[:-2], x.dtype, x.dims[:-2], False, x.owner)


class _Prepared:
    __slots__ = ("arr", "trans", "ld")

    def __init__(self, arr, trans, ld):
        self.arr, self.trans, self.ld = arr, trans, ld


class _Gemm:
    """Prepares operands once (a contiguous copy where strides do not suit BLAS), then calls
    ``?gemm`` per batch element: C^T = B^T A^T in BLAS's column-major terms."""

    def __init__(self, ctx, a, b_, out, alpha=1.0, beta=0.0):
        self.ctx = ctx
        self.alpha, self.beta = alpha, beta
        self.out = out
        self.itemsize = out.dtype.itemsize
        self.m, self.k = a.shape[-2], a.shape[-1]
        self.n = b_.shape[-1]
        self.a = self._prepare(a)
        self.b = self._prepare(b_)
        name = "lumen_sgemm" if out.dtype == np.float32 else "lumen_dgemm"
        ft = f32 if out.dtype == np.float32 else f64
        p32 = i32.as_pointer()
        self.fn = ctx.function(name, ir.VoidType(),
                               [i8p, i8p, p32, p32, p32, ft.as_pointer(), i8p, p32, i8p, p32,
                                ft.as_pointer(), i8p, p32])
        self.ft = ft

    def _prepare(self, x):
        """-> `_Prepared`: x itself where its strides suit BLAS, else a contiguous copy."""
        ctx, b = self.ctx, self.ctx.builder
        isz = ctx.i64(self.itemsize)
        s0, s1 = x.strides[-2], x.strides[-1]
        rows, cols = x.shape[-2], x.shape[-1]
        one = ctx.i64(1)

        def at_least(v, n):
            n = b.select(b.icmp_signed("<", n, one), one, n)
            return b.icmp_signed(">=", v, n)
        ld0 = b.sdiv(s0, isz)
        ld1 = b.sdiv(s1, isz)
        row_major = b.and_(b.icmp_signed("==", s1, isz),
                           b.and_(at_least(ld0, cols), b.icmp_signed("==", b.srem(s0, isz), ctx.i64(0))))
        col_major = b.and_(b.icmp_signed("==", s0, isz),
                           b.and_(at_least(ld1, rows), b.icmp_signed("==", b.srem(s1, isz), ctx.i64(0))))
        ok = b.or_(row_major, col_major)
        trans_pre = b.select(row_major, ir.Constant(i8, ord("N")), ir.Constant(i8, ord("T")))
        ld_pre = b.select(row_major, ld0, ld1)
        ld_pre = b.select(b.icmp_signed("<", ld_pre, one), one, ld_pre)
        pre = b.block
        fix = ctx.fn.append_basic_block("gemm.copy")
        done = ctx.fn.append_basic_block("gemm.ready")
        b.cbranch(ok, done, fix)
        b.position_at_end(fix)
        # one contiguous copy covering every batch element of x
        tmp = ctx.malloc_buffer(x.dtype, x.dims, "gemm_tmp")
        copy(ctx, x, tmp)
        ld_fix = b.select(b.icmp_signed("<", cols, one), one, cols)
        fix_end = b.block
        b.branch(done)
        b.position_at_end(done)
        data = b.phi(i8p)
        data.add_incoming(x.data, pre)
        data.add_incoming(tmp.data, fix_end)
        trans = b.phi(i8)
        trans.add_incoming(trans_pre, pre)
        trans.add_incoming(ir.Constant(i8, ord("N")), fix_end)
        ld = b.phi(ctx.i64(0).type)
        ld.add_incoming(ld_pre, pre)
        ld.add_incoming(ld_fix, fix_end)
        strides = []
        for s_x, s_t in zip(x.strides[:-2], tmp.strides[:-2]):
            ph = b.phi(s_x.type)
            ph.add_incoming(s_x, pre)
            ph.add_incoming(s_t, fix_end)
            strides.append(ph)
        from ..context import Arr
        arr = Arr(data, x.shape, strides + list(x.strides[-2:]), x.dtype, x.dims, False)
        return _Prepared(arr, trans, ld)

    def call(self, off_c, off_a, off_b):
        ctx, b = self.ctx, self.ctx.builder
        # batch offsets were computed with the original strides; recompute for copies
        a_data, a_trans, a_ld = self.a.arr.data, self.a.trans, self.a.ld
        b_data, b_trans, b_ld = self.b.arr.data, self.b.trans, self.b.ld
        slot = lambda v, t=i32: self._store(ctx.alloca(t), v)
        trans_a = self._store(ctx.alloca(i8), a_trans)
        trans_b = self._store(ctx.alloca(i8), b_trans)
        m = slot(b.trunc(self.m, i32))
        n = slot(b.trunc(self.n, i32))
        k = slot(b.trunc(self.k, i32))
        lda = slot(b.trunc(a_ld, i32))
        ldb = slot(b.trunc(b_ld, i32))
        ldc_v = b.select(b.icmp_signed("<", self.n, ctx.i64(1)), ctx.i64(1), self.n)
        ldc = slot(b.trunc(ldc_v, i32))
        alpha = self._store(ctx.alloca(self.ft), ir.Constant(self.ft, float(self.alpha)))
        beta = self._store(ctx.alloca(self.ft), ir.Constant(self.ft, float(self.beta)))
        b.call(self.fn, [trans_b, trans_a, n, m, k, alpha, b.gep(b_data, [off_b]), ldb,
                         b.gep(a_data, [off_a]), lda, beta, b.gep(self.out.data, [off_c]), ldc])

    def _store(self, slot, v):
        self.ctx.builder.store(v, slot)
        return slot


def _loop_matmul(ctx, a, b_, out, off_c, off_a, off_b):
    """out[i, j] = sum_k a[i, k] * b[k, j] for one batch element (integer and bool dtypes)."""
    bld = ctx.builder
    dt = out.dtype
    t = value_type(dt)
    m, k, n = a.shape[-2], a.shape[-1], b_.shape[-1]
    with ctx.loop(m, "mi") as i:
        with ctx.loop(n, "mj") as j:
            acc = ctx.alloca(t, "mm_acc")
            bld.store(ir.Constant(t, 0), acc)
            with ctx.loop(k, "mk") as kk:
                pa = bld.add(off_a, bld.add(bld.mul(i, a.strides[-2]), bld.mul(kk, a.strides[-1])))
                pb = bld.add(off_b, bld.add(bld.mul(kk, b_.strides[-2]), bld.mul(j, b_.strides[-1])))
                x = cast(ctx, ctx.load(a, pa), a.dtype, dt)
                y = cast(ctx, ctx.load(b_, pb), b_.dtype, dt)
                prod = SCALAR["multiply"](ctx, [x, y], dt, dt, {})
                bld.store(SCALAR["add"](ctx, [bld.load(acc), prod], dt, dt, {}), acc)
            po = bld.add(off_c, bld.add(bld.mul(i, out.strides[-2]), bld.mul(j, out.strides[-1])))
            ctx.store(out, po, bld.load(acc))


LOWER = {"matmul": lower_matmul, "gemm": lower_gemm}
