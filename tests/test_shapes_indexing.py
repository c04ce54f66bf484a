"""Shapes, indexing, assignment, views, matrix products and array creation inside jitted code
agree with NumPy (values, dtypes and shapes), including NumPy's view semantics."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lumen

from .oracle import assert_same, check

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64"]


def sample(shape, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        return rng.integers(0, 5, shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-4, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def compare(got, expected):
    """Compare a (possibly nested tuple) jitted result against NumPy's."""
    if isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for g, e in zip(got, expected):
            compare(g, e)
    else:
        assert_same(got, expected)


X = sample((4, 5, 6))
M = sample((5, 6), seed=1)
V = sample((6,), seed=2)


# -- reshape and friends -----------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: x.reshape(-1, 6),
    lambda x: x.reshape(2, 10, 6),
    lambda x: x.reshape((5, -1)),
    lambda x: x.reshape(-1),
    lambda x: np.reshape(x, (20, 6)),
    lambda x: np.reshape(x, -1),
    lambda x: x.reshape(x.shape[0], -1),
    lambda x: x.reshape((x.shape[0] * x.shape[1], x.shape[2])),
    lambda x: x.T.reshape(6, -1),
    lambda x: x[:, ::2].reshape(-1, 3),
    lambda x: x[::-1].reshape(4, 30),
    lambda x: x.reshape(1, 4, 1, 30, 1),
    lambda x: x.reshape(4, 5, 6),
], ids=lambda f: "")
def test_reshape(fn):
    check(fn, X)


def test_reshape_is_shape_generic():
    f = lumen.jit(lambda x: (x.reshape(-1, x.shape[-1]), x.reshape(x.shape[0], -1).T))
    for n in (2, 3, 7):
        x = sample((n, 3, 4), seed=n)
        compare(f(x), (x.reshape(-1, 4), x.reshape(n, -1).T))
    assert f.cache_info()["compiles"] == 1


def test_reshape_errors():
    with pytest.raises(ValueError):
        lumen.jit(lambda x: x.reshape(7, -1))(X)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: x.reshape(-1, -1))(X)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: x.reshape(11, 11))(X)
    f = lumen.jit(lambda x: x.reshape(-1, 4))
    assert_same(f(np.arange(8.0)), np.arange(8.0).reshape(-1, 4))
    with pytest.raises(ValueError):
        f(np.arange(10.0))       # run time: 10 is not a multiple of 4


@pytest.mark.parametrize("fn", [
    lambda x: x.T,
    lambda x: x.mT,
    lambda x: x.transpose(),
    lambda x: x.transpose(1, 0, 2),
    lambda x: x.transpose((2, 0, 1)),
    lambda x: np.transpose(x, (-1, 0, 1)),
    lambda x: np.transpose(x),
    lambda x: np.swapaxes(x, 0, 2),
    lambda x: x.swapaxes(-1, 1),
    lambda x: np.moveaxis(x, 0, -1),
    lambda x: np.moveaxis(x, [0, 1], [-1, -2]),
    lambda x: np.moveaxis(x, -1, 0),
    lambda x: np.expand_dims(x, 0),
    lambda x: np.expand_dims(x, -1),
    lambda x: np.expand_dims(x, (0, 2)),
    lambda x: np.expand_dims(x, (-1, 1)),
    lambda x: x[:, :1].squeeze(),
    lambda x: np.squeeze(x[:1], axis=0),
    lambda x: x[:, :1, None].squeeze(axis=(1, 2)),
    lambda x: x[None, :, None].squeeze(),
    lambda x: x.ravel(),
    lambda x: np.ravel(x.T),
    lambda x: x.T.flatten(),
    lambda x: x[::2, ::-1].ravel(),
], ids=lambda f: "")
def test_movement(fn):
    check(fn, X)


def test_squeeze_errors():
    with pytest.raises(ValueError):
        lumen.jit(lambda x: np.squeeze(x, axis=0))(X)
    with pytest.raises(np.exceptions.AxisError):
        lumen.jit(lambda x: np.transpose(x, (0, 1, 3)))(X)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: np.transpose(x, (0, 1, 1)))(X)


def test_broadcast_to():
    check(lambda v: (np.broadcast_to(v, (3, 6)), np.broadcast_to(v[:, None], (6, 2)),
                     np.broadcast_to(v, (2, 1, 6)) + 1, np.broadcast_to(3.0, (2, 2)),
                     np.broadcast_arrays(v, v[:, None])[1]), V)
    check(lambda x: np.broadcast_to(x[:1], (7, 5, 6)), X)
    with pytest.raises(ValueError):
        lumen.jit(lambda v: np.broadcast_to(v, (3, 5)))(V)


def test_broadcast_to_is_read_only():
    def fn(v):
        b = np.broadcast_to(v.copy(), (3, 6))
        b[0] = 1.0
        return b
    with pytest.raises(ValueError):
        fn(V)
    with pytest.raises(ValueError):
        lumen.jit(fn)(V)


# -- concatenate and stacking ------------------------------------------------------------------

def test_concatenate():
    check(lambda x, m: (np.concatenate([x[0], m]), np.concatenate((m, m, m), axis=1),
                        np.concatenate([x[0], m], axis=None), np.concatenate([x, x[:2]]),
                        np.concatenate([x[:, :2], x], axis=-2), np.concatenate([m]),
                        np.concatenate([m, m[:0]]), np.concatenate([m.T, m.T[::-1]], axis=1)),
          X, M)


