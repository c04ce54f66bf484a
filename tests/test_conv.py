"""lumen.nn.conv2d and lumen.nn.max_pool2d: values against direct NumPy loop nests (eager and
jitted, float32 and float64), derivatives against finite differences (both modes, second
order), the tie convention of max-pool gradients, the compiled structure (BLAS products),
recompilation, the GPU backend (ptxas, emulator) and error messages."""
import numpy as np
import pytest

import lumen
from lumen.nn import conv2d, max_pool2d

from .test_ptx import ARCHS, assemble, emulated_gpu  # noqa: F401  (a fixture)

THIS_FILE = "test_conv.py"
RNG = np.random.default_rng(9)


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def conv_reference(x, w, b=None, stride=1, padding=0, dilation=1):
    """out[n, o, i, j] = b[o] + sum_{c,p,q} xpad[n, c, s*i + d*p, s*j + d*q] * w[o, c, p, q],
    one output position and tap at a time, in float64."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for p in range(kh):
                for q in range(kw):
                    out[:, :, i, j] += xp[:, :, i * sh + p * dh, j * sw + q * dw] @ w[:, :, p, q].T
    return out if b is None else out + b[None, :, None, None]


def pool_reference(x, kernel_size, stride=None, padding=0):
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(kernel_size if stride is None else stride)
    n, c, h, wd = x.shape
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), low, x.dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.empty((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return out


# (N, C, O, H, W, kh, kw), stride, padding, dilation, bias
CONV_CASES = [
    ((2, 3, 4, 7, 9, 3, 2), 1, 0, 1, True),
    ((1, 2, 3, 8, 8, 3, 3), 2, 1, 1, False),
    ((3, 1, 2, 9, 7, 2, 3), (2, 1), (1, 2), (2, 1), True),
    ((2, 2, 3, 5, 6, 1, 1), 1, 0, 1, True),
    ((2, 2, 2, 6, 6, 3, 3), 1, 2, 2, False),
]
CONV_IDS = ["valid-rect", "stride2-pad1-N1", "pairs-dilated", "1x1", "dilation2-same"]


def _conv_args(case, dtype):
    (n, c, o, h, wd, kh, kw), _, _, _, bias = case
    x = RNG.standard_normal((n, c, h, wd)).astype(dtype)
    w = RNG.standard_normal((o, c, kh, kw)).astype(dtype)
    b = RNG.standard_normal(o).astype(dtype) if bias else None
    return x, w, b


TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_matches_loop_nest(case, dtype):
    x, w, b = _conv_args(case, dtype)
    _, stride, padding, dilation, _ = case
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64),
                              None if b is None else b.astype(np.float64), stride, padding, dilation)
    f = lumen.jit(conv2d, static_argnames=("stride", "padding", "dilation"))
    for got in (conv2d(x, w, b, stride, padding, dilation),
                f(x, w, b, stride=stride, padding=padding, dilation=dilation)):
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **TOL[dtype])


# kernel_size, stride, padding
POOL_CASES = [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0)), (3, 1, 0)]
POOL_IDS = ["2x2", "3x3-stride2-pad1", "rect", "3x3-overlapping"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_max_pool2d_matches_loop_nest(case, dtype):
    x = (RNG.standard_normal((2, 3, 7, 8)) * 10).astype(dtype)
    expected = pool_reference(x, *case)
    f = lumen.jit(max_pool2d, static_argnums=(1, 2, 3))
    for got in (max_pool2d(x, *case), f(x, *case)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


def test_max_pool2d_propagates_nan():
    x = RNG.standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 2] = np.nan
    got = lumen.jit(lambda x: max_pool2d(x, 2))(x)
    np.testing.assert_array_equal(got, pool_reference(x, 2))
    assert np.isnan(got[0, 0, 0, 1]) and np.isnan(got).sum() == 1


# -- derivatives ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2]], ids=CONV_IDS[1:3])
def test_conv2d_gradients(case):
    """x, w and (where present) b, in forward and reverse mode."""
    (n, c, o, h, wd, kh, kw), stride, padding, dilation, bias = case
    x = RNG.standard_normal((n, c, h - 2, wd - 2))
    w = RNG.standard_normal((o, c, kh, kw))
    bs = (RNG.standard_normal(o),) if bias else ()
    lumen.check_grad(lambda x, w, *b: np.tanh(conv2d(x, w, *b, stride=stride, padding=padding,
                                                     dilation=dilation)), (x, w, *bs))


def test_conv2d_second_order():
    """The derivative of the weight gradient (Hessian-vector products through conv2d)."""
    x = RNG.standard_normal((2, 2, 5, 4))
    w = RNG.standard_normal((3, 2, 2, 2))

    def weight_grad(x, w):
        return lumen.grad(lambda w: np.sum(np.sin(conv2d(x, w, padding=1))), argnums=0)(w)
    lumen.check_grad(weight_grad, (x, w))


@pytest.mark.parametrize("case", POOL_CASES[:3], ids=POOL_IDS[:3])
def test_max_pool2d_gradient_without_ties(case):
    x = RNG.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7) / 7.0
    lumen.check_grad(lambda x: np.sin(max_pool2d(x, *case)), (x,))


def test_max_pool2d_gradient_goes_to_the_first_maximum():
    """Ties: each window's whole cotangent goes to its first maximal element in row-major
    order (as PyTorch's and JAX's max pools send it to one element); an element that is the
    first maximum of several overlapping windows gets the sum of theirs."""
    x = np.array([[[[1., 5., 5., 0.],
                    [5., 2., 5., 5.],
                    [0., 0., 3., 3.],
                    [3., 3., 3., 0.]]]])
    g = RNG.standard_normal((1, 1, 3, 3))
    expected = np.zeros_like(x)
    for i in range(3):                                   # 2x2 windows, stride 1
        for j in range(3):
            p, q = np.unravel_index(np.argmax(x[0, 0, i:i + 2, j:j + 2]), (2, 2))
            expected[0, 0, i + p, j + q] += g[0, 0, i, j]
    vjp = lumen.jit(lambda x, g: lumen.lop(lambda x: max_pool2d(x, 2, 1), (x,), g)[0])
    np.testing.assert_allclose(vjp(x, g), expected, rtol=1e-15)
    assert expected[0, 0, 0, 1] == g[0, 0, 0, 0] + g[0, 0, 0, 1]      # 5 first in two windows
    assert expected[0, 0, 1, 3] == expected[0, 0, 3, 1] == expected[0, 0, 3, 2] == 0  # never first


# -- compiled form ------------------------------------------------------------------------------

def _conv_loss(x, w, b):
    return np.sum(np.tanh(conv2d(x, w, b, padding=1)))


def test_conv2d_compiles_to_one_blas_product_per_pass():
    """im2col: the forward pass, the weight gradient and the input gradient are each one
    matrix product (BLAS ?gemm), not a loop over taps or batch elements."""
    x = RNG.standard_normal((4, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(5).astype(np.float32)

    def products(fn):
        graph = lumen.jit(fn).lower(x, w, b).optimized_graph()
        return [n for n in graph.nodes if n.op in ("matmul", "gemm")]
    (fwd,) = products(lambda x, w, b: conv2d(x, w, b, padding=1))
    assert fwd.inputs[0].ndim == fwd.inputs[1].ndim == 2          # one (O, C*9) @ (C*9, N*H*W)
    both = products(lumen.value_and_grad(_conv_loss, argnums=(0, 1, 2)))
    assert len(both) == 3 and all(p.inputs[0].ndim == p.inputs[1].ndim == 2 for p in both)
    assert "lumen_sgemm" in lumen.jit(lambda x, w, b: conv2d(x, w, b)).lower(x, w, b).llvm_ir()


def test_new_batch_and_image_sizes_do_not_recompile():
    """conv2d is generic in every size but the kernel's; max_pool2d specialises on the image
    size (its windows' bounds are compiled in), not on the batch."""
    w = RNG.standard_normal((2, 3, 3, 3))
    conv = lumen.jit(lambda x, w: conv2d(x, w, stride=2, padding=1))
    pool = lumen.jit(lambda x: max_pool2d(x, 2))
    for n, h in ((2, 6), (5, 6), (3, 9)):
        x = RNG.standard_normal((n, 3, h, h + 1))
        np.testing.assert_allclose(conv(x, w), conv_reference(x, w, None, 2, 1), rtol=1e-12)
        np.testing.assert_array_equal(pool(x), pool_reference(x, 2))
    assert conv.cache_info()["compiles"] == 1
    assert pool.cache_info()["compiles"] == 2                          # 6x7, then 9x10


# -- GPU backend ----------------------------------------------------------------------------------

def _gpu_step(x, w, b):
    value, grads = lumen.value_and_grad(
        lambda w, b: np.sum(max_pool2d(np.tanh(conv2d(x, w, b, padding=1)), 2) ** 2),
        argnums=(0, 1))(w, b)
    return value, grads


def _gpu_args():
    rng = np.random.default_rng(2)
    return (rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3)),
            rng.standard_normal(3))


