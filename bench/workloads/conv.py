"""C1: one 3x3 convolution layer, forward and backward — what a CNN training step spends most of
its time on.

    y = conv2d(x, w, b, padding=1)          (NCHW, cross-correlation, stride 1)
    dx, dw, db = the vector-Jacobian product of y with a given cotangent g

One call returns ``(y, dx, dw, db)``; inputs ``(x, w, b, g)`` with x (N, C, H, W), w (O, C, 3, 3),
b (O,), g (N, O, H, W), float32. ``C1.16-32.28x28``: batch 64, 16 -> 32 channels on 28 x 28
(MNIST-sized feature maps); ``C1.1-8.8x8``: batch 32, 1 -> 8 channels on 8 x 8 (the layer of
examples/digits_cnn.py). Throughput: examples/s = N / time.

NumPy: the layer written by hand tap by tap (9 tensordots forward, 9 for dw, 9 scattered into
dx); lumen: ``lumen.nn.conv2d`` and ``lumen.lop`` under one ``lumen.jit``; jax:
``lax.conv_general_dilated`` and ``jax.vjp``; torch: ``F.conv2d`` and ``torch.autograd.grad``.
PyTensor 3 has no multi-channel conv2d (only ``tensor.signal.convolve``), so it has no row.

``python -m bench.workloads.conv`` compares, under lumen.jit, the two formulations the issue
names — im2col with one matrix product (lumen.nn.conv2d) and a sum over the 9 taps of
per-tap matrix products — forward and backward, in CPU time per call.
"""
import numpy as np

from ..harness import Workload

DTYPE = np.float32
#: dw and db sum N*H*W = 50176 products (magnitudes up to ~850): float32 rounding leaves
#: torch's dw ~4e-3 from the float64 value, NumPy's and lumen's ~4e-4; y and dx are O(1) with
#: errors ~3e-6, so a misplaced tap (an O(1) error) still fails by far
TOL = dict(rtol=1e-4, atol=1e-2)


def make_inputs(shape, dtype, rng):
    n, c, o, h = shape
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    g = rng.standard_normal((n, o, h, h)).astype(dtype)
    return x, w, b, g


# ---- NumPy: forward and backward by hand, one tap at a time ------------------------------------

def numpy_layer(x, w, b, g):
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((w.shape[0], n, h, wd), x.dtype)
    dxp = np.zeros((c, n, h + 2, wd + 2), x.dtype)
    dw = np.empty_like(w)
    for p in range(3):
        for q in range(3):
            patch = xp[:, :, p:p + h, q:q + wd]
            y += np.tensordot(w[:, :, p, q], patch, axes=([1], [1]))           # (O, N, H, W)
            dw[:, :, p, q] = np.tensordot(g, patch, axes=([0, 2, 3], [0, 2, 3]))
            dxp[:, :, p:p + h, q:q + wd] += np.tensordot(w[:, :, p, q], g, axes=([0], [1]))
    y = y.transpose(1, 0, 2, 3) + b[:, None, None]
    dx = np.ascontiguousarray(dxp[:, :, 1:-1, 1:-1].transpose(1, 0, 2, 3))
    return y, dx, dw, g.sum(axis=(0, 2, 3))


# ---- lumen ---------------------------------------------------------------------------------------

def lumen_layer(x, w, b, g):
    import lumen

    def layer(x, w, b):
        return lumen.nn.conv2d(x, w, b, padding=1)
    return (layer(x, w, b), *lumen.lop(layer, (x, w, b), g))


def _lumen(inputs):
    import lumen
    return lumen.jit(lumen_layer)


def _jax(inputs):
    import jax

    def layer(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def step(x, w, b, g):
        y, vjp = jax.vjp(layer, x, w, b)
        return (y, *vjp(g))
    return step


def _torch(inputs):
    import torch

    def step(x, w, b, g):
        x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
        y = torch.nn.functional.conv2d(x, w, b, padding=1)
        return (y.detach(), *torch.autograd.grad(y, (x, w, b), g))
    return step


class ConvWorkload(Workload):
    def describe(self, quick: bool) -> str:
        n, c, o, h = self.quick_shape if quick else self.shape
        return (f"3x3 conv2d, padding 1, forward + backward (y, dx, dw, db): x ({n} x {c} x {h} x {h}), "
                f"w ({o} x {c} x 3 x 3), b ({o}), cotangent g ({n} x {o} x {h} x {h}), "
                f"{np.dtype(self.dtype).name}; examples/s = {n} / time")


_NOTES = {"numpy": "(hand-written, per-tap tensordot)", "lumen": "(lumen.nn.conv2d + lumen.lop)",
          "jax": "(lax.conv_general_dilated + jax.vjp)", "torch": "(F.conv2d + autograd.grad)"}

WORKLOADS = [
    ConvWorkload(name=f"C1.{c}-{o}.{h}x{h}", family="conv",
                 expr="y = conv2d(x, w, b, padding=1); dx, dw, db = vjp(g)", dtype=DTYPE,
                 shape=(n, c, o, h), quick_shape=(4, c, o, h), n_inputs=4, reference=numpy_layer,
                 make_inputs=make_inputs, bytes_moved=None,
                 impls={"lumen": _lumen, "jax": _jax, "torch": _torch}, notes=_NOTES, **TOL)
    for n, c, o, h in ((64, 16, 32, 28), (32, 1, 8, 8))
]


# ---- the two formulations, side by side ------------------------------------------------------------

def _per_tap_conv(x, w, b):
    """conv2d as a sum over the 9 taps of (O, C) @ (N, C, H*W) products (padding 1)."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = 0
    for p in range(3):
        for q in range(3):
            patch = np.reshape(xp[:, :, p:p + h, q:q + wd], (n, c, h * wd))
            out = out + w[:, :, p, q] @ patch
    return np.reshape(out, (n, o, h, wd)) + np.reshape(b, (o, 1, 1))


def compare_formulations(repeats=7):
    """CPU seconds per forward + backward call of each formulation under lumen.jit."""
    import time

    import lumen

    def timed(layer, args):
        f = lumen.jit(lambda x, w, b, g: (layer(x, w, b), *lumen.lop(layer, (x, w, b), g)))
        got = f(*args)
        best = np.inf
        for _ in range(repeats):
            t0 = time.process_time()
            for _ in range(3):
                f(*args)
            best = min(best, (time.process_time() - t0) / 3)
        return best, got

    im2col = lambda x, w, b: lumen.nn.conv2d(x, w, b, padding=1)  # noqa: E731
    for wl in WORKLOADS:
        args = wl.inputs(quick=False)
        ref = numpy_layer(*args)
        times = {}
        for name, layer in (("im2col, one matmul", im2col), ("sum over 9 taps", _per_tap_conv)):
            times[name], got = timed(layer, args)
            for a, r in zip(got, ref):
                np.testing.assert_allclose(a, r, **TOL)
        print(wl.name, "  ".join(f"{k}: {v * 1e3:.2f} ms" for k, v in times.items()))


if __name__ == "__main__":
    compare_formulations()
