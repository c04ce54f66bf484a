"""lumen's own matrix products (codegen_llvm/small_gemm.py): the kernels against NumPy in
float64, every layout, edge and blocking path; which products take them rather than BLAS; the
products of compiled functions that use them; threads."""
import ctypes
import functools
import itertools
import os
import subprocess
import sys

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lumen
from lumen.codegen_llvm import product_plan, small_gemm, symbols, target
from lumen.codegen_llvm.lower.linalg import small_products_choice
from lumen.codegen_llvm.llvmtypes import i1, i8, i64

from .oracle import assert_same

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = (np.float32, np.float64)
LETTER = {np.float32: "s", np.float64: "d"}


@pytest.fixture(scope="module")
def kernels():
    target.link_runtime()
    symbols.link_small_products(letters="sd")
    out = {}
    for dtype, letter in LETTER.items():
        out[dtype] = signature(dtype)(llvm.address_of_symbol(small_gemm.NAMES[letter]))
    return out


def signature(dtype):
    """The ctypes prototype of `small_gemm.NAMES`' and `small_gemm.DOT_NAMES`' functions."""
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    p, n = ctypes.c_void_p, ctypes.c_int64
    return ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int8, ctypes.c_int8, n, n, n, scalar, p, n,
                            p, n, scalar, p, p)


def operand(rng, rows, cols, dtype, transposed):
    """A rows x cols matrix, stored row-major or (``transposed``) as the transpose of a
    row-major one, with its BLAS description (trans flag, buffer, leading dimension)."""
    if transposed:
        buffer = rng.standard_normal((cols, rows)).astype(dtype)
        return buffer.T, ord("T"), buffer, max(rows, 1)
    buffer = rng.standard_normal((rows, cols)).astype(dtype)
    return buffer, ord("N"), buffer, max(cols, 1)


def run(kernel, a, b, alpha, beta, c_in, garbage=np.nan):
    """kernel's C = alpha * a @ b + beta * c_in (c_in None: C itself, filled with garbage).
    C is followed by a vector's worth of guard elements, which must stay untouched."""
    (av, ta, abuf, lda), (bv, tb, bbuf, ldb) = a, b
    m, n, k = av.shape[0], bv.shape[1], av.shape[1]
    buffer = np.full(m * n + GUARD, garbage, dtype=abuf.dtype)
    buffer[m * n:] = -7.0
    c = buffer[:m * n].reshape(m, n)
    source = c if c_in is None else c_in
    declined = kernel(ta, tb, m, n, k, alpha, abuf.ctypes.data, lda, bbuf.ctypes.data, ldb, beta,
                      c.ctypes.data, source.ctypes.data)
    assert declined == 0
    assert (buffer[m * n:] == -7.0).all(), "written past the end of C"
    return c


def reference(a, b, alpha, beta, c_in):
    out = alpha * (a[0].astype(np.float64) @ b[0].astype(np.float64))
    return out if c_in is None or beta == 0 else out + beta * c_in


def close(got, want, dtype, k):
    tol = (2e-6 if dtype == np.float32 else 1e-14) * max(k, 1) ** 0.5 * 8
    scale = max(np.abs(want).max(initial=0.0), 1.0)
    assert np.abs(got - want).max(initial=0.0) <= tol * scale, np.abs(got - want).max()


