"""The NumPy (and scipy.special) functions lumen traces, dispatched from `Tracer`'s
``__array_ufunc__`` and ``__array_function__``."""
from __future__ import annotations

import numpy as np
import scipy.special as sc

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
    module = getattr(f, "__module__", None) or ("scipy.special" if hasattr(sc, f.__name__) and
                                                 getattr(sc, f.__name__) is f else "numpy")
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