@pytest.mark.parametrize("a,b", [("int8", "float32"), ("bool", "int16"), ("uint8", "int8"),
                                 ("float32", "float64"), ("int64", "uint64"), ("bool", "bool")])
def test_concatenate_promotes(a, b):
    check(lambda x, y: (np.concatenate([x, y]), np.stack([x, y]), np.vstack([x, y]),
                        np.hstack([x, y]), np.concatenate([x, y], dtype=np.float64)),
          sample((2, 3), a), sample((2, 3), b, 1))


def test_concatenate_mixed_with_constants():
    check(lambda m: (np.concatenate([m, np.zeros((1, 6))]), np.stack([m[0], np.arange(6.0)]),
                     np.hstack([m, np.ones((5, 1), np.int32)])), M)


def test_concatenate_shape_generic():
    f = lumen.jit(lambda a, b: np.concatenate([a, b, a], axis=0))
    for n, k in ((2, 3), (5, 1), (4, 0)):
        a, b = sample((n, 3)), sample((k, 3), seed=1)
        assert_same(f(a, b), np.concatenate([a, b, a]))
    with pytest.raises(ValueError):
        f(sample((2, 3)), sample((2, 4)))


def test_stack():
    check(lambda m: (np.stack([m, m]), np.stack([m, m * 2], axis=-1), np.stack([m, m], axis=1),
                     np.stack((m[0], m[1], m[2])), np.stack([m, m], dtype=np.float32)), M)


def test_vstack_hstack():
    check(lambda m, v: (np.vstack([m, v]), np.vstack([v, v]), np.hstack([m, m]), np.hstack([v, v]),
                        np.vstack([m[:, 0], m[:, 1]]), np.hstack([v[0], v[1], v]),
                        np.vstack((m, m)).T), M, V)


def test_concatenate_errors():
    with pytest.raises(ValueError):
        lumen.jit(lambda m, v: np.concatenate([m, v]))(M, V)
    with pytest.raises(ValueError):
        lumen.jit(lambda m: np.concatenate([m, m.T]))(M)
    with pytest.raises(ValueError):
        lumen.jit(lambda m: np.stack([m, m[1:]]))(M)


# -- basic slicing -----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: x[1:3],
    lambda x: x[::-1],
    lambda x: x[:, ::2, -1],
    lambda x: x[-2:, None, 1],
    lambda x: x[..., 1],
    lambda x: x[1, ..., ::-3],
    lambda x: x[np.newaxis, 0, :, None],
    lambda x: x[5:],
    lambda x: x[-10:2],
    lambda x: x[3:1],
    lambda x: x[::-2, ::3, 4:0:-2],
    lambda x: x[0, 0, 0],
    lambda x: x[-1],
    lambda x: x[-4:-1:2, 3, -1],
    lambda x: x[x.shape[0] // 2:, : x.shape[1] - 1],
    lambda x: x[..., None],
    lambda x: x[None, ..., None, 0],
    lambda x: x[()],
    lambda x: x[...],
    lambda x: x[1:2, 0:0],
    lambda x: x[:, -1:-6:-2],
    lambda x: x[100:, :, -100:],
    lambda x: x[::-1][1:][::2],
    lambda x: x[np.int64(1), np.int8(-2)],
    lambda x: x[1][2][3],
    lambda x: x[-1:-5:-1, ::-1, ::-1].sum(axis=0),
], ids=lambda f: "")
def test_basic_slicing(fn):
    check(fn, X)


def test_basic_index_errors():
    with pytest.raises(IndexError):
        lumen.jit(lambda x: x[4])(X)
    with pytest.raises(IndexError):
        lumen.jit(lambda x: x[0, 0, 0, 0])(X)
    with pytest.raises(IndexError):
        lumen.jit(lambda x: x[..., 0, ...])(X)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: x[::0])(X)
    f = lumen.jit(lambda x: x[3])
    assert_same(f(X), X[3])
    with pytest.raises(IndexError):
        f(X[:2])                 # compiled for any length; 3 is out of range at run time


_slice_entry = st.one_of(
    st.builds(slice, st.none() | st.integers(-8, 8), st.none() | st.integers(-8, 8),
              st.none() | st.integers(-3, 3).filter(bool)),
    st.integers(-4, 3), st.just(None), st.just(Ellipsis))


@settings(max_examples=40, deadline=None)
@given(key=st.lists(_slice_entry, min_size=1, max_size=3))
def test_hypothesis_basic_keys(key):
    key = tuple(key)
    if sum(k is Ellipsis for k in key) > 1 or \
            sum(k is not None and k is not Ellipsis for k in key) > X.ndim:
        return
    check(lambda x: x[key], X)