@pytest.mark.parametrize("arch", ARCHS)
def test_conv_training_step_ptx_assembles(arch):
    assemble(lumen.jit(_gpu_step, device="gpu").lower(*_gpu_args()).ptx(), arch)


def test_conv_training_step_on_the_emulated_gpu_matches_cpu(emulated_gpu):  # noqa: F811
    args = _gpu_args()
    expected = lumen.jit(_gpu_step)(*args)
    got = lumen.jit(_gpu_step, device="gpu")(*args)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    for g, e in zip(got[1], expected[1]):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


# -- errors -----------------------------------------------------------------------------------------

X, W = np.ones((2, 3, 6, 6)), np.ones((4, 3, 3, 3))
CONV_ERRORS = [
    ((np.ones((2, 2, 6, 6)), W), {}, r"conv2d: x has 2 channels \(x.shape\[1\]\) but w expects 3"),
    ((np.ones((3, 6, 6)), W), {}, r"conv2d: x must have 4 dimensions \(N, C, H, W\); got shape \(3, 6, 6\)"),
    ((X, np.ones((4, 3, 3))), {}, r"conv2d: w must have 4 dimensions"),
    ((X, W, np.ones(3)), {}, r"conv2d: b has 3 elements but w has 4 output channels"),
    ((X, W), {"stride": 0}, r"conv2d: stride must be >= 1; got 0"),
    ((X, W), {"padding": -1}, r"conv2d: padding must be >= 0"),
    ((X, W), {"dilation": (1, 2, 3)}, r"conv2d: dilation must be an int or a pair of ints"),
    ((X, W), {"stride": 1.5}, r"conv2d: stride must be an int or a pair of ints; got 1.5"),
    ((X, np.ones((4, 3, 7, 3))), {}, r"conv2d: the input height 6 \(padded: 6\) is smaller than "
                                     r"the kernel's extent 7"),
    ((X, W), {"dilation": 3}, r"conv2d: the input height 6 .* extent 7"),
]