LAYOUTS = [("N", "N"), ("T", "N"), ("N", "T")]
GUARD = 64
SHAPES = [
    (1, 1, 1), (1, 7, 5), (3, 3, 3),                 # tiny, single rows, a column of C
    (60, 1000, 784), (60, 1000, 1000),               # few rows: a batch through a layer
    (10, 97, 300), (7, 13, 1100),                    # ragged panels, term blocks of KC
    (60, 500, 784), (13, 52, 40),                    # ... ending more than a vector wide
    (1000, 130, 60), (200, 800, 25),                 # few terms: the weight update
    (60, 10, 500), (25, 9, 130),                     # narrow C: the output layer
    (60, 200, 10), (40, 33, 3),                      # B transposed with few terms
    (1, 800, 200), (1, 200, 800), (1, 33, 17),       # one row: h @ W_h, d @ W_h.T
    (64, 64, 64), (65, 70, 80),                      # where the choice changes
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS, ids="".join)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_kernels_match_numpy(kernels, dtype, layout, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a = operand(rng, m, k, dtype, layout[0] == "T")
    b = operand(rng, k, n, dtype, layout[1] == "T")
    c_in = rng.standard_normal((m, n)).astype(dtype)
    for alpha, beta, source in ((1.0, 0.0, None), (-0.01, 1.0, c_in), (2.0, 0.5, None)):
        start = None if source is None else source.copy()
        got = run(kernels[dtype], a, b, alpha, beta, source, garbage=0.25)
        want = reference(a, b, alpha, beta, 0.25 * np.ones((m, n)) if source is None else start)
        close(got, want, dtype, k)
        if source is not None:
            np.testing.assert_array_equal(source, start)        # c_in is only read


@pytest.mark.parametrize("features", ["+sse2", "+avx,+avx2,+fma"], ids=["16-byte", "32-byte"])
def test_kernels_for_narrower_vectors(kernels, features):
    """The kernels another host gets (SSE's 16-byte vectors, AVX2's 32), built and run here:
    the module's text parses, and every path matches NumPy."""
    loaded = []
    for dtype, letter in LETTER.items():
        kernels = []
        for names, module_ir in ((small_gemm.NAMES, small_gemm.module_ir),
                                 (small_gemm.DOT_NAMES, small_gemm.dots_module_ir)):
            objects = target.compile_objects(module_ir(letter, features), passes=False)
            loaded.append(target.LoadedModule(objects, runtime=True))
            kernels.append(signature(dtype)(loaded[-1].address(names[letter])))
        rows, dots = kernels
        for m, n_, k in ((60, 1000, 784), (10, 97, 300), (7, 13, 1100), (60, 10, 500),
                         (60, 200, 10), (65, 70, 80), (3, 3, 3)):
            for layout in LAYOUTS:
                rng = np.random.default_rng(m + n_ + k)
                a = operand(rng, m, k, dtype, layout[0] == "T")
                b = operand(rng, k, n_, dtype, layout[1] == "T")
                c_in = rng.standard_normal((m, n_)).astype(dtype)
                want = reference(a, b, -0.5, 1.0, c_in)
                close(run(rows, a, b, -0.5, 1.0, c_in), want, dtype, k)
                if layout == ("N", "T"):        # the rows module's may be a copy of B^T
                    close(run(dots, a, b, -0.5, 1.0, c_in), want, dtype, k)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 80), n=st.integers(1, 150), k=st.integers(1, 600),
       layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(DTYPES),
       beta=st.sampled_from([0.0, 1.0, -0.5]))
