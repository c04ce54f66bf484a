"""The NumPy (and scipy.special) functions lumen traces, dispatched from `Tracer`'s
``__array_ufunc__`` and ``__array_function__``."""
from __future__ import annotations

import sys

import numpy as np

from ..errors import UnsupportedError
from ..ir.ops.elementwise import UFUNCS
from . import ops
from .source import user_location

_REDUCE_METHOD = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
                  "logical_and": "all", "logical_or": "any"}
_ACCUMULATE = {"add": "cumsum", "multiply": "cumprod"}


def apply_ufunc(ufunc, method, inputs, kwargs):
    name = ufunc.__name__
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in (out if isinstance(out, tuple) else (out,))):
        raise UnsupportedError(f"{name}(..., out=...) is not supported inside lumen.jit")
    if kwargs.get("where", True) is not True:
        raise UnsupportedError(f"{name}(..., where=...) is not supported; use np.where")
    kwargs.pop("where", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("casting", None)
    if method == "__call__":
        if name == "matmul":
            return ops.matmul(*inputs)
        if name == "vecdot":
            return _vecdot(*inputs, axis=kwargs.pop("axis", -1))
        if kwargs:
            raise UnsupportedError(f"{name}: keyword arguments {sorted(kwargs)} are not supported")
        if name not in UFUNCS:
            raise UnsupportedError(f"the ufunc {_qualname(ufunc)} is not supported by lumen")
        return ops.ufunc(name, *inputs, dtype=dtype)
    if method == "reduce" and name in _REDUCE_METHOD:
        axis = kwargs.pop("axis", 0)
        return ops.reduce(_REDUCE_METHOD[name], inputs[0], axis, kwargs.pop("keepdims", False), dtype)
    if method == "accumulate" and name in _ACCUMULATE:
        return ops.cumulative(_ACCUMULATE[name], inputs[0], kwargs.pop("axis", 0), dtype)
    raise UnsupportedError(f"{_qualname(ufunc)}.{method} is not supported by lumen")


def _qualname(f):
    sc = sys.modules.get("scipy.special")
    module = getattr(f, "__module__", None) or ("scipy.special" if getattr(sc, f.__name__, None)
                                                 is f else "numpy")
    return f"{module}.{f.__name__}"


def apply_function(func, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        name = f"{getattr(func, '__module__', None) or 'numpy'}.{getattr(func, '__name__', func)}"
        loc = user_location()
        where = f" (at {loc})" if loc else ""
        raise UnsupportedError(f"{name} is not supported by lumen{where}")
    return impl(*args, **kwargs)


def _reduction(op):
    def impl(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        _reject(out, kw, op)
        return ops.reduce(op, a, axis, keepdims, dtype)
    return impl


def _minmax(op):
    def impl(a, axis=None, out=None, keepdims=False, **kw):
        _reject(out, kw, op)
        return ops.reduce(op, a, axis, keepdims)
    return impl


def _reject(out, kw, name):
    if out is not None:
        raise UnsupportedError(f"np.{name}(..., out=...) is not supported inside lumen.jit")
    kw = {k: v for k, v in kw.items()
          if not (k == "where" and v is True) and not (k == "initial" and v is None)}
    if kw:
        raise UnsupportedError(f"np.{name}: keyword arguments {sorted(kw)} are not supported")


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _reject(out, kw, "mean")
    return ops.mean(a, axis, dtype, keepdims)


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _reject(out, kw, "var")
    return ops.var(a, axis, dtype, ddof, keepdims)


def _std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _reject(out, kw, "std")
    return ops.std(a, axis, dtype, ddof, keepdims)


def _cum(op):
    def impl(a, axis=None, dtype=None, out=None):
        _reject(out, {}, op)
        return ops.cumulative(op, a, axis, dtype)
    return impl


def _like(fill):
    def impl(a, dtype=None, order="K", subok=True, shape=None, **kw):
        return ops.full_like(a, fill, dtype, shape)
    return impl


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kw):
    return ops.full_like(a, fill_value, dtype, shape)


def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    return ops.reshape(a, shape if shape is not None else newshape)


def _transpose(a, axes=None):
    return ops.transpose(a, axes)


def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise UnsupportedError("np.where(condition) with one argument gives data-dependent "
                               "sizes, which lumen does not compile; pass x and y")
    return ops.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kw):
    _reject(out, kw, "clip")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    return ops.clip(a, lo, hi)


def _round(a, decimals=0, out=None):
    _reject(out, {}, "round")
    return ops.round_(a, decimals)


def _concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    _reject(out, {}, "concatenate")
    return ops.concatenate(arrays, axis, dtype)


def _stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    _reject(out, {}, "stack")
    if dtype is not None:
        arrays = [ops.astype(a, dtype) for a in arrays]
    return ops.stack(arrays, axis)


def _atleast_2d_rows(arrays):
    return [ops.reshape(a, (1, -1)) if ops.to_value(a).ndim == 1 else a for a in arrays]


def _vstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [ops.reshape(a, (1,)) if ops.to_value(a).ndim == 0 else a for a in tup]
    return ops.concatenate(_atleast_2d_rows(arrays), 0, dtype)


def _hstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [ops.reshape(a, (1,)) if ops.to_value(a).ndim == 0 else a for a in tup]
    axis = 0 if ops.to_value(arrays[0]).ndim == 1 else 1
    return ops.concatenate(arrays, axis, dtype)


def _argreduce(op):
    def impl(a, axis=None, out=None, *, keepdims=False):
        _reject(out, {}, op)
        return ops.reduce(op, a, axis, keepdims)
    return impl


def _squeeze(a, axis=None):
    return ops.squeeze(a, axis)


def _expand_dims(a, axis):
    return ops.expand_dims(a, axis)


def _ravel(a, order="C"):
    return ops.reshape(a, (-1,))


def _shape(a):
    return ops.to_value(a).shape


def _ndim(a):
    return ops.to_value(a).ndim


def _size(a, axis=None):
    from ..ir.dims import prod
    v = ops.to_value(a)
    return prod(v.shape) if axis is None else v.shape[axis]


def _astype(x, dtype, /, *, copy=True, device=None):
    return ops.astype(x, dtype)


def _copy(a, order="K", subok=False):
    return ops.wrap(ops.to_value(a))


def _broadcast_to(array, shape, subok=False):
    return ops.broadcast_view(array, shape)


def _moveaxis(a, source, destination):
    return ops.moveaxis(a, source, destination)


def _swapaxes(a, axis1, axis2):
    return ops.swapaxes(a, axis1, axis2)


FUNCTIONS = {
    np.sum: _reduction("sum"), np.prod: _reduction("prod"),
    np.max: _minmax("max"), np.min: _minmax("min"), np.amax: _minmax("max"),
    np.amin: _minmax("min"), np.any: _minmax("any"), np.all: _minmax("all"),
    np.argmax: _argreduce("argmax"), np.argmin: _argreduce("argmin"),
    np.mean: _mean, np.var: _var, np.std: _std,
    np.cumsum: _cum("cumsum"), np.cumprod: _cum("cumprod"),
    np.zeros_like: _like(0), np.ones_like: _like(1), np.empty_like: _like(0),
    np.full_like: _full_like,
    np.reshape: _reshape, np.transpose: _transpose, np.swapaxes: _swapaxes,
    np.moveaxis: _moveaxis, np.squeeze: _squeeze, np.expand_dims: _expand_dims,
    np.ravel: _ravel, np.broadcast_to: _broadcast_to,
    np.broadcast_arrays: lambda *a, subok=False: ops.broadcast_arrays(*a),
    np.concatenate: _concatenate, np.stack: _stack, np.vstack: _vstack, np.hstack: _hstack,
    np.where: _where, np.clip: _clip, np.round: _round, np.around: _round,
    np.dot: lambda a, b, out=None: ops.dot(a, b), np.outer: lambda a, b, out=None: ops.outer(a, b),
    np.shape: _shape, np.ndim: _ndim, np.size: _size,
    np.astype: _astype, np.copy: _copy,
}


# -- more NumPy functions, composed from the primitives above ---------------------------------
# Each is written the way NumPy defines it (same result dtype and shape), so that rewrites and
# autodiff see ordinary primitives.

def _axis_key(ndim, axis, entry):
    """An indexing key that applies ``entry`` on ``axis`` (full slices elsewhere)."""
    return (slice(None),) * axis + (entry,)


def _norm_axis(a, axis):
    from ..ir.ops.base import normalize_axis
    return normalize_axis(axis, ops.to_value(a).ndim)


def _take(a, indices, axis=None, out=None, mode="raise"):
    _reject(out, {}, "take")
    if axis is None:
        a, axis = ops.reshape(a, (-1,)), 0
    axis = _norm_axis(a, axis)
    if mode != "raise":
        n = ops.to_value(a).shape[axis]
        if mode == "wrap":
            indices = ops.ufunc("remainder", indices, n)
        elif mode == "clip":
            indices = ops.clip(indices, 0, n - 1)
        else:
            raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    return ops.wrap(ops.to_value(_getitem(a, _axis_key(ops.to_value(a).ndim, axis, indices))))


def _getitem(a, key):
    from .indexing import getitem
    return getitem(a if hasattr(a, "_value") else ops.wrap(ops.to_value(a)), key)


def _take_along_axis(arr, indices, axis=-1):
    if axis is None:
        return _getitem(ops.reshape(arr, (-1,)), ops.wrap(ops.to_value(indices)))
    v, idx = ops.to_value(arr), ops.to_value(indices)
    if idx.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    if idx.ndim != v.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    axis = _norm_axis(arr, axis)
    key = []
    for j in range(v.ndim):
        if j == axis:
            key.append(ops.wrap(idx))
        else:
            shape = [1] * v.ndim
            shape[j] = v.shape[j]
            key.append(ops.reshape(ops.arange_like(v.shape[j]), tuple(shape)))
    return ops.wrap(ops.to_value(_getitem(arr, tuple(key))))


def _flip(m, axis=None):
    nd = ops.to_value(m).ndim
    axes = range(nd) if axis is None else [_norm_axis(m, a) for a in ops._shape_arg(axis)]
    key = [slice(None)] * nd
    for a in axes:
        key[a] = slice(None, None, -1)
    return _getitem(m, tuple(key))


def _atleast(ndim):
    def one(a):
        v = ops.to_value(a)
        if v.ndim >= ndim:
            return ops.wrap(v) if not hasattr(a, "_value") else a
        if ndim == 3 and v.ndim == 1:
            return ops.reshape(a, (1, v.shape[0], 1))
        if ndim == 3 and v.ndim == 2:
            return ops.reshape(a, tuple(v.shape) + (1,))
        return ops.reshape(a, (1,) * (ndim - v.ndim) + tuple(v.shape))

    def impl(*arys):
        out = [one(a) for a in arys]
        return out[0] if len(out) == 1 else tuple(out)
    return impl


def _tensordot(a, b, axes=2):
    x, y = ops.to_value(a), ops.to_value(b)
    if isinstance(axes, int):
        ax_a, ax_b = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        ax_a, ax_b = ([axes_i] if isinstance(axes_i, int) else list(axes_i) for axes_i in axes)
    ax_a = [_norm_axis(a, i) for i in ax_a]
    ax_b = [_norm_axis(b, i) for i in ax_b]
    if len(ax_a) != len(ax_b):
        raise ValueError("shape-mismatch for sum")
    free_a = [i for i in range(x.ndim) if i not in ax_a]
    free_b = [i for i in range(y.ndim) if i not in ax_b]
    from ..ir.dims import prod
    k = prod(x.shape[i] for i in ax_a)
    left = ops.reshape(ops.transpose(ops.wrap(x), free_a + ax_a), (prod(x.shape[i] for i in free_a), k))
    right = ops.reshape(ops.transpose(ops.wrap(y), ax_b + free_b), (k, prod(y.shape[i] for i in free_b)))
    out = ops.matmul(left, right)
    return ops.reshape(out, tuple(x.shape[i] for i in free_a) + tuple(y.shape[i] for i in free_b))


def _inner(a, b):
    x, y = ops.to_value(a), ops.to_value(b)
    if x.ndim == 0 or y.ndim == 0:
        return ops.dot(a, b)
    return _tensordot(a, b, ([-1], [-1]))


def _vdot(a, b):
    return ops.dot(ops.reshape(a, (-1,)), ops.reshape(b, (-1,)))


def _diagonal(a, offset=0, axis1=0, axis2=1):
    v = ops.to_value(a)
    if v.ndim < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    ax1, ax2 = _norm_axis(a, axis1), _norm_axis(a, axis2)
    if ax1 == ax2:
        raise ValueError("axis1 and axis2 cannot be the same")
    from ..ir.dims import dmax, dmin
    n1, n2 = v.shape[ax1], v.shape[ax2]
    length = dmax(dmin(n1, n2 - offset) if offset >= 0 else dmin(n1 + offset, n2), 0)
    moved = ops.transpose(ops.wrap(v), [i for i in range(v.ndim) if i not in (ax1, ax2)] + [ax1, ax2])
    i = ops.arange_like(length)
    rows, cols = (i, ops.ufunc("add", i, offset)) if offset >= 0 else (ops.ufunc("subtract", i, offset), i)
    return ops.wrap(ops.to_value(_getitem(moved, (Ellipsis, rows, cols))))


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _reject(out, {}, "trace")
    return ops.reduce("sum", _diagonal(a, offset, axis1, axis2), -1, False, dtype)


def _diag(v, k=0):
    val = ops.to_value(v)
    if val.ndim == 2:
        return _diagonal(v, k)
    if val.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = val.shape[0] + abs(k)
    i = ops.arange_like(val.shape[0])
    rows, cols = (i, ops.ufunc("add", i, k)) if k >= 0 else (ops.ufunc("subtract", i, k), i)
    from .indexing import setitem
    zeros = ops.full_like(ops.wrap(val), 0, val.dtype, (n, n))
    return setitem(zeros, (rows, cols), ops.wrap(val))


def _diff(a, n=1, axis=-1, prepend=None, append=None):
    nd = ops.to_value(a).ndim
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = _norm_axis(a, axis)
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, a, append) if p is not None]
        edge = list(ops.to_value(a).shape)
        edge[ax] = 1
        a = ops.concatenate([ops.broadcast_to(p, tuple(edge)) if ops.to_value(p).ndim == 0 else p
                             for p in parts], ax)
    for _ in range(n):
        hi = _getitem(a, _axis_key(nd, ax, slice(1, None)))
        lo = _getitem(a, _axis_key(nd, ax, slice(None, -1)))
        a = ops.ufunc("not_equal" if ops.to_value(a).dtype.kind == "b" else "subtract", hi, lo)
    return a


