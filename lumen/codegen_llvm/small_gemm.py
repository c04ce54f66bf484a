"""Matrix products with few rows or few terms, in register-blocked code of lumen's own.

BLAS's ``?gemm`` copies ("packs") both operands into a layout of its own on every call, which
pays where each element is used many times. An MLP's training step multiplies a few rows (the
batch) by a large weight matrix, or sums a few terms (the batch again) into one: there packing
is a second pass over the weights, and OpenBLAS ran at 73-90 % of its square-matrix speed
(60 rows by 1000 x 1000 float32 weights, one core), against 95-100 % here. Below a few
thousand multiply-adds its call costs more than the product. These kernels read the operands
where they lie:

* B with contiguous rows (``x @ w``, ``h.T @ d``): a tile of up to `ROW_TILES`[0] rows of C by
  a few vectors of columns stays in registers while the terms are added, each a broadcast
  element of A times a vector of B's row. C is cut into column panels of `PANEL` vectors and
  the terms into blocks of `KC`, so that the block of B being read stays in the L2 cache for
  every row block of A; rows of B are fetched ahead (`PREFETCH_ROWS`).
* B transposed, A with contiguous rows (``d @ w.T``): each element of C is the dot product of
  two contiguous rows, summed in vector lanes for a tile of rows of A and of B (`DOT_TILES`);
  with few terms, B^T is copied out and multiplied by rows instead.

C = alpha A B + beta C_in, where C_in may be another array of C's shape: the SGD update
``W - lr * x.T @ d`` reads W where it lies instead of copying it into the result first.

Each dtype's kernels are a module of runtime support (`symbols.link_small_products`), compiled
once per target and cached on disk, the dot products a module of their own linked when a
product first takes them (`DOT_NAMES`); a program's product function (`lower.linalg`) calls
them by name (`NAMES`) where `lower.linalg.small_products_choice` says they win, BLAS
otherwise. A large product runs on
lumen's OpenMP team, the threads sharing out blocks of C's rows (whole panels of its columns
where there are too few rows), never on OpenBLAS's threads: those spin after each call, and
took the core lumen's next parallel loop needed (a 784-1000-1000-1000-10 MLP step on two
threads ran 11.8 ms with OpenBLAS's threads spinning, 7.4 ms without).
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import ir_text
from .llvmtypes import f32, f64, i8, i8p, i32, i64

#: The exported function per BLAS prefix: ``i32 f(i8 trans_a, i8 trans_b, i64 m, i64 n,
#: i64 k, T alpha, i8* a, i64 lda, i8* b, i64 ldb, T beta, i8* c, i8* c_in)``, the arguments
#: of the product function (row-major terms: op(a) is m x k, op(b) k x n; C = alpha op(a)
#: op(b) + beta C_in, both m x n with rows n apart; c_in may be c); it returns 0, or 1 where
#: it declines the product (BLAS's then).
NAMES = {"s": "lumen_sgemm_small", "d": "lumen_dgemm_small"}
#: That function's LLVM type per prefix.
ENTRY_TYPE = {letter: ir.FunctionType(i32, [i8, i8, i64, i64, i64, t, i8p, i64, i8p, i64, t,
                                             i8p, i8p])
              for letter, t in (("s", f32), ("d", f64))}
#: The dot products' function per prefix (same arguments), in a module of its own, which the
#: `NAMES` function finds at the address in the global `DOTS_SLOT` (null until then: it calls
#: ``i8* DOTS_RESOLVER(i8 prefix)``, which links the module and returns that address, or
#: null). Most programs' products never take them (an MLP's ``d @ W_out.T`` has 10 terms: B^T
#: is copied): a third of the kernels' compile time that a cold start need not pay.
DOT_NAMES = {"s": "lumen_sgemm_dots", "d": "lumen_dgemm_dots"}
DOTS_SLOT = {"s": "lumen_sgemm_dots_address", "d": "lumen_dgemm_dots_address"}
DOTS_RESOLVER = "lumen_small_dots_resolve"
#: Heights of the row tiles (B's rows contiguous): a block of rows is cut greedily into these.
ROW_TILES = (6, 4, 2, 1)
#: Vectors of columns per panel; a tile of 1 or 2 rows spans the panel, a taller one half.
PANEL = 4
#: How many rows of B ahead a row tile asks for: each of a panel's rows lies in a page of
#: its own when B is wide, where the hardware prefetchers do not follow.
PREFETCH_ROWS = 24
#: A block of B up to this size is read from the L2 cache by every row block of C.
ROWS_FIRST_BYTES = 256 << 10
#: Terms per block: a block of a panel of B is KC x PANEL vectors (128 KiB with AVX-512).
KC = 512
#: Heights of the dot-product tiles in rows of A, and their width in rows of B.
DOT_TILES, DOT_COLS = (6, 4, 2, 1), 4
#: A product runs on the OpenMP team from this many multiply-adds (~40 µs on one core: waking
#: the team costs several µs), or where B has this many elements (a few rows of C stream a
#: large B from memory, faster on two cores).
PARALLEL_WORK, PARALLEL_B = 1 << 22, 1 << 20
#: Rows of C from which B transposed with few terms is copied out (`exported`).
COPY_MIN_ROWS = 4
#: Products up to this many multiply-adds always run here (BLAS's call costs ~1 µs).
TINY = 1 << 15
#: "Few" rows or terms (`lower.linalg.small_products_choice`), measured against OpenBLAS
#: 0.3.31 through MLP training steps at batches 10-60 (OpenBLAS's packed kernels reached 73-90 %
#: of their square-matrix speed there). On Zen 5, whose 512-bit units are full width, these
#: kernels needed their tiles of 6 rows by 4 vectors (24 accumulators; with 2 vectors, a load
#: for every 1.5 multiply-adds) to win on one core: 784-1000^3-10 at batch 60, 5.70 ms against
#: 6.19 with OpenBLAS's, at batch 32 3.72 against 4.04.
FEW = 64
#: A product with few terms but many rows (the weight update ``W - lr * x.T @ d``) whose rows
#: of C are a multiple of this many bytes long (1024 float32) goes to BLAS: each row of B and
#: of C then falls in the same sets of the L1 cache, which BLAS's packed copies avoid
#: (2048 x 60 @ 60 x 2048 float32 on one core: 4.4-5.9 ms here, 2.8 with OpenBLAS; 1024 wide
#: 0.80 against 0.63).
ALIASED_ROW = 4096
#: B transposed takes the dot products from `DOT_MIN_VECTORS` vectors of terms on (each dot
#: product ends in a sum of lanes), else a copy of B^T.
DOT_MIN_VECTORS = 8
_N, _T = ord("N"), ord("T")


def vector_bytes(features: str) -> int:
    """Bytes per vector register for LLVM's flattened host feature string."""
    flags = set(features.split(","))
    return 64 if "+avx512f" in flags else 32 if "+avx" in flags else 16


