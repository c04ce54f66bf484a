"""Neural-network helpers NumPy lacks (SPEC §4), written with NumPy calls so that, traced,
they become ordinary lumen primitives that rewrites and autodiff see through. Called on plain
arrays they run eagerly in NumPy, with the same stable formulas."""
from __future__ import annotations

import numpy as np

from .nn_conv import conv2d, max_pool2d

__all__ = ["sigmoid", "softplus", "relu", "softmax", "log_softmax", "logsumexp", "crossentropy",
           "dropout", "straight_through", "conv2d", "max_pool2d"]


def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    import scipy.special        # not with lumen (elementwise.UFUNCS says why)
    return scipy.special.expit(x)


def softplus(x):
    """log(1 + exp(x)), exact for large x and for x near -inf. Traced, it is spelled naively so
    that the stabilize phase makes it the `softplus` primitive (which autodiff and fusion know);
    on anything else (arrays, NumPy and Python scalars) NumPy computes it stably."""
    from .frontend.tracer import Tracer
    return np.log1p(np.exp(x)) if isinstance(x, Tracer) else np.logaddexp(0.0, x)


def relu(x):
    """max(x, 0). Its derivative at 0 is 1/2, as ``jnp.maximum(x, 0)``'s in JAX (ties split
    evenly); ``jax.nn.relu`` takes 0 there instead."""
    return np.maximum(x, 0)


def _shift(x, axis):
    """The maximum along ``axis`` (0 where it is not finite), with no derivative: the shift
    cancels out of every formula it stabilises, so differentiating it would only add
    kernels whose contributions sum to zero (as ``jax.nn.logsumexp``)."""
    from .frontend.transforms import stop_gradient
    m = np.max(x, axis=axis, keepdims=True)
    return stop_gradient(np.where(np.isfinite(m), m, 0))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) along ``axis``, shifted by the maximum so it never overflows."""
    m = _shift(x, axis)
    s = np.sum(np.exp(x - m), axis=axis, keepdims=True)
    out = np.log(s) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else np.reshape(out, ())


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (max-shifted)."""
    e = np.exp(x - _shift(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)) computed as x - logsumexp(x)."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def crossentropy(logits, labels):
    """Mean negative log-likelihood of integer ``labels`` under softmax(``logits``) (rows are
    examples, the last axis classes). Each row's label logit is picked before logsumexp is
    subtracted, not out of the whole log_softmax (the same numbers): compiled, the loss is one
    reduction over the rows and its gradient sums no row of the one-hot matrix (the MLP step
    of W7: 9 loops -> 8, a tenth of its cold start)."""
    n = np.shape(logits)[0]
    if np.ndim(logits) != 2:
        return -np.mean(log_softmax(logits, axis=-1)[np.arange(n), labels])
    picked = logits[np.arange(n), labels]
    return -np.mean(picked[:, None] - logsumexp(logits, axis=-1, keepdims=True))


def dropout(key, x, rate):
    """Inverted dropout: each element of ``x`` is kept with probability 1 - ``rate`` and scaled
    by 1 / (1 - ``rate``), so the expected output is ``x`` and nothing changes at test time.
    ``key`` is a `lumen.random` key; the same key drops the same elements."""
    from . import random
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
            or not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be a number in [0, 1), got {rate!r}")
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    if dtype.kind != "f":
        raise TypeError(f"dropout: x must be a floating-point array, got {dtype}")
    if rate == 0:
        return x
    keep = random.uniform(key, np.shape(x), dtype) >= rate      # probability exactly 1 - rate
    return np.where(keep, x * (1 / (1 - float(rate))), 0)


def straight_through(hard, soft):
    """The straight-through estimator (Bengio, Leonard & Courville 2013): the value of ``hard``
    (e.g. a sampled or thresholded unit) with the derivative of ``soft`` (e.g. the
    probability it was sampled from). ``soft - stop_gradient(soft)`` is exactly zero with the
    derivative of ``soft``; where ``soft`` is not finite it is replaced by zero so the value
    stays ``hard``."""
    from .frontend.transforms import stop_gradient
    zero = soft - stop_gradient(soft)
    return hard + np.where(np.isfinite(soft), zero, 0)