_DYN = lumen.jit(lambda x: (x[1:-1], x[::-2], x[x.shape[0] // 2:], x[-3::2]))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 12))
def test_hypothesis_slices_shape_generic(n):
    x = sample((n, 3), seed=n)
    compare(_DYN(x), (x[1:-1], x[::-2], x[n // 2:], x[-3::2]))
    assert _DYN.cache_info()["compiles"] <= 2     # n == 1 is its own broadcast pattern


def test_symbolic_slice_bounds_do_not_specialise():
    f = lumen.jit(lambda x: (x[x.shape[0] // 2:], x[: x.shape[0] - 1], x[0: x.shape[0]: 2]))
    for n in (4, 5, 6, 9):
        x = np.arange(float(n))
        compare(f(x), (x[n // 2:], x[: n - 1], x[0: n: 2]))
    assert f.cache_info()["compiles"] == 1


def test_traced_slice_bounds_raise_tracing_error():
    with pytest.raises(lumen.TracingError):
        lumen.jit(lambda x, k: x[k:])(V, 1)


# -- integer-array indexing --------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: x[np.array([0, 2, -1])],
    lambda x: x[:, np.array([1, 1, 0])],
    lambda x: x[np.array([[0, 1], [3, 2]])],
    lambda x: x[np.array([0, 1]), :, np.array([2, 3])],
    lambda x: x[1, :, np.array([2, 3])],
    lambda x: x[np.array([0, 1]), 2],
    lambda x: x[:, np.array([0, 1]), np.array([[2], [3]])],
    lambda x: x[::-1, np.array([0, 1])],
    lambda x: x[[0, 1]],
    lambda x: x[[-1, -4], [0, 4], [5, -6]],
    lambda x: x[np.array([], dtype=np.int64)],
    lambda x: x[np.array([1, 2], dtype=np.uint8), ..., np.array([0, 0], dtype=np.int16)],
    lambda x: x[np.array([0, 1])][:, np.array([2])],
    lambda x: x[1:, np.array([0, 1])][::-1],
    lambda x: x[::2, np.array([[0], [1]]), np.array([1, 2, 3])],
    lambda x: x[np.array([[1]]), 1:4, np.array([[0, 5]])],
    lambda x: x.T[np.array([5, 0])],
    lambda x: x[..., np.array([-1, 0])],
    lambda x: x[np.arange(4), np.arange(4), np.arange(4)],
], ids=lambda f: "")
def test_integer_array_indexing(fn):
    check(fn, X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_along_rows(dtype):
    """``x[np.arange(n), y]``: one element per row (the cross-entropy idiom)."""
    x = sample((7, 5), dtype)
    y = np.array([0, 4, 2, 2, 1, 3, 0])
    check(lambda x, y: (x[np.arange(x.shape[0]), y], x[np.arange(7), y[::-1]], x[:, y[:3]]), x, y)


_GATHER = lumen.jit(lambda x, i, j: (x[i], x[:, j], x[i, j], x[i[:, None], j]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 6), k=st.integers(0, 5), data=st.data())
def test_hypothesis_gather(n, m, k, data):
    x = sample((n, m), seed=n * 7 + m)
    i = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k)), np.int64)
    j = np.array(data.draw(st.lists(st.integers(-m, m - 1), min_size=k, max_size=k)), np.int32)
    compare(_GATHER(x, i, j), (x[i], x[:, j], x[i, j], x[i[:, None], j]))


def test_index_array_out_of_bounds_raises():
    f = lumen.jit(lambda x, i: x[i])
    assert_same(f(M, np.array([4, -5])), M[np.array([4, -5])])
    with pytest.raises(IndexError):
        f(M, np.array([0, 5]))
    with pytest.raises(IndexError):
        f(M, np.array([-6]))
    g = lumen.jit(lambda x, i: x[:, i])
    with pytest.raises(IndexError):
        g(M, np.array([6]))


def test_index_with_bad_dtype():
    with pytest.raises(IndexError):
        lumen.jit(lambda x: x[np.array([0.0, 1.0])])(M)


def test_index_broadcast_mismatch():
    with pytest.raises(IndexError):
        M[np.array([0, 1]), np.array([0, 1, 2])]
    with pytest.raises((IndexError, ValueError)):
        lumen.jit(lambda x: x[np.array([0, 1]), np.array([0, 1, 2])])(M)


# -- assignment --------------------------------------------------------------------------------

def _set_basic(x):
    z = np.zeros_like(x)
    z[1:3, ::2] = 5
    z[-1] += x[0]
    z[..., -1] -= 3
    z[:, None, 1] = 0.5
    z[0, 0, 0] = -1
    z[2] = x[2, ::-1]
    z[::2] *= 2
    return z


def _set_int_array(x):
    z = x.copy()
    z[np.array([0, 0, 1])] += 1.0          # duplicates do not accumulate
    z[np.array([[0, 1], [1, 3]])] = -1
    z[:, np.array([4, 0, 4])] = np.arange(6.0)
    z[np.array([0, -1]), 2] += 10
    return z


def _set_non_adjacent(x):
    z = x.copy()
    z[np.array([0, 2]), :, np.array([1, 5])] = 9
    z[1:3, np.array([0, 4])] = 2
    z[::-1, np.array([1]), ::2] += 1
    z[np.array([3]), 1:4, np.array([[0], [5]])] = np.array([[1.0, 2.0, 3.0]])
    return z


def _set_scalars(x):
    z = np.zeros((3, 4))
    z[1, 2] = 5
    z[-1, -1] = 1
    z[2] = np.arange(4)
    return z + x[0, 0, :4]


def _set_cast(x):
    z = x.astype(np.int32)
    z[1] = 2.7               # unsafe cast as in NumPy assignment
    z[2, :, 0] = -1.5
    b = x > 0
    b[0] = 3
    return z, b


def _set_mask(x):
    z = x.copy()
    z[x > 0] = 0
    w = x.copy()
    w[x[:, :, 0] < 0] = 100.0
    u = x.copy()
    u[:, x[0] > 1] = -7
    c = x.copy()
    c[np.array([True, False, True, False])] = x[3, 0]
    c[[False, True, False, True], ...] = np.arange(6.0)
    return z, w, u, c


@pytest.mark.parametrize("fn", [_set_basic, _set_int_array, _set_non_adjacent, _set_scalars,
                                _set_cast, _set_mask])
def test_setitem(fn):
    check(fn, X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_setitem_dtypes(dtype):
    def fn(x, i):
        z = x.copy()
        z[i] = x[0]
        z[1:, 1] = x[0, 0]
        z[-1, i[:2]] = x[-1, 0]
        return z
    check(fn, sample((5, 4), dtype), np.array([3, 1, 1]))


def test_boolean_mask_reads_are_unsupported_and_bad_masks_raise():
    """``x[mask]`` has a data-dependent size: a clear UnsupportedError, not a crash."""
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: x[x > 0])(X)
    with pytest.raises(IndexError):
        lumen.jit(lambda x: _assign(x.copy(), np.array([True, False]), 0.0))(X)
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: _assign(x.copy(), x > 0, x[x > 0]))(X)


def test_duplicate_indices_do_not_accumulate():
    def fn(x, i):
        z = np.zeros(x.shape[0])
        z[i] += 1
        w = np.zeros((x.shape[0], 2))
        w[i, 1] += x[i]
        u = x.copy()
        u[i] = np.arange(i.shape[0], dtype=np.float64)     # last write wins
        return z, w, u
    check(fn, sample((6,)), np.array([0, 1, 1, 5, -1, 3, 1]))


_SCATTER = lumen.jit(lambda x, i, v: _scatter_body(x, i, v))


def _scatter_body(x, i, v):
    z = x.copy()
    z[i] = v
    w = x.copy()
    w[:, i] += 1
    return z, w


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(0, 6), data=st.data())
def test_hypothesis_scatter(n, k, data):
    x = sample((n, n + 1), seed=n)
    k = min(k, n)
    i = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k,
                                    unique_by=lambda a: a % n)), np.int64)
    v = sample((len(i), n + 1), seed=k)
    compare(_SCATTER(x, i, v), _scatter_body(x, i, v))


def test_setitem_errors():
    def shape_mismatch(x):
        z = x.copy()
        z[0] = np.ones(3)
        return z
    with pytest.raises(ValueError):
        lumen.jit(shape_mismatch)(M)

    def out_of_bounds(x, i):
        z = x.copy()
        z[i] = 0
        return z
    f = lumen.jit(out_of_bounds)
    with pytest.raises(IndexError):
        f(M, np.array([5]))
    with pytest.raises(IndexError):
        lumen.jit(lambda x: _assign(x.copy(), 7, 0.0))(M)
    g = lumen.jit(lambda x: _assign(x.copy(), 3, 0.0))
    assert_same(g(M), _assign(M.copy(), 3, 0.0))
    with pytest.raises(IndexError):
        g(M[:2])                 # run time: the basic index is checked before writing


@pytest.mark.parametrize("key,shape", [(0, (3, 6)), (np.s_[:, 0], (5, 1)), (np.s_[:2], (2, 1, 1)),
                                       (np.array([0, 1]), (3, 6)), (np.array([1]), (2, 6))])
def test_value_must_broadcast_to_target(key, shape):
    """NumPy broadcasts the value to the target, never the target to the value."""
    with pytest.raises(ValueError):
        _assign(M.copy(), key, np.ones(shape))
    with pytest.raises(ValueError):
        lumen.jit(lambda x, v: _assign(x.copy(), key, v))(M, np.ones(shape))


def test_value_broadcast_checked_at_run_time():
    f = lumen.jit(lambda x, v: _assign(x.copy(), np.s_[1:3], v))
    for v in (np.ones(6), np.ones((2, 6)), np.ones((1, 1, 6)), np.ones((2, 1))):
        assert_same(f(M, v), _assign(M.copy(), np.s_[1:3], v))
    with pytest.raises(ValueError):
        f(M, np.ones(7))
    with pytest.raises(ValueError):
        f(M, np.ones((3, 6)))

    def to_argument(x):
        x[0] = 1
        return x
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(to_argument)(M)


def _assign(z, key, value):
    z[key] = value
    return z


# -- views -------------------------------------------------------------------------------------

def _view_inplace(x):
    z = x.copy()
    v = z[0]
    v += 1
    return z, v


def _view_of_view(x):
    z = x.copy()
    a = z[1:]
    b = a[0]
    b += 1
    a[-1, 0] = 5
    return z, a, b


def _view_chained_assign(x):
    z = x.copy()
    z[0][1] = 5
    z[1][:, 2] *= 2
    z[2][np.array([0, 1])] = -3
    return z


def _view_sees_base_writes(x):
    z = x.copy()
    v = z[1]
    t = z.T
    r = z.reshape(-1)
    z[1] = 0
    z[:, :, 0] += 7
    return v, t, r


def _view_transposed(x):
    z = x.copy()
    w = z.T
    w[0, 0] = -5
    s = np.swapaxes(z, 0, 1)
    s += 1
    m = np.moveaxis(z, 0, -1)
    m[..., 0] = 1
    z.T[1, 1] += 10
    return z, w, s


def _view_reshaped(x):
    z = x.copy()
    r = z.reshape(-1)
    r[:3] = 0
    e = np.expand_dims(z, 0)
    e[0, 0] = 2
    q = z[1].reshape(-1)
    q[0] = 100
    sq = z[:, :1].squeeze(1)
    sq[0] = 8
    f = z.ravel()
    f[-1] = 3
    return z, r, e


def _copies_are_not_views(x):
    z = x.copy()
    c = z.T.reshape(-1)          # not contiguous: NumPy copies
    c[:3] = 0
    s = z[:, 1].reshape(-1)      # a strided view: copied too
    s[0] = 9
    k = z.copy()
    k[0] = 1
    g = z[np.array([0, 1])]      # integer-array indexing copies
    g[0] = 4
    a = z.astype(np.float32)
    a[1] = 3
    return z, c, s, k, g, a


@pytest.mark.parametrize("fn", [_view_inplace, _view_of_view, _view_chained_assign,
                                _view_sees_base_writes, _view_transposed, _view_reshaped,
                                _copies_are_not_views])
def test_views(fn):
    check(fn, X)


def test_flatten_copies_ravel_views():
    """``x.flatten()`` always copies; ``x.ravel()`` of a C-contiguous array is a view."""
    def fn(x):
        z = x.copy()
        fl = z.flatten()
        fl[0] = 11
        r = z.ravel()
        r[1] = 12
        return z, fl, r
    check(fn, X)


def test_views_of_arguments_are_read_only():
    """A compiled function never modifies its inputs: writing through a view of an argument
    raises instead of silently diverging from NumPy."""
    def fn(x):
        v = x[0]
        v += 1
        return v
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(fn)(X)

    def fn_t(x):
        x.T[0] = 1
        return x
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(fn_t)(X)


def _shift_into_self(v):
    a = v * 2
    a[1:] = a[:-1]               # overlapping source and target: NumPy reads before writing
    return a


def _add_own_transpose(x):
    z = x * 1.0
    z.T[...] += z                # NumPy buffers overlapping operands
    return z


@pytest.mark.parametrize("fn", [
    lambda x: (x + 1).T * 2,
    lambda x: (x + 1).T + (x + 1),
    lambda x: (lambda a: a[::-1] + a)(x * 3),
    lambda x: (lambda a: a[1:] - a[:-1])(x * 2),
    lambda x: (lambda a: a[:, None] * a[None, :])(x[0] + 1),
    lambda x: (lambda a: a[np.array([3, 2, 1, 0, 5, 4])] + 1)(x * 2),
    lambda x: (lambda a: a @ a.T + 1)(x * 2),
    lambda x: (x * 2).reshape(4, 9).T.reshape(6, 6) + 1,
    lambda x: (lambda a: a.T - a.sum(axis=0))(x * 2),
    lambda x: (lambda a: np.concatenate([a[4:], a[:4]]) * 2)(x + 1),
    _shift_into_self,
    _add_own_transpose,
], ids=lambda f: "")
def test_views_of_dying_temporaries(fn):
    """Reusing a temporary's buffer (memory planning) must not corrupt a view that reads it in
    another order."""
    check(fn, sample((6, 6), seed=9))


# -- matmul / dot / outer ----------------------------------------------------------------------

MATMUL_SHAPES = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (5, 4, 2)),
                 ((5, 1, 3, 4), (2, 4, 2)), ((3, 4), (2, 4, 5)), ((4,), (2, 4, 3)),
                 ((2, 3, 4), (4,)), ((3, 0), (0, 2)), ((0, 4), (4, 2)), ((3, 4), (4, 0)),
                 ((1, 4), (4, 1)), ((1, 1), (1, 1)), ((3, 1), (1, 2)), ((2, 1, 1, 4), (3, 4, 1))]

_MATMUL = lumen.jit(lambda a, b: (a @ b, np.matmul(a, b)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_shapes_and_dtypes(dtype):
    for k, (sa, sb) in enumerate(MATMUL_SHAPES):
        a, b = sample(sa, dtype, k), sample(sb, dtype, k + 100)
        compare(_MATMUL(a, b), (a @ b, np.matmul(a, b)))


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32", "uint8", "bool"])
def test_dot_outer(dtype):
    m, v = sample((5, 6), dtype), sample((6,), dtype, 1)
    check(lambda m, v: (np.dot(m, v), np.dot(v, v), m.dot(m.T), np.dot(m.T, m[:, 0]),
                        np.outer(v, v), np.outer(m[0], m[:2]), np.dot(m, 2), v @ v,
                        np.dot(m[None], m.T), m.T @ m), m, v)


@pytest.mark.parametrize("a,b", [("float32", "float64"), ("int8", "float32"), ("bool", "int8"),
                                 ("uint8", "int8"), ("int64", "float64"), ("uint64", "int64"),
                                 ("bool", "float32"), ("int16", "uint32")])
def test_matmul_mixed_dtypes(a, b):
    check(lambda x, y: (x @ y, np.dot(x, y[:, 0]), np.outer(x[0], y[0])),
          sample((3, 4), a), sample((4, 2), b, 1))


LAYOUT_A = {"C": lambda a: a[:, :4], "step": lambda a: a[::2, ::2], "neg": lambda a: a[::-1, :4],
            "T": lambda a: a.T[:, :4], "F": lambda a: np.asfortranarray(a[:, :4]),
            "negcol": lambda a: a[:, ::-1][:, :4]}
LAYOUT_B = {"C": lambda b: b[:4, :5], "step": lambda b: b[:8:2, ::2], "neg": lambda b: b[::-1][:4],
            "T": lambda b: np.ascontiguousarray(b[:4].T).T, "negcol": lambda b: b[:4, ::-1]}


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize("la", sorted(LAYOUT_A))
def test_matmul_strided_operands(dtype, la):
    """BLAS needs unit stride on one axis; other layouts (negative steps too) are copied."""
    base_a, base_b = sample((6, 8), dtype), sample((8, 10), dtype, 1)
    for lb in sorted(LAYOUT_B):
        a, b = LAYOUT_A[la](base_a), LAYOUT_B[lb](base_b)
        compare(_MATMUL(a, b), (a @ b, a @ b))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("la", sorted(LAYOUT_A))
def test_matmul_single_row_or_column(dtype, la):
    """A product with one row or one column goes through ?gemv: every layout of both sides."""
    base_a, base_b = sample((6, 8), dtype), sample((8, 10), dtype, 1)
    gemm = lumen.jit(lambda a, b, c: 0.5 * (a @ b) + 2.0 * c)
    for lb in sorted(LAYOUT_B):
        a, b = LAYOUT_A[la](base_a), LAYOUT_B[lb](base_b)
        for x, y in ((a[1:2], b), (a, b[:, 2:3]), (a[2:3], b[:, 1:2]), (a[None, 1], b)):
            compare(_MATMUL(x, y), (x @ y, x @ y))
        c = sample((1, b.shape[1]), dtype, 2)
        assert_same(gemm(a[1:2], b, c), 0.5 * (a[1:2] @ b) + 2.0 * c, rtol=1e-5)


def test_matmul_inside_transposes():
    check(lambda x, m: (x @ m.T, np.matmul(x, m.T[None]), m.T @ x[0], x.transpose(0, 2, 1) @ x,
                        (x[:, ::2] @ m[::-1].T).sum(axis=0), x[::-1] @ V, V @ x.mT), X, M)


_BATCHED = lumen.jit(lambda a, b: (a @ b, a @ b[0]))


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(2, 4), m=st.integers(2, 5), k=st.integers(2, 5), n=st.integers(2, 5),
       dtype=st.sampled_from(["float64", "float32", "int32"]))
def test_hypothesis_batched_matmul(batch, m, k, n, dtype):
    a, b = sample((batch, m, k), dtype, m), sample((batch, k, n), dtype, n)
    compare(_BATCHED(a, b), (a @ b, a @ b[0]))


def test_matmul_errors():
    with pytest.raises(ValueError):
        lumen.jit(lambda a, b: a @ b)(M, M)
    f = lumen.jit(lambda a, b: a @ b)
    assert_same(f(M, M.T), M @ M.T)
    with pytest.raises(ValueError):
        f(M, M[:, :4])           # run-time core-dimension mismatch
    with pytest.raises(ValueError):
        f(sample((2, 3, 4)), sample((3, 4, 5)))   # batch axes do not broadcast
    with pytest.raises(ValueError):
        lumen.jit(lambda a: a @ 2.0)(M)


def test_matmul_no_recompile():
    f = lumen.jit(lambda a, b: a @ b)
    for n in (3, 8, 33):
        a, b = sample((n, 5), seed=n), sample((5, n + 1), seed=n + 1)
        assert_same(f(a, b), a @ b)
    assert f.cache_info()["compiles"] == 1


# -- array creation inside the function --------------------------------------------------------

def test_like_constructors():
    check(lambda x: (np.zeros_like(x), np.ones_like(x, dtype=np.int32), np.full_like(x, 3),
                     np.full_like(x, 2.5, dtype=np.float32), np.empty_like(x).shape == x.shape,
                     np.zeros_like(x[0, :, 1]), np.ones_like(x.T), np.full_like(x, x[0, 0, 0]),
                     np.zeros_like(x, shape=(2, 3))), X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_like_constructors_keep_dtype(dtype):
    check(lambda x: (np.zeros_like(x), np.ones_like(x), np.full_like(x, 1), x + np.ones_like(x)),
          sample((3, 2), dtype))


def test_constant_constructors():
    check(lambda x: (np.zeros((3, 4)), np.arange(5) + x[0, 0, 0], np.eye(3), np.eye(3, 4, k=1),
                     np.ones((2,), np.int8), np.full((2, 2), 7), np.arange(1.0, 2.0, 0.25),
                     x[0] + np.eye(5, 6), np.zeros(3, dtype=bool)), X)


def test_constructors_with_symbolic_sizes():
    def fn(x):
        n, m, k = x.shape
        return (np.zeros(x.shape), np.ones((n, 2)), np.arange(m) * 2.0, np.eye(n),
                np.full((n,), 7), np.arange(1, k, 2), np.arange(n, dtype=np.float32),
                np.zeros((n, m), dtype=np.int32) + x[:, :, 0].astype(np.int32),
                x[np.arange(n), np.arange(n) % m])
    f = lumen.jit(fn)
    for shape in ((4, 5, 6), (2, 3, 7), (6, 2, 3)):
        x = sample(shape, seed=shape[0])
        compare(f(x), fn(x))
    assert f.cache_info()["compiles"] == 1


def test_concrete_constructors_take_traced_values():
    """``z = np.zeros((3, 4)); z[0] = x[0]``: a constructor with concrete sizes, then a traced
    value written into it (an everyday NumPy pattern)."""
    def fn(x):
        z = np.zeros((3, 4))
        z[0] = x[0, 0, :4]
        e = np.eye(3)
        e[1] += x[1, 1, :3]
        return z, e
    check(fn, X)


def test_created_arrays_are_writable():
    def fn(x):
        z = np.zeros((x.shape[0], 3))
        z[:, 0] = x[:, 0, 0]
        e = np.eye(x.shape[0])
        e[0] = 5
        a = np.arange(x.shape[1])
        a[::2] = -1
        o = np.ones_like(x)
        o[1] = x[1]
        return z, e, a, o
    check(fn, X)


# -- more NumPy functions built from the primitives ----------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: np.take(x, np.array([0, 2]), axis=1),
    lambda x: np.take(x, np.array([[5, -1], [0, 3]])),
    lambda x: np.take(x, 2, axis=-1),
    lambda x: np.take(x, np.array([7, -9]), axis=2, mode="wrap"),
    lambda x: np.take(x, np.array([7, -9]), axis=0, mode="clip"),
    lambda x: np.take_along_axis(x, np.array([[[0], [3], [1], [2], [4]]] * 4), axis=2),
    lambda x: np.take_along_axis(x, np.zeros((4, 1, 6), np.int64), axis=1),
    lambda x: np.take_along_axis(x, np.argmax(x, axis=0)[None], axis=0),
    lambda x: np.take_along_axis(x[0, 0], np.array([5, 0, 0]), axis=None),
    lambda x: (np.flip(x), np.flip(x, 1), np.flip(x, (0, 2)), np.fliplr(x[0]), np.flipud(x[0])),
    lambda x: (np.atleast_1d(x[0, 0, 0]), np.atleast_2d(x[0, 0]), np.atleast_3d(x[0]),
               np.atleast_3d(x[0, 0]), np.atleast_2d(x), np.atleast_1d(x[0, 0, 0], x[0])),
    lambda x: (np.tensordot(x, x, axes=([1, 2], [1, 2])), np.tensordot(x, x[0], axes=2),
               np.tensordot(x[0], x[1], axes=([0], [0])), np.tensordot(x[0, 0], x[:, 0], axes=0)),
    lambda x: (np.inner(x[0, 0], x[1, 1]), np.inner(x, x[0]), np.inner(x[0], 2.0),
               np.vdot(x[0], x[1])),
    lambda x: (np.diagonal(x), np.diagonal(x, 1, 1, 2), np.diagonal(x, -2, -1, 0), np.trace(x[0]),
               np.trace(x, offset=-1, axis1=1, axis2=2), np.diag(x[0]), np.diag(x[0], -3),
               np.diag(x[0, 0]), np.diag(x[0, 0], 2), np.trace(x[0], dtype=np.float32)),
    lambda x: (np.diff(x), np.diff(x, n=2, axis=0), np.diff(x, axis=1, prepend=0.0),
               np.diff(x > 0, axis=-1), np.diff(x[0, 0], append=x[0, :1, :2].ravel())),
    lambda x: (np.roll(x, 2), np.roll(x, -1, axis=1), np.roll(x, (1, 7), axis=(0, 2)),
               np.roll(x, 13, axis=-1)),
    lambda x: (np.count_nonzero(x > 0), np.count_nonzero(x > 0, axis=1),
               np.count_nonzero(x > 0, axis=(0, 2), keepdims=True), np.ptp(x), np.ptp(x, axis=1)),
    lambda x: (np.average(x), np.average(x, axis=1), np.average(x, axis=2, weights=np.arange(6.0)),
               np.average(x, weights=np.abs(x)), np.average(x, axis=0, keepdims=True),
               np.average(x, axis=1, weights=np.ones(5), returned=True)),
    lambda x: (np.column_stack([x[0, 0], x[0, 1]]), np.column_stack([x[0], x[1, :, 0]])),
    lambda x: (np.tile(x[0, 0], 3), np.tile(x[0], (2, 1)), np.tile(x, (2, 1, 1, 2)),
               np.tile(x[0, 0], (2, 0))),
    lambda x: (np.repeat(x, 2), np.repeat(x, 3, axis=1), np.repeat(x[0], 1, axis=-1),
               np.repeat(x[0, 0], 0)),
    lambda x: (np.split(x, 2), np.split(x, [1, 3], axis=1), np.array_split(x, 4, axis=2),
               np.hsplit(x, [2]), np.vsplit(x[0], 5), np.split(x[0, 0], [2, 10])),
    lambda x: (np.linalg.norm(x), np.linalg.norm(x[0, 0]), np.linalg.norm(x, axis=1),
               np.linalg.norm(x[0], ord=1), np.linalg.norm(x[0], np.inf), np.linalg.norm(x[0], -1),
               np.linalg.norm(x[0], "fro"), np.linalg.norm(x, axis=(0, 2), keepdims=True),
               np.linalg.norm(x[0, 0], 3), np.linalg.norm(x[0, 0], 0), np.linalg.norm(x[0, 0], -np.inf),
               np.linalg.norm(x, ord=np.inf, axis=(2, 0))),
    lambda x: (np.matrix_transpose(x), np.linalg.matrix_transpose(x[0]), np.linalg.matmul(x, x.mT),
               np.vecdot(x, x), np.vecdot(x[0], x[1], axis=0), np.linalg.vecdot(x, x[0]),
               np.linalg.outer(x[0, 0], x[1, 1])),
], ids=lambda f: "")
def test_more_numpy_functions(fn):
    compare(lumen.jit(fn)(X), fn(X))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "float32", "bool"])
