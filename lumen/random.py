"""Stateless, counter-based random numbers: ``lumen.random`` (JAX-style keys).

A key is two 32-bit words (``uint32[2]``); every number is a pure function of the key and the
position of the element, computed by the Philox-4x32-10 block function of Salmon et al.,
"Parallel Random Numbers: As Easy as 1, 2, 3" (SC11). Element ``i`` of a result is made from
the four words ``philox4x32((i mod 2**32, i // 2**32, STREAM, 0), key)``; ``split`` and
``fold_in`` use the counter's third word to keep derived keys apart from the number streams.

The block function is written once with NumPy ``uint64`` operations on 32-bit values (a 32x32
-> 64-bit multiply, shifts, xor). Called on arrays it runs in NumPy; inside ``lumen.jit``,
``scan`` or a gradient it traces into integer primitives that fuse into one kernel. Integer
arithmetic has one answer everywhere, so ``uniform``, ``bernoulli``, ``split`` and
``permutation`` are bit-identical eagerly, compiled, on any thread count and on the GPU.
``normal`` goes through ``log``, whose last bits may differ between math libraries (NumPy's,
lumen's own vectorised one, CUDA's libdevice): a few units in the last place.
"""
from __future__ import annotations

import functools
import math
import operator

import numpy as np

from .frontend import ops as _ops
from .frontend.control import scan as _scan
from .frontend.trace import in_trace as _in_trace
from .frontend.tracer import Tracer as _Tracer
from .ir.dims import Dim as _Dim

__all__ = ["key", "split", "fold_in", "uniform", "normal", "bernoulli", "permutation",
           "philox4x32"]

_M0, _M1 = 0xD2511F53, 0xCD9E8D57          # Philox-4x32 multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85          # Weyl key increments (golden ratio, sqrt(3) - 1)
_MASK = 0xFFFFFFFF
_ROUNDS = 10

# The counter's third word says what the block is for, so that a key's number stream, its
# split children and its folded-in children never share a counter.
_STREAM, _SPLIT, _FOLD = 0, 1, 2


def _rounds(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on 32-bit values held in uint64 (so each product's high half is a
    shift away). The round-r key is computed directly (k + r*W) so that, traced, every round
    key is a scalar input of the one fused kernel rather than a chain of scalar kernels."""
    for r in range(_ROUNDS):
        r0, r1 = (k0 + r * _W0) & _MASK, (k1 + r * _W1) & _MASK
        p0, p1 = c0 * _M0, c2 * _M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ r0, p1 & _MASK, (p0 >> 32) ^ c3 ^ r1, p0 & _MASK
    return c0, c1, c2, c3


def _u64(x):
    return (x if isinstance(x, _Tracer) else np.asarray(x)).astype(np.uint64)


def philox4x32(counter, key):
    """The Philox-4x32-10 block function: ``counter`` uint32[..., 4], ``key`` uint32[2] ->
    uint32[..., 4] (Random123's ``philox4x32_R(10, ctr, key)``)."""
    c = _u64(counter)
    k0, k1 = _key_words(key)
    words = _rounds(c[..., 0], c[..., 1], c[..., 2], c[..., 3], k0, k1)
    return np.stack(words, axis=-1).astype(np.uint32)


# -- keys ---------------------------------------------------------------------------------------

def _check_key(k):
    if not isinstance(k, _Tracer):
        k = np.asarray(k)
    shape = tuple(getattr(d, "hint", d) for d in k.shape)
    if k.dtype != np.uint32 or shape != (2,):
        raise TypeError(f"lumen.random: key must be a uint32 array of shape (2,) as made by "
                        f"lumen.random.key(seed); got {k.dtype} of shape {shape}")
    return k


def _key_words(k):
    k = _u64(_check_key(k))
    return k[0], k[1]


def _words_to_key(w0, w1):
    return np.stack([w0, w1], axis=-1).astype(np.uint32)


def _uint64_scalar(x, fn, what):
    """An integer (Python, NumPy, a traced scalar or a traced size) as a uint64 scalar, with
    negative values taken as two's complement."""
    if isinstance(x, _Dim):
        x = _ops.wrap(_ops.to_value(x))
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, _Tracer):
        if x.dtype.kind not in "iu" or x.ndim != 0:
            raise TypeError(f"lumen.random.{fn}: {what} must be an integer scalar, got {x.dtype} "
                            f"of {x.ndim} dimensions")
        return x.astype(np.uint64)
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"lumen.random.{fn}: {what} must be an int, got {type(x).__name__}")
    if not -2**63 <= int(x) < 2**64:
        raise ValueError(f"lumen.random.{fn}: {what} {x} does not fit in 64 bits")
    return np.uint64(int(x) % 2**64)