def item_bytes(letter: str) -> int:
    """Bytes per element for BLAS's prefix ``letter`` ("s" or "d")."""
    return 4 if letter == "s" else 8


def lanes(letter: str, features: str) -> int:
    return vector_bytes(features) // item_bytes(letter)


def copies_transposed_b(b, lanes, m, k):
    """IR (at builder ``b``) for whether a product with B transposed copies B^T out and
    multiplies it by rows rather than taking the dot products: with a short inner axis
    (``d @ W_out.T``, W_out 10 classes wide) a vector or less per dot product would leave the
    kernel summing lanes, and C has rows enough to repay the copy (two or three rows keep the
    dot products)."""
    return b.and_(b.icmp_signed("<", k, ir_text.Constant(i64, DOT_MIN_VECTORS * lanes)),
                  b.icmp_signed(">=", m, ir_text.Constant(i64, COPY_MIN_ROWS)))


class _Emitter:
    """One dtype's kernels in one module, for vectors of ``vbytes``."""

    def __init__(self, module, letter, vbytes):
        self.module = module
        self.letter = letter
        self.t = f32 if letter == "s" else f64
        self.size = item_bytes(letter)
        self.lanes = vbytes // self.size
        self.vec = ir.VectorType(self.t, self.lanes)
        self.tp = self.t.as_pointer()
        self.suffix = f"v{self.lanes}{'f32' if letter == 's' else 'f64'}"

    # -- helpers -----------------------------------------------------------------------------

    def declare(self, name, ret, args):
        fn = self.module.globals.get(name)
        return fn if fn is not None else ir_text.Function(self.module, ir.FunctionType(ret, args), name)

    def function(self, name, args):
        fn = ir_text.Function(self.module, ir.FunctionType(ir.VoidType(), args),
                         f"lumen.{self.letter}.{name}")
        fn.linkage = "internal"
        return fn, ir_text.IRBuilder(fn.append_basic_block("entry"))

    def splat(self, b, x):
        vt = ir.VectorType(x.type, self.lanes)
        v = b.insert_element(ir_text.Constant(vt, ir_text.Undefined), x, ir_text.Constant(i32, 0))
        return b.shuffle_vector(v, ir_text.Constant(vt, ir_text.Undefined),
                                ir_text.Constant(ir.VectorType(i32, self.lanes), [0] * self.lanes))

    def mask(self, b, count):
        """The lanes [0, count) (count may be <= 0 or more than the lanes)."""
        index = ir_text.Constant(ir.VectorType(i64, self.lanes), list(range(self.lanes)))
        return b.icmp_signed("<", index, self.splat(b, count))

    def load(self, b, p, offset, mask=None):
        ptr = b.bitcast(b.gep(p, [offset]), self.vec.as_pointer())
        if mask is None:
            return b.load(ptr, align=self.size)
        fn = self.declare(f"llvm.masked.load.{self.suffix}.p0", self.vec,
                          [self.vec.as_pointer(), i32, mask.type, self.vec])
        return b.call(fn, [ptr, ir_text.Constant(i32, self.size), mask, ir_text.Constant(self.vec, None)])

    def store(self, b, value, p, offset, mask=None):
        ptr = b.bitcast(b.gep(p, [offset]), self.vec.as_pointer())
        if mask is None:
            b.store(value, ptr, align=self.size)
            return
        fn = self.declare(f"llvm.masked.store.{self.suffix}.p0", ir.VoidType(),
                          [self.vec, self.vec.as_pointer(), i32, mask.type])
        b.call(fn, [value, ptr, ir_text.Constant(i32, self.size), mask])

    def prefetch(self, b, p, offset):
        fn = self.declare("llvm.prefetch.p0", ir.VoidType(), [i8p, i32, i32, i32])
        b.call(fn, [b.bitcast(b.gep(p, [offset]), i8p), ir_text.Constant(i32, 0),
                    ir_text.Constant(i32, 3), ir_text.Constant(i32, 1)])

    def fma(self, b, x, y, z):
        return b.call(self.declare(f"llvm.fma.{self.suffix}", self.vec, [self.vec] * 3), [x, y, z])

    @staticmethod
    def loop(b, start, stop, step, carried, body, name):
        """``for (i = start; i < stop; i += step) carried = body(b, i, carried)``: the final
        carried values (SSA values threaded through phis). With ``step`` None, the body
        returns ``(carried, step)``, a step of its own making."""
        fn = b.function
        head, loop, done = (fn.append_basic_block(f"{name}.{part}")
                            for part in ("head", "body", "done"))
        pre = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(i64)
        i.add_incoming(start, pre)
        phis = []
        for v in carried:
            phis.append(b.phi(v.type))
            phis[-1].add_incoming(v, pre)
        b.cbranch(b.icmp_signed("<", i, stop), loop, done)
        b.position_at_end(loop)
        new = body(b, i, phis)
        if step is None:
            new, step = new
        i.add_incoming(b.add(i, step), b.block)
        for ph, v in zip(phis, new):
            ph.add_incoming(v, b.block)
        b.branch(head)
        b.position_at_end(done)
        return phis

    @staticmethod
    def at_most(b, x, bound):
        bound = ir_text.Constant(i64, bound)
        return b.select(b.icmp_signed(">", x, bound), bound, x)

    def by_height(self, b, left, tiles, call):
        """Cover ``left`` rows with tiles of the given heights, the tallest that fits each
        time: ``call(b, tile_height, row_offset)`` (the offset an i64 value)."""
        def cover(b, at, _):
            rest = b.sub(left, at)
            height = ir_text.Constant(i64, tiles[-1])
            for t in reversed(tiles[:-1]):
                height = b.select(b.icmp_signed(">=", rest, ir_text.Constant(i64, t)),
                                  ir_text.Constant(i64, t), height)
            covered = b.function.append_basic_block("rows.covered")
            sw = b.switch(height, covered)
            for t in tiles:
                case = b.function.append_basic_block(f"rows.{t}")
                sw.add_case(ir_text.Constant(i64, t), case)
                b.position_at_end(case)
                call(b, t, at)
                b.branch(covered)
            b.position_at_end(covered)
            return [], height
        self.loop(b, ir_text.Constant(i64, 0), left, None, [], cover, "rows")

    # -- B with contiguous rows --------------------------------------------------------------

    def row_tile(self, rows, vectors, masked):
        """``tile(a, sai, sap, b, ldb, c, old, ldc, kc, alpha, scale, width)``: C[:rows,
        :vectors lanes] = alpha * A[:rows, :kc] @ B[:kc, :] + scale * OLD (OLD not read where
        scale is 0: it may hold anything, NaN included); with ``masked``, only ``width``
        columns exist."""
        fn, b = self.function(f"rows{rows}x{vectors}{'m' if masked else ''}", [
            self.tp, i64, i64, self.tp, i64, self.tp, self.tp, i64, i64, self.t, self.t, i64])
        a, sai, sap, bb, ldb, c, old_c, ldc, kc, alpha, scale, width = fn.args
        masks = [self.mask(b, b.sub(width, ir_text.Constant(i64, v * self.lanes))) if masked
                 else None for v in range(vectors)]
        a_rows = [b.gep(a, [b.mul(ir_text.Constant(i64, r), sai)]) for r in range(rows)]
        for r in range(rows, 2 * rows):   # the next tile's old values come while the terms
            for v in range(vectors):      # add up (in the weight update, W from memory)
                self.prefetch(b, old_c, b.add(b.mul(ir_text.Constant(i64, r), ldc),
                                              ir_text.Constant(i64, v * self.lanes)))
        last = b.sub(kc, ir_text.Constant(i64, 1))

        def term(b, p, accs):
            row = b.mul(p, ldb)
            bv = [self.load(b, bb, b.add(row, ir_text.Constant(i64, v * self.lanes)), masks[v])
                  for v in range(vectors)]
            ahead = b.add(p, ir_text.Constant(i64, PREFETCH_ROWS))
            ahead = b.mul(b.select(b.icmp_signed(">", ahead, last), last, ahead), ldb)
            reach = (vectors if masked else PANEL) * self.lanes * self.size  # a panel's width,
            for line in range(0, reach, 64):                        # or at its edge the tile's
                self.prefetch(b, bb, b.add(ahead, ir_text.Constant(i64, line // self.size)))
            at = b.mul(p, sap)
            out = []
            for r in range(rows):
                x = self.splat(b, b.load(b.gep(a_rows[r], [at])))
                out += [self.fma(b, x, bv[v], accs[r * vectors + v]) for v in range(vectors)]
            return out
        zero = ir_text.Constant(self.vec, None)
        accs = self.loop(b, ir_text.Constant(i64, 0), kc, ir_text.Constant(i64, 1),
                         [zero] * (rows * vectors), term, "k")
        va, vs = self.splat(b, alpha), self.splat(b, scale)
        keep = b.fcmp_unordered("une", scale, ir_text.Constant(self.t, 0.0))
        for r in range(rows):
            for v in range(vectors):
                at = b.add(b.mul(ir_text.Constant(i64, r), ldc), ir_text.Constant(i64, v * self.lanes))
                old = b.select(keep, b.fmul(vs, self.load(b, old_c, at, masks[v])), zero)
                self.store(b, self.fma(b, va, accs[r * vectors + v], old), c, at, masks[v])
        b.ret_void()
        return fn

    def rows_driver(self):
        """``rows(m, a, sai, sap, b, ldb, c, old, n, kb, kc, alpha, scale, j_lo, j_hi)``: C's
        columns [j_lo, j_hi) for the terms [kb, kb + kc) (added to scale * OLD), tile by tile.
        Panel by panel, each row block by row block, where that block of B is too large for
        the L2 cache (`ROWS_FIRST_BYTES`): each panel is read from memory once. Otherwise row
        block by row block, each panel by panel: C (and OLD) are then read and written a few
        whole rows at a time (the weight update, ``W - lr * x.T @ d``, whose B is a few rows),
        not a panel's width of every row, each in a page of its own."""
        at = self.tile_at()
        fn, b = self.function("rows", [i64, self.tp, i64, i64, self.tp, i64, self.tp, self.tp,
                                       i64, i64, i64, self.t, self.t, i64, i64])
        m, a, sai, sap, bb, ldb, c, old_c, n, kb, kc, alpha, scale, j_lo, j_hi = fn.args
        a = b.gep(a, [b.mul(kb, sap)])
        bb = b.gep(bb, [b.mul(kb, ldb)])
        zero = ir_text.Constant(i64, 0)

        rows = (zero, m, ir_text.Constant(i64, ROW_TILES[0]), "i")
        panels = (j_lo, j_hi, ir_text.Constant(i64, PANEL * self.lanes), "j")

        def nest(outer, inner, rows_outer):
            def outer_body(b, x, _):
                def inner_body(b, y, _):
                    i, j = (x, y) if rows_outer else (y, x)
                    b.call(at, [i, j, m, a, sai, sap, bb, ldb, c, old_c, n, kc, alpha, scale,
                                j_hi])
                    return []
                self.loop(b, *inner[:3], [], inner_body, inner[3])
                return []
            self.loop(b, *outer[:3], [], outer_body, outer[3])
        block_bytes = b.mul(b.mul(kc, b.sub(j_hi, j_lo)), ir_text.Constant(i64, self.size))
        with b.if_else(b.icmp_signed("<=", block_bytes, ir_text.Constant(i64, ROWS_FIRST_BYTES))) \
                as (rows_first, panels_first):
            with rows_first:
                nest(rows, panels, True)
            with panels_first:
                nest(panels, rows, False)
        b.ret_void()
        return fn

    def vectors(self, rows):
        """Vectors of columns per row tile: enough for the multiply-adds to hide each other's
        latency, as many as the registers hold (a whole panel with AVX-512's 32, half of it
        for a tall tile with 16)."""
        return PANEL if rows <= 2 or self.lanes * self.size == 64 else PANEL // 2

    def tile_at(self):
        """``at(i, j, m, a, sai, sap, b, ldb, c, old, n, kc, alpha, scale, j_hi)``: the tiles
        of the row block at i and the panel at j. Where the panel passes j_hi, masked tiles:
        as wide as the others where more than a vector of columns is left (``h @ W`` with 500
        or 1000 columns ends in 52 or 40), else one vector (a narrow C, ``h @ W_out`` with 10
        classes, is all edge)."""
        tiles = {(rows, v, masked): self.row_tile(rows, v, masked)
                 for rows in ROW_TILES for v, masked in ((self.vectors(rows), False),
                                                         (self.vectors(rows), True), (1, True))}
        fn, b = self.function("at", [i64, i64, i64, self.tp, i64, i64, self.tp, i64, self.tp,
                                     self.tp, i64, i64, self.t, self.t, i64])
        i, j, m, a, sai, sap, bb, ldb, c, old_c, n, kc, alpha, scale, j_hi = fn.args
        span = ir_text.Constant(i64, PANEL * self.lanes)
        left = b.sub(j_hi, j)
        end = b.select(b.icmp_signed("<", left, span), left, span)

        def run(b, rows, at, vectors, masked):
            tile, step = tiles[rows, vectors, masked], vectors * self.lanes
            row = b.add(i, at)
            a_row, ij = b.gep(a, [b.mul(row, sai)]), b.add(b.mul(row, n), j)

            def columns(b, s, _):
                off = b.add(ij, s)
                b.call(tile, [a_row, sai, sap, b.gep(bb, [b.add(j, s)]), ldb, b.gep(c, [off]),
                              b.gep(old_c, [off]), n, kc, alpha, scale,
                              b.sub(left, s) if masked else ir_text.Constant(i64, step)])
                return []
            self.loop(b, ir_text.Constant(i64, 0), end, ir_text.Constant(i64, step), [], columns,
                      "s")

        def full(b, rows, at):
            run(b, rows, at, self.vectors(rows), False)

        def edge(b, rows, at):
            wider = b.icmp_signed(">", left, ir_text.Constant(i64, self.lanes))
            with b.if_else(wider) as (wide, one):
                with wide:
                    run(b, rows, at, self.vectors(rows), True)
                with one:
                    run(b, rows, at, 1, True)

        whole, part = fn.append_basic_block("panel.full"), fn.append_basic_block("panel.part")
        b.cbranch(b.icmp_signed(">=", left, span), whole, part)
        for call, start in ((full, whole), (edge, part)):
            b.position_at_end(start)
            self.by_height(b, self.at_most(b, b.sub(m, i), ROW_TILES[0]), ROW_TILES, call)
            b.ret_void()
        return fn

    # -- B transposed: dot products ----------------------------------------------------------

    def dot_tile(self, rows, cols):
        """``tile(a, lda, b, ldb, c, old, ldc, k, alpha, beta)``: C[:rows, :cols] = alpha *
        A[:rows, :k] . B[:cols, :k]^T + beta * OLD (not read where beta is 0)."""
        fn, b = self.function(f"dot{rows}x{cols}", [
            self.tp, i64, self.tp, i64, self.tp, self.tp, i64, i64, self.t, self.t])
        a, lda, bb, ldb, c, old_c, ldc, k, alpha, beta = fn.args
        lanes = ir_text.Constant(i64, self.lanes)
        whole = b.mul(b.sdiv(k, lanes), lanes)
        a_rows = [b.gep(a, [b.mul(ir_text.Constant(i64, r), lda)]) for r in range(rows)]
        b_rows = [b.gep(bb, [b.mul(ir_text.Constant(i64, s), ldb)]) for s in range(cols)]

        def step(b, p, accs, mask=None):
            av = [self.load(b, row, p, mask) for row in a_rows]
            bv = [self.load(b, row, p, mask) for row in b_rows]
            return [self.fma(b, av[r], bv[s], accs[r * cols + s])
                    for r in range(rows) for s in range(cols)]
        accs = self.loop(b, ir_text.Constant(i64, 0), whole, lanes,
                         [ir_text.Constant(self.vec, None)] * (rows * cols), step, "k")
        tail = b.icmp_signed(">", k, whole)
        before = b.block
        with b.if_then(tail):
            tailed = step(b, whole, accs, self.mask(b, b.sub(k, whole)))
            after = b.block
        summed = []
        for acc, with_tail in zip(accs, tailed):
            summed.append(b.phi(self.vec))
            summed[-1].add_incoming(acc, before)
            summed[-1].add_incoming(with_tail, after)
        reduce = self.declare(f"llvm.vector.reduce.fadd.{self.suffix}", self.t,
                              [self.t, self.vec])
        keep = b.fcmp_unordered("une", beta, ir_text.Constant(self.t, 0.0))
        for q, vector in enumerate(summed):
            total = b.call(reduce, [ir_text.Constant(self.t, -0.0), vector], fastmath=("reassoc",))
            r, s = divmod(q, cols)
            at = b.add(b.mul(ir_text.Constant(i64, r), ldc), ir_text.Constant(i64, s))
            old = b.select(keep, b.fmul(beta, b.load(b.gep(old_c, [at]))), ir_text.Constant(self.t, 0.0))
            b.store(b.fadd(b.fmul(alpha, total), old), b.gep(c, [at]))
        b.ret_void()
        return fn

    def dot_driver(self):
        """``dots(m, a, lda, b, ldb, c, old, n, k, alpha, beta, j_lo, j_hi)``: C's columns [j_lo,
        j_hi), `DOT_COLS` rows of B at a time against every block of rows of A (those rows of
        B stay in the L1 cache), then the columns left one at a time."""
        fn, b = self.function("dots", [i64, self.tp, i64, self.tp, i64, self.tp, self.tp, i64,
                                       i64, self.t, self.t, i64, i64])
        m, a, lda, bb, ldb, c, old_c, n, k, alpha, beta, j_lo, j_hi = fn.args
        width = ir_text.Constant(i64, DOT_COLS)
        grouped_end = b.add(j_lo, b.mul(b.sdiv(b.sub(j_hi, j_lo), width), width))

        def columns(cols):
            tiles = {rows: self.dot_tile(rows, cols) for rows in DOT_TILES}

            def group(b, j, _):
                def block(b, i, _):
                    def call(b, rows, at):
                        row = b.add(i, at)
                        ij = b.add(b.mul(row, n), j)
                        b.call(tiles[rows], [b.gep(a, [b.mul(row, lda)]), lda,
                                             b.gep(bb, [b.mul(j, ldb)]), ldb, b.gep(c, [ij]),
                                             b.gep(old_c, [ij]), n, k, alpha, beta])
                    self.by_height(b, self.at_most(b, b.sub(m, i), DOT_TILES[0]), DOT_TILES,
                                   call)
                    return []
                self.loop(b, ir_text.Constant(i64, 0), m, ir_text.Constant(i64, DOT_TILES[0]), [],
                          block, "i")
                return []
            return group
        self.loop(b, j_lo, grouped_end, width, [], columns(DOT_COLS), "j")
        self.loop(b, grouped_end, j_hi, ir_text.Constant(i64, 1), [], columns(1), "jt")
        b.ret_void()
        return fn

    # -- the exported functions --------------------------------------------------------------

    def rows_entry(self, name):
        """`NAMES`' function: the products whose B has contiguous rows, and those whose B is
        transposed: with few terms B^T is copied out and multiplied by rows; otherwise the dot
        products run, from the module `symbols.resolve_dots` links the first time a product
        needs it (`DOTS_SLOT` holds its address)."""
        rows = self.rows_driver()

        def work(b, m, a, sai, sap, lda, bb, ldb, c, c_in, n, k, alpha, beta, j_lo, j_hi):
            def block(b, kb, _):
                kc = b.sub(k, kb)
                kc = b.select(b.icmp_signed(">", kc, ir_text.Constant(i64, KC)),
                              ir_text.Constant(i64, KC), kc)
                first = b.icmp_signed("==", kb, ir_text.Constant(i64, 0))
                b.call(rows, [m, a, sai, sap, bb, ldb, c, b.select(first, c_in, c), n, kb, kc,
                              alpha, b.select(first, beta, ir_text.Constant(self.t, 1.0)), j_lo,
                              j_hi])
                return []
            one = ir_text.Constant(i64, 1)
            some = b.select(b.icmp_signed(">", k, ir_text.Constant(i64, 0)), k, one)
            self.loop(b, ir_text.Constant(i64, 0), some, ir_text.Constant(i64, KC), [], block, "kb")

        self._entry(name, work, ROW_TILES[0], PANEL * self.lanes, self._transposed_b)

    def dots_entry(self, name):
        """`DOT_NAMES`' function: products whose B is transposed and A is not, as dot products
        of their rows."""
        dots = self.dot_driver()

        def work(b, m, a, sai, sap, lda, bb, ldb, c, c_in, n, k, alpha, beta, j_lo, j_hi):
            b.call(dots, [m, a, lda, bb, ldb, c, c_in, n, k, alpha, beta, j_lo, j_hi])

        self._entry(name, work, DOT_TILES[0], DOT_COLS, None)

    def _transposed_b(self, b, fn, put):
        """The rows entry's products with B transposed: the dot products' module (its result
        returned), or B^T copied out (the copy to be freed returned in a stack slot). -> that
        slot; 1 is returned, declining the product, where neither can be had (no dot products
        module, no memory for the copy)."""
        ta, tb, m, n, k, alpha, a, lda, bb, ldb, beta, c, c_in = fn.args
        scratch = b.alloca(i8p)
        b.store(ir_text.Constant(i8p, None), scratch)
        transposed = b.icmp_unsigned("==", tb, ir_text.Constant(i8, _T))
        copy = copies_transposed_b(b, self.lanes, m, k)
        declined = ir_text.Constant(i32, 1)
        with b.if_then(b.and_(transposed, b.xor(copy, ir_text.Constant(ir.IntType(1), 1)))):
            linked = b.load(self.module.external_global(DOTS_SLOT[self.letter], i8p))
            before = b.block
            with b.if_then(b.icmp_unsigned("==", linked, ir_text.Constant(i8p, None))):
                resolve = self.declare(DOTS_RESOLVER, i8p, [i8])
                resolved = b.call(resolve, [ir_text.Constant(i8, ord(self.letter))])
                after = b.block
            address = b.phi(i8p)
            address.add_incoming(linked, before)
            address.add_incoming(resolved, after)
            with b.if_then(b.icmp_unsigned("==", address, ir_text.Constant(i8p, None))):
                b.ret(declined)
            b.ret(b.call(b.bitcast(address, fn.type), list(fn.args)))
        with b.if_then(transposed):
            block = b.call(self.declare("malloc", i8p, [i64]),
                           [b.mul(b.mul(k, n), ir_text.Constant(i64, self.size))])
            with b.if_then(b.icmp_unsigned("==", block, ir_text.Constant(i8p, None))):
                b.ret(declined)
            b.store(block, scratch)
            self.transpose(b, b.bitcast(bb, self.tp), ldb, n, k, b.bitcast(block, self.tp))
            put(1, ir_text.Constant(i8, _N))
            put(8, b.bitcast(block, self.tp))
            put(9, n)
        return scratch

    def _entry(self, name, work_body, height, width, prologue):
        """``i32 name(i8 trans_a, i8 trans_b, i64 m, i64 n, i64 k, T alpha, i8* a, i64 lda,
        i8* b, i64 ldb, T beta, i8* c, i8* c_in)``: 0 once C is computed, 1 where the product
        is declined (BLAS's to do). ``work_body(b, m, a, sai, sap, lda, b, ldb, c, c_in, n, k,
        alpha, beta, j_lo, j_hi)`` emits the work on C's rows [0, m) (the operands offset to
        the first) and columns [j_lo, j_hi), run on this thread for all of C, or on each thread
        of the team for its share: blocks of ``height`` rows, or of ``width`` columns.
        ``prologue(b, fn, put)``, if any, runs first and may return; it returns a stack slot
        holding memory to free at the end (or null)."""
        t, tp = self.t, self.tp
        packed_t = ir.LiteralStructType([i8, i8, i64, i64, i64, t, tp, i64, tp, i64, t, tp, tp])
        work, wb = self.function("part", [packed_t.as_pointer(), i64, i64, i64, i64])
        packed, i_lo, i_hi, j_lo, j_hi = work.args
        ta, tb, m, n, k, alpha, a, lda, bb, ldb, beta, c, c_in = (
            wb.load(wb.gep(packed, [ir_text.Constant(i32, 0), ir_text.Constant(i32, q)]))
            for q in range(13))
        plain = wb.icmp_unsigned("==", ta, ir_text.Constant(i8, _N))
        one = ir_text.Constant(i64, 1)
        sai, sap = wb.select(plain, lda, one), wb.select(plain, one, lda)
        m = wb.sub(i_hi, i_lo)             # rows [i_lo, i_hi) of C: the operands from there on
        a = wb.gep(a, [wb.mul(i_lo, sai)])
        c, c_in = (wb.gep(x, [wb.mul(i_lo, n)]) for x in (c, c_in))
        work_body(wb, m, a, sai, sap, lda, bb, ldb, c, c_in, n, k, alpha, beta, j_lo, j_hi)
        wb.ret_void()

        region, rb = self.function("region", [i8p])
        thread = rb.sext(rb.call(self.declare("lumen_omp_get_thread_num", i32, []), []), i64)
        team = rb.sext(rb.call(self.declare("lumen_omp_get_num_threads", i32, []), []), i64)
        shared = rb.bitcast(region.args[0], packed_t.as_pointer())
        field = lambda q: rb.load(rb.gep(shared, [ir_text.Constant(i32, 0), ir_text.Constant(i32, q)]))
        rows_total, cols_total = field(2), field(3)
        height, width = ir_text.Constant(i64, height), ir_text.Constant(i64, width)

        def units(total, unit):
            return rb.sdiv(rb.add(total, rb.sub(unit, ir_text.Constant(i64, 1))), unit)

        def share(total, unit):
            """This thread's block of [0, total), in whole units."""
            lo = rb.mul(rb.sdiv(rb.mul(units(total, unit), thread), team), unit)
            hi = rb.mul(rb.sdiv(rb.mul(units(total, unit), rb.add(thread, ir_text.Constant(i64, 1))),
                                team), unit)
            return lo, rb.select(rb.icmp_signed(">", hi, total), total, hi)
        zero = ir_text.Constant(i64, 0)
        # each thread reads all of B when the rows are shared out, all of A when the columns
        # are: the columns, where C is wider than tall and has a panel for every thread
        wide = rb.and_(rb.icmp_signed(">", cols_total, rows_total),
                       rb.icmp_signed(">=", units(cols_total, width), team))
        by_rows = rb.and_(rb.icmp_signed(">=", units(rows_total, height), team),
                          rb.xor(wide, ir_text.Constant(ir.IntType(1), 1)))
        row_lo, row_hi = share(rows_total, height)
        col_lo, col_hi = share(cols_total, width)
        lo, hi = rb.select(by_rows, row_lo, col_lo), rb.select(by_rows, row_hi, col_hi)
        bounds = [rb.select(by_rows, row_lo, zero), rb.select(by_rows, row_hi, rows_total),
                  rb.select(by_rows, zero, col_lo), rb.select(by_rows, cols_total, col_hi)]
        with rb.if_then(rb.icmp_signed("<", lo, hi)):
            rb.call(work, [shared, *bounds])
        rb.ret_void()

        fn = ir_text.Function(self.module, ENTRY_TYPE[self.letter], name)
        ta, tb, m, n, k, alpha, a, lda, bb, ldb, beta, c, c_in = fn.args
        b = ir_text.IRBuilder(fn.append_basic_block("entry"))
        slot = b.alloca(packed_t)

        def put(q, v):
            b.store(v, b.gep(slot, [ir_text.Constant(i32, 0), ir_text.Constant(i32, q)]))
        for q, v in enumerate([ta, tb, m, n, k, alpha, b.bitcast(a, tp), lda, b.bitcast(bb, tp),
                               ldb, beta, b.bitcast(c, tp), b.bitcast(c_in, tp)]):
            put(q, v)
        scratch = prologue(b, fn, put) if prologue else None
        threads = b.load(self.module.external_global("lumen_num_threads", i32))
        large = b.or_(b.icmp_signed(">=", b.mul(b.mul(m, n), k), ir_text.Constant(i64, PARALLEL_WORK)),
                      b.icmp_signed(">=", b.mul(n, k), ir_text.Constant(i64, PARALLEL_B)))
        fork = b.and_(large,
                      b.icmp_signed(">", threads, ir_text.Constant(i32, 1)))
        run = self.declare("lumen_GOMP_parallel", ir.VoidType(), [region.type, i8p, i32, i32])
        with b.if_else(fork) as (on_team, alone):
            with on_team:
                b.call(run, [region, b.bitcast(slot, i8p), threads, ir_text.Constant(i32, 0)])
            with alone:
                b.call(work, [slot, ir_text.Constant(i64, 0), m, ir_text.Constant(i64, 0), n])
        if scratch is not None:
            b.call(self.declare("free", ir.VoidType(), [i8p]), [b.load(scratch)])
        b.ret(ir_text.Constant(i32, 0))

    def transpose(self, b, src, ld, rows, cols, dst):
        """dst (cols x rows, contiguous) = the transpose of src (rows x cols, rows ld apart)."""
        def row(b, j, _):
            def element(b, p, _):
                value = b.load(b.gep(src, [b.add(b.mul(j, ld), p)]))
                b.store(value, b.gep(dst, [b.add(b.mul(p, rows), j)]))
                return []
            self.loop(b, ir_text.Constant(i64, 0), cols, ir_text.Constant(i64, 1), [], element, "tp")
            return []
        self.loop(b, ir_text.Constant(i64, 0), rows, ir_text.Constant(i64, 1), [], row, "tj")


def module_ir(letter: str, features: str) -> str:
    """The module of one dtype's kernels (``letter``: BLAS's prefix, "s" or "d") for a host
    with these CPU features, but for the dot products: `NAMES`[letter]."""
    module = ir_text.Module(f"lumen_small_{letter}gemm")
    _Emitter(module, letter, vector_bytes(features)).rows_entry(NAMES[letter])
    return str(module)


def dots_module_ir(letter: str, features: str) -> str:
    """The module of one dtype's dot products: `DOT_NAMES`[letter]."""
    module = ir_text.Module(f"lumen_small_{letter}dots")
    _Emitter(module, letter, vector_bytes(features)).dots_entry(DOT_NAMES[letter])
    return str(module)