def test_more_numpy_functions_dtypes(dtype):
    x = sample((4, 5), dtype)
    check(lambda x: (np.take(x, np.array([1, 0]), axis=1), np.flip(x), np.trace(x), np.diag(x[0]),
                     np.tile(x, 2), np.repeat(x, 2, axis=0), np.roll(x, 1), np.count_nonzero(x),
                     np.linalg.norm(x), np.vecdot(x, x), np.tensordot(x, x, axes=([1], [1])),
                     np.average(x, axis=0), np.diff(x)), x)


def test_nan_aware_reductions():
    x = sample((4, 5), "float64")
    x[1, 2] = x[3, 0] = np.nan
    x[2] = np.nan
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(lambda x: (np.nansum(x), np.nansum(x, axis=0), np.nanprod(x, axis=1), np.nanmean(x),
                         np.nanmean(x, axis=1), np.nanmax(x, axis=1), np.nanmin(x, axis=0),
                         np.nanmax(x), np.nanmean(x.astype(np.float32), axis=0),
                         np.nansum(x[0].astype(np.int32))), x)


def test_more_functions_shape_generic():
    f = lumen.jit(lambda x: (np.flip(x, 0), np.roll(x, 1, axis=0), np.diagonal(x), np.trace(x),
                             np.tile(x, (1, 2)), np.repeat(x, 2, axis=0), np.diff(x, axis=0),
                             np.take(x, np.array([0, -1]), axis=0)))
    for n in (3, 5, 8):
        x = sample((n, 4), seed=n)
        compare(f(x), (np.flip(x, 0), np.roll(x, 1, axis=0), np.diagonal(x), np.trace(x),
                       np.tile(x, (1, 2)), np.repeat(x, 2, axis=0), np.diff(x, axis=0),
                       np.take(x, np.array([0, -1]), axis=0)))
    assert f.cache_info()["compiles"] == 1