def test_kernels_match_numpy_at_any_size(kernels, m, n, k, layout, dtype, beta):
    rng = np.random.default_rng(m + 1000 * n + 10 ** 6 * k)
    a = operand(rng, m, k, dtype, layout[0] == "T")
    b = operand(rng, k, n, dtype, layout[1] == "T")
    c_in = rng.standard_normal((m, n)).astype(dtype)
    close(run(kernels[dtype], a, b, 0.75, beta, c_in), reference(a, b, 0.75, beta, c_in),
          dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_never_reads_c(kernels, dtype):
    """C may hold anything where beta is 0 (a fresh result): NaN there must not leak in."""
    rng = np.random.default_rng(0)
    for m, n, k, layout in ((60, 100, 300, "NN"), (5, 40, 200, "NT"), (1, 50, 20, "NN")):
        a = operand(rng, m, k, dtype, False)
        b = operand(rng, k, n, dtype, layout[1] == "T")
        got = run(kernels[dtype], a, b, 1.0, 0.0, None, garbage=np.nan)
        assert np.isfinite(got).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_terms_scale_c(kernels, dtype):
    a = operand(np.random.default_rng(1), 4, 0, dtype, False)
    b = operand(np.random.default_rng(2), 0, 5, dtype, False)
    c_in = np.arange(20, dtype=dtype).reshape(4, 5)
    np.testing.assert_array_equal(run(kernels[dtype], a, b, 1.0, 2.0, c_in), 2 * c_in)
    np.testing.assert_array_equal(run(kernels[dtype], a, b, 1.0, 0.0, None), np.zeros((4, 5)))


def test_threads_split_the_work_but_not_the_numbers(kernels):
    """Each element is summed in the same order whether the rows or the columns are shared
    out between threads, so the results are the same to the bit."""
    rng = np.random.default_rng(3)
    previous = symbols.set_num_threads(1)
    try:
        for m, n, k, layout in ((60, 1000, 700, "NN"), (2, 3000, 400, "NN"),
                                (60, 900, 500, "NT"), (1000, 700, 60, "TN")):
            a = operand(rng, m, k, np.float32, layout[0] == "T")
            b = operand(rng, k, n, np.float32, layout[1] == "T")
            symbols.set_num_threads(1)
            one = run(kernels[np.float32], a, b, 1.0, 0.0, None)
            symbols.set_num_threads(3)
            np.testing.assert_array_equal(run(kernels[np.float32], a, b, 1.0, 0.0, None), one)
    finally:
        symbols.set_num_threads(previous)


# -- which products take the kernels -----------------------------------------------------------

@pytest.fixture(scope="module")
def choice():
    """small_products_choice compiled on its own: choice(letter)(ta, tb, m, n, k) -> bool."""
    module = ir.Module("choice")
    for letter in "sd":
        fn = ir.Function(module, ir.FunctionType(i8, [i8, i8, i64, i64, i64]), f"choice_{letter}")
        b = ir.IRBuilder(fn.append_basic_block())
        taken = small_products_choice(b, letter, target.host_features(), *fn.args)
        b.ret(b.zext(taken, i8) if taken.type == i1 else taken)
    loaded = target.LoadedModule(target.compile_objects(str(module)))
    signature = ctypes.CFUNCTYPE(ctypes.c_int8, ctypes.c_int8, ctypes.c_int8, ctypes.c_int64,
                                 ctypes.c_int64, ctypes.c_int64)
    functions = {letter: signature(loaded.address(f"choice_{letter}")) for letter in "sd"}
    functions["module"] = loaded
    return lambda letter: (lambda ta, tb, m, n, k: bool(functions[letter](ord(ta), ord(tb), m,
                                                                            n, k)))


@pytest.mark.parametrize("letter", ["s", "d"])
def test_which_products_take_the_kernels(choice, letter):
    taken = choice(letter)
    lanes = small_gemm.lanes(letter, target.host_features())
    few = small_gemm.FEW
    assert taken("N", "N", few, 1000, 1000)          # a batch through a layer
    assert not taken("N", "N", few + 1, 1000, 1000)  # ... a larger one: BLAS packs and wins
    assert taken("T", "N", 1000, 1000, few)          # the weight update
    assert not taken("T", "N", 1000, 1000, few + 1)
    aliased = small_gemm.ALIASED_ROW // small_gemm.item_bytes(letter)
    assert not taken("T", "N", 2 * aliased, 2 * aliased, 60)   # rows in the same L1 sets
    assert not taken("T", "N", 1000, aliased, 60)
    assert taken("T", "N", 1000, aliased + 8, 60)
    assert taken("N", "N", 60, 2 * aliased, 2 * aliased)       # few rows: these kernels still
    assert taken("N", "T", few, 1000, 1000)          # back through a layer
    assert taken("N", "T", few, 1000, 10)            # ... the output layer (a copy of B^T)
    assert not taken("N", "N", 1, 80, 200)           # one row, tiny or not: BLAS's ?gemv
    assert not taken("N", "N", 1, 800, 200)
    assert taken("T", "N", 4, 4, 4) and not taken("N", "N", 3, 1, 2)    # tiny, not a column
    assert not taken("T", "T", 4, 4, 4)              # both transposed: BLAS, at any size
    assert not taken("T", "T", 60, 1000, 1000)
    assert not taken("N", "N", 500, 500, 500)        # square products: BLAS packs and wins
    assert not taken("N", "T", 500, 500, 500)
    assert not taken("N", "N", 60, 1, 1000)          # a column of C: BLAS's ?gemv
    assert not taken("N", "N", 3, 4, 0)              # no terms
    long_k = small_gemm.DOT_MIN_VECTORS * lanes
    assert taken("N", "T", few, 500, long_k) and not taken("N", "T", few + 1, 500, long_k)
    short_k = min(few, long_k - 1)                  # B^T copied: few terms, any rows
    assert taken("N", "T", few + 1, 500, short_k)
    assert not taken("N", "T", few + 1, 500, max(long_k, few + 1))


def test_the_plan_evaluates_the_compiled_choice(choice):
    """`product_plan` runs `small_products_choice`'s IR on Python numbers: it decides as the
    compiled function does, at every layout and across the sizes where the decision turns."""
    evaluator = product_plan._Evaluator()
    features = target.host_features()
    sizes = (1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 129, 1000)
    for letter in "sd":
        taken = choice(letter)
        for ta, tb in (("N", "N"), ("T", "N"), ("N", "T"), ("T", "T")):
            for m, n, k in itertools.product(sizes, (1, 2, 10, 500, 512, 1024), sizes):
                planned = small_products_choice(evaluator, letter, features, ord(ta), ord(tb),
                                                m, n, k)
                assert bool(planned) == taken(ta, tb, m, n, k), (letter, ta, tb, m, n, k)


def test_which_products_take_the_dot_products():
    features = target.host_features()
    long_k = small_gemm.DOT_MIN_VECTORS * small_gemm.lanes("s", features)
    few = small_gemm.FEW
    takes = functools.partial(product_plan.takes_dots, "s", features)
    assert takes("N", "T", few, 1000, 1000)              # d @ W.T
    assert not takes("N", "T", few + 1, 1000, 1000)
    assert not takes("N", "T", few, 500, 10)             # B^T copied
    assert takes("N", "T", 3, 500, 10)                   # too few rows for the copy
    assert not takes("N", "N", few, 1000, 1000)
    assert not takes("T", "T", few, 1000, 1000)
    assert not takes("N", "T", 1, 1000, long_k)          # ?gemv
    assert not takes("N", "T", 500, 500, 500)            # BLAS


def graph_plan(graph):
    """(the dtypes of a graph's products, those whose dot products one takes)."""
    return (product_plan.product_letters(graph),
            product_plan.dots_letters(graph, target.host_features()))


def test_the_plan_reads_a_graphs_products():
    """The dtypes of a traced graph's products, its loops' bodies included, and which take
    the dot products at the traced sizes; a transposed operand is a transpose's result."""
    def plan(fn, *args):
        return graph_plan(lumen.jit(fn).lower(*args).graph)
    f32, f64 = np.ones((10, 1000), np.float32), np.ones((300, 1000), np.float64)
    assert plan(lambda d, w: d @ w.T, f32, f32[:3].copy()) == ({"s"}, {"s"})
    assert plan(lambda d, w: d @ w.T, f32[:, :10].copy(), f32[:3, :10].copy()) == ({"s"}, set())
    assert plan(lambda x, w: x @ w, f64[:10], f64.T.copy()) == ({"d"}, set())
    assert plan(lambda x, y: x + y, f32, f32) == (set(), set())
    xs, w = np.ones((4, 10, 1000), np.float32), np.ones((300, 1000), np.float32)

    def rnn(xs, w):
        def step(h, x):
            return np.tanh(x @ w.T), h.sum()
        return lumen.scan(step, np.zeros((10, 300), np.float32), xs)
    assert plan(rnn, xs, w) == ({"s"}, {"s"})


def test_the_plan_of_the_optimised_graph_leaves_out_unused_gradients():
    """The gradient of a training step with respect to its input, ``d @ W1.T`` (500 terms:
    the dot products), is traced but never used: the optimised graph the plan reads for the
    dot products no longer holds it; the output layer's ``d @ W2.T`` (10 terms) copies B^T."""
    def loss(params, x, y):
        w1, w2 = params
        return lumen.nn.crossentropy(np.tanh(x @ w1) @ w2, y)

    def step(w1, w2, x, y):
        return lumen.grad(loss)((w1, w2), x, y)
    rng = np.random.default_rng(0)
    batch = 60
    args = (rng.standard_normal((784, 500)).astype(np.float32),
            rng.standard_normal((500, 10)).astype(np.float32),
            rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, batch))
    lowered = lumen.jit(step).lower(*args)
    assert graph_plan(lowered.graph) == ({"s"}, {"s"})
    assert graph_plan(lowered.optimized_graph()) == ({"s"}, set())