def _roll(a, shift, axis=None):
    if axis is None:
        shape = ops.to_value(a).shape
        return ops.reshape(_roll(ops.reshape(a, (-1,)), shift, 0), tuple(shape))
    shifts = ops._shape_arg(shift)
    axes = ops._shape_arg(axis)
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    if len(axes) == 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise ValueError("'shift' and 'axis' should be scalars or 1D sequences")
    out = a
    for s, ax in zip(shifts, axes):
        n = ops.to_value(out).shape[_norm_axis(out, ax)]
        index = ops.ufunc("remainder", ops.ufunc("subtract", ops.arange_like(n), int(s)), n)
        out = _take(out, index, ax)
    return out


def _count_nonzero(a, axis=None, *, keepdims=False):
    return ops.reduce("sum", ops.astype(a, bool), axis, keepdims, np.intp)


def _ptp(a, axis=None, out=None, keepdims=False):
    _reject(out, {}, "ptp")
    return ops.ufunc("subtract", ops.reduce("max", a, axis, keepdims), ops.reduce("min", a, axis, keepdims))


def _average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    if weights is None:
        avg = ops.mean(a, axis, None, keepdims)
        if not returned:
            return avg
        v = ops.to_value(a)
        count = ops.wrap(ops.cast_value(ops.to_value(ops.full_like(avg, ops.count(v, axis))),
                                        ops.to_value(avg).dtype))
        return avg, count
    v, w = ops.to_value(a), ops.to_value(weights)
    kinds = [v.dtype, w.dtype] + (["f8"] if v.dtype.kind in "iub" else [])
    dt = np.result_type(*kinds)
    if w.ndim != v.ndim:
        if axis is None:
            raise TypeError("Axis must be specified when shapes of a and weights differ.")
        if w.ndim != 1:
            raise TypeError("1D weights expected when shapes of a and weights differ.")
        ax = _norm_axis(a, axis)
        shape = [1] * v.ndim
        shape[ax] = w.shape[0]
        weights = ops.reshape(weights, tuple(shape))
    scl = ops.reduce("sum", ops.broadcast_to(ops.astype(weights, dt), tuple(v.shape)), axis, keepdims, dt)
    total = ops.reduce("sum", ops.ufunc("multiply", a, weights, dtype=dt), axis, keepdims, dt)
    avg = ops.ufunc("divide", total, scl)
    return (avg, scl) if returned else avg