def test_more_functions_errors():
    with pytest.raises(ValueError):
        lumen.jit(lambda x: np.split(x, 3))(X)
    with pytest.raises(IndexError):
        lumen.jit(lambda x: np.take(x, np.array([9]), axis=1))(X)
    with pytest.raises(ValueError):
        lumen.jit(lambda x: np.diagonal(x[0, 0]))(X)
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: np.repeat(x, np.array([1, 2, 1, 1])))(X)
    with pytest.raises(lumen.UnsupportedError):
        lumen.jit(lambda x: np.linalg.norm(x[0], 2))(X)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matmul_few_rows_times_a_large_transposed_matrix(dtype):
    """A @ B.T with m < n, n >= 256 and k >= 64 is computed in column-major order into a
    scratch block and transposed into place (linalg._transposed_product); on each side of the
    size limits, batched, scaled (alpha) and with a transposed A (which keeps BLAS's order)."""
    from lumen.codegen_llvm.lower.linalg import SWAP_MIN_K, SWAP_MIN_N
    f = lumen.jit(lambda a, w: (a @ w.T, 0.5 * (a @ w.T), a.T.T @ w[:3].T[:, :2]))
    for m, n, k in ((2, SWAP_MIN_N, SWAP_MIN_K), (17, 300, 100), (2, SWAP_MIN_N - 1, 100),
                    (5, 300, SWAP_MIN_K - 1), (300, 300, 80), (299, 300, 80)):
        a, w = sample((m, k), dtype, m), sample((n, k), dtype, n)
        compare(f(a, w), (a @ w.T, 0.5 * (a @ w.T), a @ w[:3].T[:, :2]))
    batched = lumen.jit(lambda a, w: a @ w.mT)
    a, w = sample((3, 4, 70), dtype, 1), sample((3, 260, 70), dtype, 2)
    compare(batched(a, w), a @ w.mT)
    ir = batched.lower(a, w).llvm_ir()
    product = ir[ir.index('define internal void @"lumen.product.'):]
    product = product[:product.index("\n}")]
    assert 'call void @"lumen.copy.2d.' in product         # the transposing copy is emitted