# -- compiled functions -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_a_training_step_updates_without_touching_its_inputs(dtype):
    """``W - lr * x.T @ d`` reads W where it lies (no copy into the result first), and
    leaves W as it was; a transposed W takes the copy."""
    rng = np.random.default_rng(4)
    step = lumen.jit(lambda w, x, d: w - 0.01 * (x.T @ d))
    for m, n, k in ((784, 500, 60), (30, 40, 5), (3, 70, 1)):
        w = rng.standard_normal((m, n)).astype(dtype)
        x, d = rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        kept = w.copy()
        want = w - dtype(0.01) * (x.T @ d)
        assert_same(step(w, x, d), want, exact=False)
        np.testing.assert_array_equal(w, kept)
        assert_same(step(np.asfortranarray(w), x, d), want, exact=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_layers_forward_and_backward(dtype):
    rng = np.random.default_rng(5)
    forward = lumen.jit(lambda x, w, b: np.tanh(x @ w + b))
    backward = lumen.jit(lambda d, w: d @ w.T)
    batched = lumen.jit(lambda xs, w: xs @ w)
    for batch, n_in, n_out in ((1, 784, 500), (10, 784, 1000), (60, 500, 10), (7, 3, 2)):
        x = rng.standard_normal((batch, n_in)).astype(dtype)
        w = rng.standard_normal((n_in, n_out)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        d = rng.standard_normal((batch, n_out)).astype(dtype)
        assert_same(forward(x, w, b), np.tanh(x @ w + b), exact=False, rtol=1e-4)
        assert_same(backward(d, w), d @ w.T, exact=False, rtol=1e-4)
        xs = rng.standard_normal((3, batch, n_in)).astype(dtype)
        assert_same(batched(xs, w), xs @ w, exact=False, rtol=1e-4)


LAZY_DOTS_SCRIPT = """
import sys, warnings
import numpy as np
import lumen
from lumen.codegen_llvm import small_gemm, symbols
if sys.argv[1] == "broken":
    def broken(letter, features):
        raise RuntimeError("no dot products here")
    small_gemm.dots_module_ir = broken
rng = np.random.default_rng(0)
f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
linked = lambda: bool(symbols._dots_addresses["s"].value)
forward = lumen.jit(lambda x, w: x @ w)
backward = lumen.jit(lambda d, w: d @ w.T)
x, w = f32(60, 784), f32(784, 500)
steps = [np.allclose(forward(x, w), x @ w, rtol=1e-4, atol=1e-3), linked()]
d, w_out = f32(60, 10), f32(500, 10)            # few terms: B^T is copied
steps += [np.allclose(backward(d, w_out), d @ w_out.T, rtol=1e-4, atol=1e-4), linked()]
d, w = f32(10, 1000), f32(300, 1000)            # many: the dot products
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    steps += [np.allclose(backward(d, w), d @ w.T, rtol=1e-4, atol=1e-3), linked()]
    steps += [np.allclose(backward(d, w), d @ w.T, rtol=1e-4, atol=1e-3)]
print(steps, [str(w.message) for w in caught])
"""


@pytest.mark.parametrize("mode", ["ok", "broken"])
def test_dot_products_are_linked_when_a_product_first_takes_them(tmp_path, mode):
    """In a fresh process: products whose B has contiguous rows, or is transposed with few
    terms (copied), leave the dot products' module unlinked; the first product that takes them
    links it, in the middle of the call, and gets NumPy's numbers. Where it cannot be compiled,
    one warning says so and BLAS computes those products, as right."""
    script = tmp_path / "script.py"
    script.write_text(LAZY_DOTS_SCRIPT)
    run = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, LUMEN_CACHE="0", PYTHONPATH=ROOT))
    steps, messages = run.stdout.strip().split("] [")
    assert steps == ("[True, False, True, False, True, True, True" if mode == "ok" else
                     "[True, False, True, False, True, False, True"), run.stderr
    if mode == "ok":
        assert messages == "]", messages
    else:
        assert messages.count("could not be compiled") == 1 and "no dot products here" in messages
        assert "BLAS runs those products" in messages


def test_vector_width_follows_the_host():
    assert small_gemm.vector_bytes("+sse2,+avx,+avx2,+avx512f,-amx-tile") == 64
    assert small_gemm.vector_bytes("+sse2,+avx,+avx2,-avx512f") == 32
    assert small_gemm.vector_bytes("+sse2,-avx") == 16
    assert small_gemm.lanes("s", "+avx512f") == 16 and small_gemm.lanes("d", "+avx") == 4
