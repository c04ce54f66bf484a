"""`lumen.nn.conv2d` and `lumen.nn.max_pool2d` (NCHW), written with NumPy calls like the rest of
`lumen.nn`: traced, they become slices, concatenates, one matrix product (BLAS) and fused
elementwise kernels that autodiff (both modes, any order), fusion and both backends handle as
any other code; on plain arrays they run eagerly in NumPy.

Convolution is im2col with the channels leading: the kh*kw shifted windows of the padded input
(C, N, H, W) are concatenated into one (C*kh*kw, N*OH*OW) matrix, so the forward pass, the
weight gradient and the input gradient are each a single large matrix product; measured forward
and backward (``python -m bench.workloads.conv``), this beats summing kh*kw per-tap matrix
products. Kernel sizes are compiled in (one specialisation per kernel size); batch and image
sizes stay symbolic, so a new batch size or image size does not recompile conv2d.
"""
from __future__ import annotations

import operator

import numpy as np

from .frontend.source import user_location
from .ir.dims import Dim, dmax

__all__ = ["conv2d", "max_pool2d"]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation, as PyTorch's ``conv2d`` and Theano's ``conv2d`` (no kernel
    flip): ``out[n, o, i, j] = b[o] + sum_{c,p,q} x[n, c, s*i + d*p - pad, s*j + d*q - pad]
    * w[o, c, p, q]``, zeros outside ``x``.

    ``x``: (N, C, H, W); ``w``: (O, C, kh, kw); ``b``: (O,) or None; ``stride``, ``padding``
    and ``dilation``: an int or an (height, width) pair. Returns (N, O, OH, OW) with
    ``OH = (H + 2*pad - d*(kh - 1) - 1) // s + 1`` (likewise OW)."""
    _check_ndim("conv2d", "x", x, 4, "(N, C, H, W)")
    _check_ndim("conv2d", "w", w, 4, "(O, C, kh, kw)")
    n, c, h, wd = np.shape(x)
    o, wc, kh, kw = np.shape(w)
    if _hint(wc) != _hint(c):
        _fail("conv2d", f"x has {_hint(c)} channels (x.shape[1]) but w expects {_hint(wc)} "
                        f"(w.shape[1]); w must be (out_channels, {_hint(c)}, kh, kw)")
    if b is not None:
        _check_ndim("conv2d", "b", b, 1, "(O,)")
        if _hint(np.shape(b)[0]) != _hint(o):
            _fail("conv2d", f"b has {_hint(np.shape(b)[0])} elements but w has {_hint(o)} "
                            "output channels (w.shape[0])")
    s, p, d = (_pair("conv2d", name, v, low) for name, v, low in
               (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)))
    kh, kw = int(kh), int(kw)              # the taps are unrolled: specialise on kernel size
    oh = _out_size("conv2d", "height", h, kh, s[0], p[0], d[0])
    ow = _out_size("conv2d", "width", wd, kw, s[1], p[1], d[1])
    xc = np.pad(np.transpose(x, (1, 0, 2, 3)), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = np.concatenate(_windows(xc, (kh, kw), (oh, ow), s, d), axis=1)  # (C, kh*kw*N, OH, OW)
    cols = np.reshape(cols, (c * (kh * kw), n * oh * ow))
    out = np.reshape(np.reshape(w, (o, c * (kh * kw))) @ cols, (o, n, oh, ow))
    if b is not None:
        out = out + np.reshape(b, (o, 1, 1, 1))
    return np.transpose(out, (1, 0, 2, 3))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The maximum over each (kh, kw) window of ``x`` (N, C, H, W), windows ``stride`` apart
    (default: ``kernel_size``, non-overlapping), ``x`` padded with -inf (the dtype's lowest
    value for integers) by ``padding`` on each side, as PyTorch's ``max_pool2d``. NaN in a
    window gives NaN.

    Gradient: the whole of each window's cotangent goes to the first maximal element of the
    window in row-major order, as PyTorch's and JAX's (``reduce_window``) max pools send it to
    a single element; an input that is the maximum of several overlapping windows receives the
    sum of their cotangents."""
    _check_ndim("max_pool2d", "x", x, 4, "(N, C, H, W)")
    k = _pair("max_pool2d", "kernel_size", kernel_size, 1)
    s = k if stride is None else _pair("max_pool2d", "stride", stride, 1)
    p = _pair("max_pool2d", "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        _fail("max_pool2d", f"padding {p} must be at most half the kernel size {k}")
    n, c, h, wd = np.shape(x)
    # specialised on the image size: the windows' bounds are then constants, so that the
    # select chain below, and its derivative, see equal shapes (no run-time broadcasting)
    x = np.reshape(x, (n, c, int(h), int(wd)))
    oh = _out_size("max_pool2d", "height", int(h), k[0], s[0], p[0], 1)
    ow = _out_size("max_pool2d", "width", int(wd), k[1], s[1], p[1], 1)
    dtype = _dtype(x)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=_lowest(dtype))
    taps = _windows(xp, k, (oh, ow), s, (1, 1))
    best = taps[0]
    for t in taps[1:]:
        # a strictly greater later element, or a NaN, takes over: ties keep the first
        take = t > best
        if dtype.kind == "f":
            take = take | np.isnan(t)
        best = np.where(take, t, best)
    return best


# -- helpers ------------------------------------------------------------------------------------

def _windows(x, kernel, out, stride, dilation):
    """The kh*kw shifted, strided views of ``x`` (..., H, W), each of spatial shape ``out``, in
    row-major tap order."""
    (kh, kw), (oh, ow), (sh, sw), (dh, dw) = kernel, out, stride, dilation
    return [x[..., i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]


def _out_size(fn, axis, n, k, s, p, d):
    """Output length of a window sliding over ``n`` (+ padding); an error when the window does
    not fit the traced size. At run time a too small input gives an empty result."""
    span = d * (k - 1) + 1
    if _hint(n) + 2 * p < span:
        _fail(fn, f"the input {axis} {_hint(n)} (padded: {_hint(n) + 2 * p}) is smaller than "
                  f"the kernel's extent {span}")
    size = (n + 2 * p - span) // s + 1
    return dmax(size, 0) if isinstance(size, Dim) else size


def _pair(fn, name, v, low):
    """``v`` (an int or a pair of ints, each >= ``low``) as a pair."""
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    try:
        if len(pair) != 2 or any(isinstance(e, (bool, np.bool_)) for e in pair):
            raise TypeError
        pair = tuple(operator.index(e) for e in pair)
    except TypeError:
        _fail(fn, f"{name} must be an int or a pair of ints; got {v!r}")
    if min(pair) < low:
        _fail(fn, f"{name} must be >= {low}; got {v!r}")
    return pair


def _check_ndim(fn, name, a, ndim, layout):
    if np.ndim(a) != ndim:
        _fail(fn, f"{name} must have {ndim} dimensions {layout}; got shape "
                  f"{tuple(_hint(d) for d in np.shape(a))}")


def _hint(d):
    """The traced value of a size (a plain int as is)."""
    return d.hint if isinstance(d, Dim) else int(d)


def _dtype(a):
    return a.dtype if hasattr(a, "dtype") else np.result_type(a)


def _lowest(dtype):
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _fail(fn, message):
    loc = user_location()
    raise ValueError(f"{fn}: {message}" + (f" (at {loc})" if loc else ""))
