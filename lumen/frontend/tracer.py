"""`Tracer`: what a jitted function's arguments are while it is traced.

It intercepts NumPy through NEP 13 (`__array_ufunc__`) and NEP 18 (`__array_function__`), the
operators and the ndarray methods, and records primitives into the current trace.
"""
from __future__ import annotations

import numpy as np

from ..errors import TracingError, UnsupportedError
from . import ops
from .source import at_user_line, user_location


def _no_python_value(what):
    return TracingError(
        f"{what} of a traced array{at_user_line()}: its value is only known when the compiled "
        "code runs. "
        "For data-dependent branches use lumen.cond(pred, true_fn, false_fn, ...) or np.where; "
        "for sizes use x.shape.")


class Tracer:
    """A traced array. A tracer made by basic slicing is a *view*: it reads its base array at
    ``key`` (again whenever the base was written to), and writes to it go through to the base,
    as NumPy's views do."""

    __slots__ = ("_val", "_base", "_key", "_seen", "_version", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, value, base=None, key=None):
        self._val = value
        self._base, self._key = base, key
        self._version = 0
        self._seen = base._state() if base is not None else None

    def _state(self):
        return (self._version, self._base._state() if self._base is not None else None)

    @property
    def _value(self):
        if self._base is not None and self._seen != self._base._state():
            from .indexing import getitem
            self._val = getitem(self._base, self._key)._val
            self._seen = self._base._state()
        return self._val

    def _assign(self, value, what):
        """Give this array new contents (``x[k] = v``, ``x += y``), through to a viewed base."""
        if self._base is not None:
            self._base.__setitem__(self._key, Tracer(value))
            return
        self._check_writable(what)
        self._val = value
        self._version += 1

    # -- attributes ---------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self._value.shape)

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def size(self):
        from ..ir.dims import prod
        return prod(self._value.shape)

    @property
    def T(self):
        return ops.transpose(self)

    @property
    def mT(self):
        return ops.swapaxes(self, -1, -2)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return int(self._value.shape[0])

    def __repr__(self):
        return f"Tracer({self._value.type.text()})"

    # -- NumPy protocols ------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .numpy_api import apply_ufunc
        return apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .numpy_api import apply_function
        return apply_function(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        raise _no_python_value(
            "conversion to a NumPy array (np.asarray / np.array, or a library function that "
            "converts its input, such as a scipy.special function imported by name: call "
            "scipy.special.NAME through the module, or use lumen.nn)")

    def __bool__(self):
        raise _no_python_value("the truth value")

    def __float__(self):
        raise _no_python_value("float()")

    def __int__(self):
        raise _no_python_value("int()")

    def __index__(self):
        raise _no_python_value("use as an index")

    def item(self, *args):
        raise _no_python_value(".item()")

    def tolist(self):
        raise _no_python_value(".tolist()")

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        raise TypeError("unhashable type: traced array")

    # -- indexing ----------------------------------------------------------------------------------
    def __getitem__(self, key):
        from .indexing import getitem
        return getitem(self, key)

    def __setitem__(self, key, value):
        from .indexing import setitem
        self._assign(setitem(self, key, value)._value, "assignment to an element")

    def _check_writable(self, what):
        from .trace import current
        if id(self) in current().argument_ids:
            raise UnsupportedError(f"{what} of the argument array (at {user_location()}): a "
                                   "compiled function never modifies its inputs. Make a local "
                                   "copy first (x = x.copy()) or use an expression (x = x + 1).")

    # -- methods -----------------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return ops.astype(self, dtype)

    def copy(self, order="C"):
        return Tracer(self._value)

    def reshape(self, *shape, order="C"):
        if order != "C":
            raise UnsupportedError("reshape with order other than 'C' is not supported")
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return ops.transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def swapaxes(self, a, b):
        return ops.swapaxes(self, a, b)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def ravel(self, order="C"):
        return ops.reshape(self, (-1,))

    def flatten(self, order="C"):
        """A flattened copy (never a view, unlike ravel)."""
        return Tracer(ops.reshape(self, (-1,))._value)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("sum", self, axis, keepdims, dtype)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("prod", self, axis, keepdims, dtype)

    def max(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("max", self, axis, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("min", self, axis, keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("any", self, axis, keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("all", self, axis, keepdims)

    def argmax(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("argmax", self, axis, keepdims)

    def argmin(self, axis=None, out=None, keepdims=False):
        _no_out(out)
        return ops.reduce("argmin", self, axis, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        _no_out(out)
        return ops.mean(self, axis, dtype, keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        _no_out(out)
        return ops.var(self, axis, dtype, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        _no_out(out)
        return ops.std(self, axis, dtype, ddof, keepdims)

    def cumsum(self, axis=None, dtype=None, out=None):
        _no_out(out)
        return ops.cumulative("cumsum", self, axis, dtype)

    def cumprod(self, axis=None, dtype=None, out=None):
        _no_out(out)
        return ops.cumulative("cumprod", self, axis, dtype)

    def clip(self, min=None, max=None, out=None):
        _no_out(out)
        return ops.clip(self, min, max)

    def round(self, decimals=0, out=None):
        _no_out(out)
        return ops.round_(self, decimals)

    def dot(self, other):
        return ops.dot(self, other)

    # -- operators ---------------------------------------------------------------------------------
    def __neg__(self): return ops.ufunc("negative", self)
    def __pos__(self): return ops.ufunc("positive", self)
    def __abs__(self): return ops.ufunc("absolute", self)
    def __invert__(self): return ops.ufunc("invert", self)
    def __matmul__(self, o): return ops.matmul(self, o)
    def __rmatmul__(self, o): return ops.matmul(o, self)

    def __imatmul__(self, o):
        return self._inplace(ops.matmul(self, o))

    def _inplace(self, result):
        """``x op= y``: NumPy keeps x's dtype (same-kind casting) and x's identity."""
        if result.dtype != self.dtype:
            if not np.can_cast(result.dtype, self.dtype, "same_kind"):
                raise TypeError(f"Cannot cast ufunc output from dtype('{result.dtype}') to "
                                f"dtype('{self.dtype}') with casting rule 'same_kind'")
            result = ops.astype(result, self.dtype)
        result = ops.broadcast_to(result, self.shape)
        self._assign(result._value, "in-place update")
        return self


def _binary(name, reflected=False):
    if reflected:
        return lambda self, o: ops.ufunc(name, o, self)
    return lambda self, o: ops.ufunc(name, self, o)


def _inplace(name):
    return lambda self, o: self._inplace(ops.ufunc(name, self, o))


for _dunder, _ufunc in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                        ("truediv", "divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                        ("pow", "power"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                        ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")):
    setattr(Tracer, f"__{_dunder}__", _binary(_ufunc))
    setattr(Tracer, f"__r{_dunder}__", _binary(_ufunc, True))
    setattr(Tracer, f"__i{_dunder}__", _inplace(_ufunc))

for _dunder, _ufunc in (("eq", "equal"), ("ne", "not_equal"), ("lt", "less"), ("le", "less_equal"),
                        ("gt", "greater"), ("ge", "greater_equal")):
    setattr(Tracer, f"__{_dunder}__", _binary(_ufunc))


def _no_out(out):
    if out is not None:
        raise UnsupportedError("out= arguments are not supported inside lumen.jit: results are "
                               "new arrays")