@pytest.mark.parametrize("dtype", ["bool", "int16", "float32", "float64", "uint64"])
def test_strided_copies_share_one_function(dtype):
    """Every strided copy of a rank and element size calls one function of the module (a
    reshaped transpose, a reversed slice, a broadcast bias into a gemm's result); contiguous
    copies are one memmove. The numbers are NumPy's for each dtype."""
    import re
    f = lumen.jit(lambda x, v: (np.reshape(x.T, -1), np.reshape(x[::-1, ::2], -1),
                                np.reshape(x[::-1], -1), np.reshape(v[::-1], -1),
                                x))
    x, v = sample((7, 6), dtype), sample((9,), dtype, 1)
    compare(f(x, v), (np.reshape(x.T, -1), np.reshape(x[::-1, ::2], -1),
                      np.reshape(x[::-1], -1), np.reshape(v[::-1], -1), x))
    ir = f.lower(x, v).llvm_ir()
    assert "llvm.memmove" in ir                 # the result that is x: a contiguous copy
    size = np.dtype(dtype).itemsize
    assert len(re.findall(rf'define internal void @"lumen\.copy\.2d\.{size}\.', ir)) == 1
    assert len(re.findall(rf'call void @"lumen\.copy\.2d\.{size}\.', ir)) >= 3
    assert len(re.findall(rf'define internal void @"lumen\.copy\.1d\.{size}\.', ir)) == 1
    if dtype.startswith("float"):
        b = sample((6,), dtype, 2)
        gemm = lumen.jit(lambda x, w, b: (x @ w + b, x[::2] @ w[::-1] + b))
        w = sample((6, 5), dtype, 3)[:, :5]
        compare(gemm(x, w[:6], b[:5]), (x @ w + b[:5], x[::2] @ w[::-1] + b[:5]))