@pytest.mark.parametrize("args,kwargs,message", CONV_ERRORS)
def test_conv2d_errors_name_the_problem_and_the_line(args, kwargs, message):
    with pytest.raises(ValueError, match=rf"{message}.*\(at {THIS_FILE}:\d+\)"):
        conv2d(*args, **kwargs)
    with pytest.raises(ValueError, match=rf"{message}.*\(at {THIS_FILE}:\d+\)"):
        lumen.jit(lambda *a: conv2d(*a, **kwargs))(*args)


POOL_ERRORS = [
    ((np.ones((3, 6, 6)), 2), {}, r"max_pool2d: x must have 4 dimensions"),
    ((X, 0), {}, r"max_pool2d: kernel_size must be >= 1"),
    ((X, 2), {"padding": 2}, r"max_pool2d: padding \(2, 2\) must be at most half the kernel size"),
    ((X, 2), {"stride": (1, 0)}, r"max_pool2d: stride must be >= 1"),
    ((X, 7), {}, r"max_pool2d: the input height 6 .* extent 7"),
]


@pytest.mark.parametrize("args,kwargs,message", POOL_ERRORS)
def test_max_pool2d_errors_name_the_problem_and_the_line(args, kwargs, message):
    with pytest.raises(ValueError, match=rf"{message}.*\(at {THIS_FILE}:\d+\)"):
        max_pool2d(*args, **kwargs)
    with pytest.raises(ValueError, match=rf"{message}.*\(at {THIS_FILE}:\d+\)"):
        lumen.jit(lambda x: max_pool2d(x, *args[1:], **kwargs))(args[0])
