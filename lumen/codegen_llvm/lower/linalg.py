"""matmul: float32/float64 through BLAS ``?gemm`` / ``?gemv`` (`symbols.blas`: NumPy's own
OpenBLAS, else SciPy's), one call per batch element; other dtypes through a loop nest."""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ..llvmtypes import f32, f64, i8, i8p, i32, i64, value_type
from ..parallel import parallel_range
from .. import small_gemm
from ..symbols import blas
from ..target import host_features
from .loops import align, copy, nest, strided_copy_function
from .scalar import LOWER as SCALAR, cast


def lower_gemm(ctx, node, args):
    """alpha * (a @ b) + beta * c: the product reads c's values where c has the result's
    shape and is C-contiguous (``W - lr * x.T @ d``, every SGD step: no copy of W), else from
    a copy of c (a broadcast bias) in the result."""
    a, b_, c = args
    out = ctx.new_array(node.out)
    alpha, beta = node.params["alpha"], node.params["beta"]
    old = out
    if beta and c.contiguous and c.dtype == out.dtype and tuple(c.dims) == tuple(out.dims):
        old = c
    elif beta:
        copy(ctx, c, out)
    batch = list(node.out.type.shape[:-2])
    gemm = _Gemm(ctx, a, b_, out, alpha, beta, old)
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

    def __init__(self, ctx, a, b_, out, alpha=1.0, beta=0.0, old=None):
        self.ctx = ctx
        self.alpha, self.beta = alpha, beta
        self.out, self.old = out, out if old is None else old
        self.itemsize = out.dtype.itemsize
        self.m, self.k = a.shape[-2], a.shape[-1]
        self.n = b_.shape[-1]
        self.a = self._prepare(a)
        self.b = self._prepare(b_)
        self.fn = _product_function(ctx, out.dtype)

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
        b = self.ctx.builder
        ft = self.fn.args[5].type
        b.call(self.fn, [self.a.trans, self.b.trans, self.m, self.n, self.k,
                         ir.Constant(ft, float(self.alpha)), b.gep(self.a.arr.data, [off_a]),
                         self.a.ld, b.gep(self.b.arr.data, [off_b]), self.b.ld,
                         ir.Constant(ft, float(self.beta)), b.gep(self.out.data, [off_c]),
                         b.gep(self.old.data, [off_c])])


def small_products_choice(b, letter, features, ta, tb, m, n, k):
    """IR (at ``b``) for whether the product goes to `small_gemm.NAMES`[letter] rather than BLAS:
    products of matrices, tiny ones or those with few rows or few terms (`small_gemm.FEW`), B
    untransposed, or B transposed and A not, where few rows suit the dot products and few
    terms the copy of B^T.
    Not both operands transposed, nor a single row or column of C: BLAS's ?gemv streams a
    large matrix past one row faster on two cores (an RNN's ``h @ W_h``: W4 at H = 500 and
    1000 on two threads took 1.2-1.5x as long through these kernels), as fast on one, and
    small ones no slower."""
    def const(x):
        return ir.Constant(i64, x)
    plain_a = b.icmp_unsigned("==", ta, ir.Constant(i8, ord("N")))
    plain_b = b.icmp_unsigned("==", tb, ir.Constant(i8, ord("N")))
    few_rows = b.icmp_signed("<=", m, const(small_gemm.FEW))
    few_terms = b.icmp_signed("<=", k, const(small_gemm.FEW))
    short = b.icmp_signed("<", k, const(small_gemm.DOT_MIN_VECTORS
                                          * small_gemm.lanes(letter, features)))
    transposed = b.and_(plain_a, b.select(short, b.or_(few_rows, few_terms), few_rows))
    matrices = b.and_(b.icmp_signed(">=", m, const(2)), b.icmp_signed(">=", n, const(2)))
    # few terms, unless rows of C are a multiple of `small_gemm.ALIASED_ROW` bytes long (BLAS)
    unaliased = b.icmp_signed("!=", b.urem(b.mul(n, const(small_gemm.item_bytes(letter))),
                                           const(small_gemm.ALIASED_ROW)), const(0))
    update_here = b.and_(few_terms, unaliased)
    suits = b.select(plain_b, b.or_(few_rows, update_here), transposed)
    tiny = b.and_(b.or_(plain_a, plain_b),
                  b.icmp_signed("<=", b.mul(b.mul(m, n), k), const(small_gemm.TINY)))
    return b.and_(b.and_(matrices, b.or_(tiny, suits)), b.icmp_signed(">=", k, const(1)))