def _column_stack(tup):
    cols = [ops.reshape(c, (-1, 1)) if ops.to_value(c).ndim < 2 else c for c in tup]
    return ops.concatenate(cols, 1)


def _tile(A, reps):
    reps = tuple(int(r) for r in ops._shape_arg(reps))
    v = ops.to_value(A)
    nd = max(v.ndim, len(reps))
    shape = (1,) * (nd - v.ndim) + tuple(v.shape)
    reps = (1,) * (nd - len(reps)) + reps
    spread = ops.reshape(A, tuple(d for n in shape for d in (1, n)))
    big = ops.broadcast_to(spread, tuple(d for r, n in zip(reps, shape) for d in (r, n)))
    return ops.reshape(big, tuple(r * n for r, n in zip(reps, shape)))


def _repeat(a, repeats, axis=None):
    if not isinstance(repeats, (int, np.integer)):
        raise UnsupportedError("np.repeat with an array of repeats gives a data-dependent size; "
                               "lumen supports an int number of repeats")
    if axis is None:
        a, axis = ops.reshape(a, (-1,)), 0
    v = ops.to_value(a)
    axis = _norm_axis(a, axis)
    r = int(repeats)
    if r < 0:
        raise ValueError("negative dimensions are not allowed")
    spread = ops.expand_dims(a, axis + 1)
    shape = list(v.shape[:axis + 1]) + [r] + list(v.shape[axis + 1:])
    out_shape = list(v.shape)
    out_shape[axis] = v.shape[axis] * r
    return ops.reshape(ops.broadcast_to(spread, tuple(shape)), tuple(out_shape))


