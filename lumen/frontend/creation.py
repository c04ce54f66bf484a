"""Library functions that cannot see a tracer through NumPy's protocols, wrapped while a
function is traced.

``np.arange(x.shape[0])`` or ``np.zeros((n, 10))`` call NumPy with a size that is only known at
run time: a call whose size arguments include a symbolic size becomes a graph value, and
``np.zeros / ones / empty / full / eye`` always do (so traced values can be written into them;
``np.arange`` with concrete bounds stays an array, as loops over it need Python ints).
``scipy.special.logsumexp / softmax / log_softmax`` on a tracer become `lumen.nn`'s. Every
other call goes straight to the original, so other threads and ordinary arguments are
unaffected.
"""
from __future__ import annotations

import numpy as np

from ..ir.dims import Dim, as_dim, cdiv, dmax
from . import ops
from .trace_patch import TracePatch

_ORIGINAL = {name: getattr(np, name) for name in ("arange", "zeros", "ones", "empty", "full", "eye")}


def _has_dim(*args):
    for a in args:
        if isinstance(a, Dim) or isinstance(a, (tuple, list)) and any(isinstance(d, Dim) for d in a):
            return True
    return False


def _arange(start, stop=None, step=None, dtype=None, **kw):
    if not _has_dim(start, stop, step) or kw:
        args = [start] + ([stop] if stop is not None else []) + ([step] if step is not None else [])
        if step is not None and stop is None:
            args = [start, None, step]
        return _ORIGINAL["arange"](*args, dtype=dtype, **kw)
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else int(step)
    n = dmax(cdiv(as_dim(stop) - as_dim(start), step), 0) if step > 0 else \
        dmax(cdiv(as_dim(start) - as_dim(stop), -step), 0)
    out = ops.arange_like(n, dtype or np.int64)
    if step != 1:
        out = ops.ufunc("multiply", out, step)
    if not (isinstance(start, int) and start == 0):
        out = ops.ufunc("add", out, start)
    return ops.astype(out, dtype) if dtype is not None else out


def _filled(name, fill):
    """np.zeros / ones / empty while tracing: a graph value (so traced values can be written
    into it), whether its sizes are symbolic or not."""
    def constructor(shape, *args, **kw):
        if args or set(kw) - {"dtype"}:
            return _ORIGINAL[name](shape, *args, **kw)
        dtype = kw.get("dtype") or np.float64
        return ops.full_like(_ORIGINAL["zeros"]((), dtype), fill, dtype, shape)
    return constructor


def _full(shape, fill_value, dtype=None, **kw):
    if kw:
        return _ORIGINAL["full"](shape, fill_value, dtype, **kw)
    if dtype is None:
        from .tracer import Tracer
        dtype = ops.to_value(fill_value).dtype if isinstance(fill_value, Tracer) else \
            np.asarray(fill_value).dtype
    return ops.full_like(_ORIGINAL["zeros"]((), dtype), fill_value, dtype, shape)


def _eye(N, M=None, k=0, dtype=float, **kw):
    if kw:
        return _ORIGINAL["eye"](N, M, k, dtype, **kw)
    M = N if M is None else M
    rows = ops.expand_dims(ops.ufunc("add", ops.arange_like(as_dim(N)), k), 1)
    cols = ops.expand_dims(ops.arange_like(as_dim(M)), 0)
    return ops.astype(ops.ufunc("equal", rows, cols), dtype)


_WRAPPED = {"arange": _arange, "zeros": _filled("zeros", 0), "ones": _filled("ones", 1),
            "empty": _filled("empty", 0), "full": _full, "eye": _eye}


def _scipy(name):
    def wrapper(a, *args, **kw):
        from .tracer import Tracer
        if not isinstance(a, Tracer):
            return _PATCH.original("scipy.special", name)(a, *args, **kw)
        from .. import nn
        b = kw.pop("b", None) if name == "logsumexp" else None
        if b is not None or kw.pop("return_sign", False):
            from ..errors import UnsupportedError
            raise UnsupportedError(f"scipy.special.{name} with b= or return_sign= is not supported")
        if args:
            kw["axis"] = args[0]
        kw.setdefault("axis", None)         # scipy's default: over all elements
        return getattr(nn, name)(a, **kw)
    return wrapper


_SCIPY_WRAPPED = {name: _scipy(name) for name in ("logsumexp", "softmax", "log_softmax")}

#: scipy.special by name: patched where the traced function's module imported it.
_PATCH = TracePatch((np, _WRAPPED), ("scipy.special", _SCIPY_WRAPPED))


def symbolic_constructors():
    """Install the wrappers for the duration of a trace (nesting and threads are counted)."""
    return _PATCH.active()