def _product_function(ctx, dtype):
    """``void product(i8 trans_a, i8 trans_b, i64 m, i64 n, i64 k, T alpha, i8* a, i64 lda,
    i8* b, i64 ldb, T beta, i8* c, i8* c_in)``: c (m x n, row-major) = alpha * op(a) @ op(b) +
    beta * c_in (c_in: c, or an array of c's layout, copied into c before BLAS runs),
    emitted once per module (every product site is one call). `small_gemm`'s kernels where
    they beat BLAS (few rows or few terms, and tiny products) and do not decline it (its dot
    products could not be linked, or no memory was left for a copy); else ?gemv when a side is a single
    row or column (BLAS's gemm would pack the whole matrix for one row: 3x slower at
    1000 x 1000, the recurrent step of an RNN), else ?gemm; C^T = B^T A^T in BLAS's
    column-major terms."""
    prefix = "s" if dtype == np.float32 else "d"
    name = f"lumen.product.{prefix}"
    fn = ctx.module.globals.get(name)
    if fn is not None:
        return fn
    ft = f32 if dtype == np.float32 else f64
    blas_int = i64 if blas().int_bits == 64 else i32
    pint, pf = blas_int.as_pointer(), ft.as_pointer()
    fn = ir.Function(ctx.module, ir.FunctionType(
        ir.VoidType(), [i8, i8, i64, i64, i64, ft, i8p, i64, i8p, i64, ft, i8p, i8p]), name)
    fn.linkage = "internal"
    gemm = ctx.function(f"lumen_{prefix}gemm", ir.VoidType(),
                        [i8p, i8p, pint, pint, pint, pf, i8p, pint, i8p, pint, pf, i8p, pint])
    gemv = ctx.function(f"lumen_{prefix}gemv", ir.VoidType(),
                        [i8p, pint, pint, pf, i8p, pint, i8p, pint, pf, i8p, pint])
    ta, tb, m, n, k, alpha, a, lda, b_, ldb, beta, c, c_in = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    own = ctx.function(small_gemm.NAMES[prefix], i32, [a.type for a in fn.args])
    with b.if_then(small_products_choice(b, prefix, host_features(), ta, tb, m, n, k)):
        with b.if_then(b.icmp_signed("==", b.call(own, list(fn.args)), ir.Constant(i32, 0))):
            b.ret_void()
    with b.if_then(b.and_(b.fcmp_unordered("une", beta, ir.Constant(ft, 0.0)),
                          b.icmp_unsigned("!=", c, c_in))):
        ctx.move_bytes(c, c_in, b.mul(b.mul(m, n), ir.Constant(i64, np.dtype(dtype).itemsize)),
                       builder=b)

    def ref(v):
        """BLAS takes every argument by pointer (Fortran); ints of its width."""
        if v.type == i64 and blas_int == i32:
            v = b.trunc(v, i32)
        slot = b.alloca(v.type)
        b.store(v, slot)
        return slot

    def plain(trans):
        return b.icmp_unsigned("==", trans, ir.Constant(i8, ord("N")))

    one = ir.Constant(i64, 1)
    with b.if_then(b.and_(b.or_(b.icmp_signed("==", m, one), b.icmp_signed("==", n, one)),
                          b.icmp_signed(">=", k, one))):
        with b.if_else(b.icmp_signed("==", m, one)) as (row, column):
            with row:          # c (n) = op(B) (n x k) . a (k); a's elements ld apart if A is transposed
                rows, cols = b.select(plain(tb), n, k), b.select(plain(tb), k, n)
                inc = b.select(plain(ta), one, lda)
                b.call(gemv, [ref(tb), ref(rows), ref(cols), ref(alpha), b_, ref(ldb), a,
                              ref(inc), ref(beta), c, ref(one)])
            with column:       # c (m) = op(A)^T in BLAS terms (m x k) . b (k)
                trans = b.select(plain(ta), ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N")))
                rows, cols = b.select(plain(ta), k, m), b.select(plain(ta), m, k)
                inc = b.select(plain(tb), ldb, one)
                b.call(gemv, [ref(trans), ref(rows), ref(cols), ref(alpha), a, ref(lda), b_,
                              ref(inc), ref(beta), c, ref(one)])
        b.ret_void()
    _transposed_product(ctx, b, fn, gemm, ref, np.dtype(dtype))
    ldc = b.select(b.icmp_signed("<", n, one), one, n)
    b.call(gemm, [ref(tb), ref(ta), ref(n), ref(m), ref(k), ref(alpha), b_, ref(ldb), a,
                  ref(lda), ref(beta), c, ref(ldc)])
    b.ret_void()
    return fn


#: `_transposed_product` applies from these sizes on: a wide B (n) with a long inner axis (k)
SWAP_MIN_N, SWAP_MIN_K = 256, 64


def _transposed_product(ctx, b, fn, gemm, ref, dtype):
    """A few rows times a large transposed matrix (``dz @ W.T``, every backward pass through a
    dense layer): OpenBLAS packs the large operand transposed when C^T = B A^T is asked for, and
    is 1.6x slower at 60 x 1000 @ (1000 x 1000)^T and 2.8x at 2 rows than when C is computed
    in column-major order (C = A B, B untransposed in BLAS's terms) into a scratch block and
    transposed into place (`loops.strided_copy_function`). Taken where A is row-major, B
    transposed, beta is 0, m < n and the sizes reach `SWAP_MIN_N` / `SWAP_MIN_K`; otherwise
    (or without memory) nothing happens."""
    ta, tb, m, n, k, alpha, a, lda, b_, ldb, beta, c, _c_in = fn.args
    ft = alpha.type
    itemsize = ir.Constant(i64, dtype.itemsize)
    N, T = ir.Constant(i8, ord("N")), ir.Constant(i8, ord("T"))
    swap = b.and_(b.and_(b.icmp_unsigned("==", ta, N), b.icmp_unsigned("==", tb, T)),
                  b.and_(b.fcmp_ordered("==", beta, ir.Constant(ft, 0.0)),
                         b.icmp_signed("<", m, n)))
    swap = b.and_(swap, b.and_(b.icmp_signed(">=", n, ir.Constant(i64, SWAP_MIN_N)),
                               b.icmp_signed(">=", k, ir.Constant(i64, SWAP_MIN_K))))
    with b.if_then(swap):
        nbytes = b.mul(b.mul(m, n), itemsize)
        tmp = b.call(ctx.function("malloc", i8p, [i64]), [nbytes])
        with b.if_then(b.icmp_unsigned("!=", tmp, ir.Constant(i8p, None))):
            b.call(gemm, [ref(T), ref(N), ref(m), ref(n), ref(k), ref(alpha), a, ref(lda), b_,
                          ref(ldb), ref(beta), tmp, ref(m)])
            b.call(strided_copy_function(ctx, 2, dtype),
                   [c, tmp, m, n, b.mul(n, itemsize), itemsize, itemsize, b.mul(m, itemsize)])
            b.call(ctx.function("free", ir.VoidType(), [i8p]), [tmp])
            b.ret_void()


def _loop_matmul(ctx, a, b_, out, off_c, off_a, off_b):
    """out[i, j] = sum_k a[i, k] * b[k, j] for one batch element (integer and bool dtypes)."""
    bld = ctx.builder
    dt = out.dtype
    t = value_type(dt)
    m, k, n = a.shape[-2], a.shape[-1], b_.shape[-1]

    def rows(lo, hi):
        acc = ctx.alloca(t, "mm_acc")
        with ctx.loop(hi, "mi", start=lo) as i:
            with ctx.loop(n, "mj") as j:
                bld.store(ir.Constant(t, 0), acc)
                with ctx.loop(k, "mk") as kk:
                    pa = bld.add(off_a, bld.add(bld.mul(i, a.strides[-2]),
                                                bld.mul(kk, a.strides[-1])))
                    pb = bld.add(off_b, bld.add(bld.mul(kk, b_.strides[-2]),
                                                bld.mul(j, b_.strides[-1])))
                    x = cast(ctx, ctx.load(a, pa), a.dtype, dt)
                    y = cast(ctx, ctx.load(b_, pb), b_.dtype, dt)
                    prod = SCALAR["multiply"](ctx, [x, y], dt, dt, {})
                    bld.store(SCALAR["add"](ctx, [bld.load(acc), prod], dt, dt, {}), acc)
                po = bld.add(off_c, bld.add(bld.mul(i, out.strides[-2]),
                                            bld.mul(j, out.strides[-1])))
                ctx.store(out, po, bld.load(acc))
    parallel_range(ctx, m, rows)


LOWER = {"matmul": lower_matmul, "gemm": lower_gemm}