def _split(ary, indices_or_sections, axis=0, exact=True):
    v = ops.to_value(ary)
    axis = _norm_axis(ary, axis)
    n = v.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        total = int(n)                       # the pieces' sizes depend on it: specialise
        if exact and total % sections:
            raise ValueError("array split does not result in an equal division")
        each, extra = divmod(total, sections)
        bounds, pos = [], 0
        for i in range(sections):
            bounds.append(pos)
            pos += each + (1 if i < extra else 0)
        cuts = bounds[1:]
    else:
        cuts = [int(c) if not hasattr(c, "hint") else c for c in indices_or_sections]
    edges = [None] + list(cuts) + [None]
    return [_getitem(ary, _axis_key(v.ndim, axis, slice(lo, hi)))
            for lo, hi in zip(edges[:-1], edges[1:])]


def _array_split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, exact=False)


def _norm(x, ord=None, axis=None, keepdims=False):
    v = ops.to_value(x)
    if v.dtype.kind != "f":
        x = ops.astype(x, np.float64)
    if axis is None and ord is None:
        flat = ops.reshape(x, (-1,))
        out = ops.ufunc("sqrt", ops.reduce("sum", ops.ufunc("multiply", flat, flat)))
        return ops.reshape(out, (1,) * v.ndim) if keepdims else out
    if axis is None:
        axis = tuple(range(v.ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    absx = ops.ufunc("absolute", x)
    if len(axes) == 1:
        if ord is None or ord == 2:
            return ops.ufunc("sqrt", ops.reduce("sum", ops.ufunc("multiply", x, x), axes, keepdims))
        if ord == np.inf:
            return ops.reduce("max", absx, axes, keepdims)
        if ord == -np.inf:
            return ops.reduce("min", absx, axes, keepdims)
        if ord == 0:
            return ops.reduce("sum", ops.astype(ops.ufunc("not_equal", x, 0), ops.to_value(x).dtype),
                              axes, keepdims)
        if ord == 1:
            return ops.reduce("sum", absx, axes, keepdims)
        p = float(ord)
        return ops.ufunc("power", ops.reduce("sum", ops.ufunc("power", absx, p), axes, keepdims), 1.0 / p)
    if len(axes) == 2:
        r, c = (_norm_axis(x, a) for a in axes)
        if ord in (None, "fro"):
            return ops.ufunc("sqrt", ops.reduce("sum", ops.ufunc("multiply", x, x), (r, c), keepdims))
        if ord in (1, -1, np.inf, -np.inf):
            along, then = (r, c) if ord in (1, -1) else (c, r)
            sums = ops.reduce("sum", absx, along, True)
            pick = "max" if ord in (1, np.inf) else "min"
            out = ops.reduce(pick, sums, then, True)
            return out if keepdims else ops.squeeze(out, (r, c))
        raise UnsupportedError(f"np.linalg.norm with ord={ord!r} for matrices needs a singular "
                               "value decomposition, which lumen does not compile")
    raise ValueError("Improper number of dimensions to norm.")


def _vecdot(a, b, axis=-1):
    """np.vecdot: sum over ``axis`` of a * b in the ufunc's own loop dtype (int8 stays int8)."""
    prod_ = ops.ufunc("multiply", a, b)
    return ops.reduce("sum", prod_, axis, False, ops.to_value(prod_).dtype)


def _matrix_transpose(x, /):
    if ops.to_value(x).ndim < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return ops.swapaxes(x, -1, -2)


def _nan_filled(a, fill):
    """``a`` with NaNs replaced by ``fill`` (integer and bool arrays have none)."""
    if ops.to_value(a).dtype.kind != "f":
        return a
    return ops.where(ops.ufunc("isnan", a), fill, a)


def _nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _reject(out, kw, "nansum")
    return ops.reduce("sum", _nan_filled(a, 0), axis, keepdims, dtype)


def _nanprod(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _reject(out, kw, "nanprod")
    return ops.reduce("prod", _nan_filled(a, 1), axis, keepdims, dtype)


def _nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _reject(out, kw, "nanmean")
    if ops.to_value(a).dtype.kind != "f":
        return ops.mean(a, axis, dtype, keepdims)
    valid = ops.ufunc("logical_not", ops.ufunc("isnan", a))
    total = ops.reduce("sum", _nan_filled(a, 0), axis, keepdims, dtype)
    count = ops.reduce("sum", valid, axis, keepdims, np.intp)
    return ops.ufunc("divide", total, ops.astype(count, ops.to_value(total).dtype))


def _nanminmax(op):
    def impl(a, axis=None, out=None, keepdims=False, **kw):
        _reject(out, kw, f"nan{op}")
        if ops.to_value(a).dtype.kind != "f":
            return ops.reduce(op, a, axis, keepdims)
        nan = ops.ufunc("isnan", a)
        best = ops.reduce(op, _nan_filled(a, -np.inf if op == "max" else np.inf), axis, keepdims)
        return ops.where(ops.reduce("all", nan, axis, keepdims), np.nan, best)
    return impl


FUNCTIONS.update({
    np.take: _take, np.take_along_axis: _take_along_axis,
    np.flip: _flip, np.fliplr: lambda m: _flip(m, 1), np.flipud: lambda m: _flip(m, 0),
    np.atleast_1d: _atleast(1), np.atleast_2d: _atleast(2), np.atleast_3d: _atleast(3),
    np.tensordot: _tensordot, np.inner: _inner, np.vdot: _vdot,
    np.diagonal: _diagonal, np.trace: _trace, np.diag: _diag, np.diff: _diff, np.roll: _roll,
    np.count_nonzero: _count_nonzero, np.ptp: _ptp, np.average: _average,
    np.column_stack: _column_stack, np.tile: _tile, np.repeat: _repeat,
    np.split: _split, np.array_split: _array_split,
    np.hsplit: lambda a, s: _split(a, s, 1 if ops.to_value(a).ndim > 1 else 0),
    np.vsplit: lambda a, s: _split(a, s, 0),
    np.linalg.norm: _norm, np.matrix_transpose: _matrix_transpose,
    np.linalg.matrix_transpose: _matrix_transpose, np.linalg.outer: lambda a, b, /: ops.outer(a, b),
    np.linalg.vecdot: lambda a, b, /, *, axis=-1: _vecdot(a, b, axis),
    np.linalg.matmul: lambda a, b, /: ops.matmul(a, b),
    np.nansum: _nansum, np.nanprod: _nanprod, np.nanmean: _nanmean,
    np.nanmax: _nanminmax("max"), np.nanmin: _nanminmax("min"),
})


def _pad_pairs(arg, ndim, what):
    """NumPy's ``pad_width`` / ``constant_values`` forms (a scalar, one (before, after) pair,
    or one pair per axis) as one (before, after) pair per axis."""
    arr = np.asarray(arg, dtype=object)
    if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 2) or arr.size == 0:
        raise ValueError(f"np.pad: {what} must be a scalar, a (before, after) pair or one pair "
                         f"per axis; got {arg!r}")
    try:
        return [tuple(row) for row in np.broadcast_to(arr, (ndim, 2))]
    except ValueError:
        raise ValueError(f"np.pad: {what} {arg!r} does not fit an array of {ndim} "
                         "dimensions") from None


def _pad(array, pad_width, mode="constant", **kwargs):
    """np.pad in ``constant`` mode: the array between constant blocks, one concatenate per
    padded axis (so autodiff slices the cotangent back out)."""
    if mode != "constant":
        raise UnsupportedError(f"np.pad(..., mode={mode!r}) is not supported by lumen; "
                               "mode='constant' is")
    values = kwargs.pop("constant_values", 0)
    if kwargs:
        raise UnsupportedError(f"np.pad: keyword arguments {sorted(kwargs)} are not supported")
    ndim = ops.to_value(array).ndim
    widths = _pad_pairs(pad_width, ndim, "pad_width")
    fills = _pad_pairs(values, ndim, "constant_values")
    out = array
    for axis, (width, fill) in enumerate(zip(widths, fills)):
        if any(isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer))
               for w in width):
            raise TypeError(f"np.pad: pad_width must be integers; got {pad_width!r}")
        if min(width) < 0:
            raise ValueError(f"np.pad: index can't contain negative values; got {pad_width!r}")
        shape = list(ops.to_value(out).shape)
        parts = []
        for w, v, side in zip(width, fill, ("before", "after")):
            if w:
                shape[axis] = int(w)
                parts.append(ops.full_like(out, v, shape=tuple(shape)))
            if side == "before":
                parts.append(out)
        if len(parts) > 1:
            out = ops.concatenate(parts, axis, ops.to_value(array).dtype)
    return out


FUNCTIONS[np.pad] = _pad