def key(seed):
    """A key from an integer seed (any int that fits 64 bits, negative ones as two's
    complement; a traced integer scalar works too)."""
    s = _uint64_scalar(seed, "key", "seed")
    return _words_to_key(s & _MASK, s >> 32)


def split(k, num=2):
    """``num`` new keys (uint32[num, 2]), independent of each other and of ``k``'s numbers."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"lumen.random.split: num must be >= 0, got {num}")
    k0, k1 = _key_words(k)
    i = _counters((num,))
    w = _rounds(i & _MASK, i >> 32, np.uint64(_SPLIT), np.uint64(0), k0, k1)
    return _words_to_key(w[0], w[1])


def fold_in(k, data):
    """A new key from ``k`` and an integer ``data`` (e.g. the step number inside a
    ``lumen.scan``, traced or not); different data give independent keys."""
    d = _uint64_scalar(data, "fold_in", "data")
    k0, k1 = _key_words(k)
    w = _rounds(d & _MASK, d >> 32, np.uint64(_FOLD), np.uint64(0), k0, k1)
    return _words_to_key(w[0], w[1])


# -- the number stream --------------------------------------------------------------------------

def _shape(shape):
    shape = (shape,) if isinstance(shape, int) or not hasattr(shape, "__len__") else tuple(shape)
    for n in shape:
        if isinstance(n, (int, np.integer)) and n < 0:
            raise ValueError(f"lumen.random: negative size in shape {shape}")
    return shape


def _counters(shape, dtype=np.uint64):
    """Element indices 0..size-1 laid out in ``shape`` (sizes may be symbolic while
    tracing: the compiled code then takes the size at run time, without recompiling)."""
    size = functools.reduce(operator.mul, shape, 1)
    i = _ops.arange_like(size, dtype) if _in_trace() else np.arange(size, dtype=dtype)
    return np.reshape(i, shape)


def _stream(k, shape):
    """The four Philox words of every element of ``shape``."""
    k0, k1 = _key_words(k)
    i = _counters(_shape(shape))
    return _rounds(i & _MASK, i >> 32, np.uint64(_STREAM), np.uint64(0), k0, k1)


def _float_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"lumen.random.{what}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _unit(hi, lo, dtype):
    """Uniform on [0, 1) from random 32-bit words: the top 24 bits of ``hi`` for float32, 53
    bits of ``hi:lo`` for float64 (every value a multiple of 2**-24 or 2**-53, so exact)."""
    if dtype == np.float32:
        return (hi >> 8).astype(np.float32) * np.float32(2.0 ** -24)
    return ((hi << 21) | (lo >> 11)).astype(np.float64) * 2.0 ** -53


def _concrete(x, what):
    if isinstance(x, _Tracer):
        raise TypeError(f"lumen.random.uniform: {what} must be a concrete number or array, not a "
                        "traced value; scale a [0, 1) sample yourself for traced bounds")
    return x


def uniform(key, shape=(), dtype=np.float64, minval=0.0, maxval=1.0):
    """Uniform numbers on [minval, maxval) (float32: 24 random bits, float64: 53)."""
    dtype = _float_dtype(dtype, "uniform")
    w = _stream(key, shape)
    u = _unit(w[0], w[1], dtype)
    lo = np.asarray(_concrete(minval, "minval"), dtype)
    hi = np.asarray(_concrete(maxval, "maxval"), dtype)
    if (lo == 0).all() and (hi == 1).all():
        return u
    if not (lo < hi).all():
        raise ValueError(f"lumen.random.uniform: need minval < maxval, got {minval} and {maxval}")
    # lo + (hi - lo) * u can round up to hi; the largest float below hi keeps the interval open.
    return np.minimum(lo + (hi - lo) * u, np.nextafter(hi, lo))


def _taylor(x2, odd, terms, dtype):
    """sum_k (-1)^k x^(2k+odd) / (2k+odd)! over ``terms`` terms, by Horner in x^2 (without the
    leading x of the odd series)."""
    out = dtype.type((-1) ** (terms - 1) / math.factorial(2 * terms - 2 + odd))
    for k in range(terms - 2, -1, -1):
        out = out * x2 + dtype.type((-1) ** k / math.factorial(2 * k + odd))
    return out


def _cos_2pi(u, dtype):
    """cos(2*pi*u) for u in [0, 1) with +, * and selects only: 4u = q + r exactly (q an integer,
    |r| <= 1/2), then cos or sin of r*pi/2, |r*pi/2| <= pi/4, by Taylor series to within an ulp
    or two. libm's cos is an opaque call that keeps a loop scalar; this vectorises, and gives
    the same bits in NumPy, compiled and on the GPU."""
    t = 4 * u
    q = np.rint(t)
    x = (t - q) * dtype.type(np.pi / 2)
    x2 = x * x
    terms = 5 if dtype == np.float32 else 9
    c, s = _taylor(x2, 0, terms, dtype), x * _taylor(x2, 1, terms, dtype)
    quadrant = q.astype(np.int64) & 3                 # cos(x + quadrant * pi/2)
    return np.where(quadrant == 0, c, np.where(quadrant == 1, -s, np.where(quadrant == 2, -c, s)))


def normal(key, shape=(), dtype=np.float64):
    """Standard normal numbers (Box-Muller on two uniforms of the element's Philox block)."""
    dtype = _float_dtype(dtype, "normal")
    w = _stream(key, shape)
    radius = np.sqrt(-2 * np.log(1 - _unit(w[0], w[1], dtype)))     # 1 - u lies in (0, 1]
    return radius * _cos_2pi(_unit(w[2], w[3], dtype), dtype)


def bernoulli(key, p=0.5, shape=None):
    """Booleans that are True with probability ``p`` (a number or an array broadcast against
    ``shape``; ``shape`` defaults to ``p``'s)."""
    if not isinstance(p, _Tracer):
        p = np.asarray(p)
        if p.dtype.kind not in "fiub" or not ((p >= 0) & (p <= 1)).all():
            raise ValueError(f"lumen.random.bernoulli: p must lie in [0, 1], got {p}")
    dtype = np.float32 if p.dtype == np.float32 else np.float64
    return uniform(key, np.shape(p) if shape is None else shape, dtype) < p


def _radix_pass(n, packed, shift):
    """Stably move the elements whose bit ``shift`` is 0 to the front (one LSD radix pass)."""
    bit = ((packed >> shift) & 1).astype(np.int64)
    ones = np.cumsum(bit)                            # ones up to and including each position
    zeros_total = n - np.sum(bit)
    pos = np.where(bit == 1, zeros_total + ones - 1, _counters((n,), np.int64) - ones)
    out = np.zeros_like(packed)
    out[pos] = packed
    return out, None


def _shuffled_range(key, n):
    """A random permutation of 0..n-1: each index gets a random 32-bit word above it in one
    uint64, and an LSD radix sort on those 32 bits (32 passes of cumsum + scatter, O(n) each)
    leaves the indices in random order. Equal words keep index order, so the permutation is
    uniform up to the about n**2 / 2**33 pairs of equal words (0.01 pairs for n = 10**4)."""
    if isinstance(n, int) and n >= 2**32:
        raise ValueError(f"lumen.random.permutation: n must be below 2**32, got {n}")
    w = _stream(key, (n,))
    packed = (w[0] << 32) | _counters((n,))
    step = functools.partial(_radix_pass, n)
    if _in_trace():
        packed, _ = _scan(step, packed, np.arange(32, 64, dtype=np.uint64))
    else:
        for shift in range(32, 64):
            packed, _ = step(packed, np.uint64(shift))
    return (packed & _MASK).astype(np.int64)


def permutation(key, x):
    """A random permutation: of ``arange(x)`` for an int ``x`` (or a traced size such as
    ``y.shape[0]``), else of ``x`` along axis 0."""
    if isinstance(x, _Dim):
        return _shuffled_range(key, x)
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        if x < 0:
            raise ValueError(f"lumen.random.permutation: n must be >= 0, got {x}")
        return _shuffled_range(key, int(x))
    if not isinstance(x, _Tracer):
        x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("lumen.random.permutation: x must be an int or an array with at least "
                         "one axis")
    return x[_shuffled_range(key, x.shape[0])]
