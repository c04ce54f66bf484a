"""NumPy semantics on traced values: each function here takes array-likes (tracers, Python
scalars, NumPy arrays, sizes) and emits primitives the way NumPy would compute the result."""
from __future__ import annotations

import operator

import numpy as np

from ..errors import UnsupportedError
from ..ir.dims import Dim, as_dim, prod
from ..ir.ops.base import broadcast_dims, normalize_axis
from ..ir.ops.elementwise import UFUNCS
from .trace import check_dtype, const_value, current, to_value, weak_kind


def wrap(value):
    from .tracer import Tracer
    return Tracer(value)


def emit(op, inputs, **params):
    return current().emit(op, inputs, **params)


def _vals(xs):
    return [to_value(x) for x in xs]


# -- elementwise ------------------------------------------------------------------------------

def cast_value(v, dtype):
    dtype = check_dtype(dtype)
    if v.dtype == dtype and not v.type.weak:
        return v
    if v.node is not None and v.node.op == "const" and not v.ndim:
        with np.errstate(all="ignore"):
            return const_value(v.node.params["value"].array.astype(dtype))
    return emit("cast", [v], dtype=dtype).out


def astype(x, dtype):
    return wrap(cast_value(to_value(x), dtype))


def ufunc(name, *xs, dtype=None):
    """Apply NumPy or scipy.special ufunc ``name`` with NumPy's dtype resolution (NEP 50)."""
    values = _vals(xs)
    uf = UFUNCS.get(name)
    if uf is None:
        raise UnsupportedError(f"the ufunc numpy.{name} is not supported by lumen")
    kinds = tuple(weak_kind(v) for v in values)
    try:
        if dtype is not None:
            loop = uf.resolve_dtypes(kinds + (None,), signature=(None,) * len(kinds) + (np.dtype(dtype),))
        else:
            loop = uf.resolve_dtypes(kinds + (None,))
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None
    for d in loop:
        check_dtype(d, f"result of {name}")
    wide = _out_of_range_literal(name, values, loop)
    if wide is not None:
        loop = (wide,) * len(values) + (loop[-1],)
    values = [cast_value(v, d) for v, d in zip(values, loop[:len(values)])]
    out = emit(name, values).out
    if out.dtype != loop[-1]:
        out = cast_value(out, loop[-1])
    return wrap(out)


_COMPARISONS = frozenset(("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"))


def _python_int_range(v):
    """For a Python int (a literal, or an argument specialised on its range): (bits of the
    narrowest signed type holding it, same for unsigned or None); else None."""
    if not (v.type.weak and v.dtype.kind in "iu"):
        return None
    if v.node is not None and v.node.op == "const":
        from .jit import int_range
        return int_range(int(v.node.params["value"].array))
    trace = current()
    known = trace.int_ranges.get(v)
    if known is None:
        return None
    trace.used_int_ranges.add(v)
    return known[1]


def _fits(bits, d) -> bool:
    return bits is not None and bits <= 8 * d.itemsize


def _out_of_range_literal(name, values, loop):
    """NEP 50 for Python ints the loop dtype cannot hold: comparisons are done exactly (in a
    wider dtype, returned here); anything else raises OverflowError, as NumPy does."""
    for v, d in zip(values, loop):
        if d.kind not in "iu" or d.itemsize == 8 and d.kind == "i":
            continue            # every Python int argument lumen takes fits int64
        r = _python_int_range(v)
        if r is None:
            continue
        signed, unsigned = r
        if _fits(signed if d.kind == "i" else unsigned, d):
            continue
        if name in _COMPARISONS:
            wide_ok = signed is not None and d != np.uint64
            return np.dtype(np.int64) if wide_ok else np.dtype(np.float64)
        what = int(v.node.params["value"].array) if v.node is not None else "argument"
        raise OverflowError(f"Python integer {what} out of bounds for {d}")
    return None


def result_dtype(*values):
    """np.result_type with weak Python scalars, as NumPy 2 promotes them."""
    args = [{"f": 0.0, "i": 0, "u": 0}[v.dtype.kind] if v.type.weak else v.dtype for v in values]
    return check_dtype(np.result_type(*args))


def where(cond, x, y):
    c, a, b = _vals((cond, x, y))
    dt = result_dtype(a, b)
    c = cast_value(c, bool)
    return wrap(emit("select", [c, cast_value(a, dt), cast_value(b, dt)]).out)


def clip(x, lo=None, hi=None):
    """minimum(maximum(x, lo), hi); integer bounds beyond x's dtype's range clip nothing."""
    v = to_value(x)
    if v.dtype.kind in "iu":
        info = np.iinfo(v.dtype)
        if isinstance(lo, int) and not isinstance(lo, bool) and lo < info.min:
            lo = None
        if isinstance(hi, int) and not isinstance(hi, bool) and hi > info.max:
            hi = None
        lo = info.max if isinstance(lo, int) and not isinstance(lo, bool) and lo > info.max else lo
        hi = info.min if isinstance(hi, int) and not isinstance(hi, bool) and hi < info.min else hi
    out = x
    if lo is not None:
        out = ufunc("maximum", out, lo)
    if hi is not None:
        out = ufunc("minimum", out, hi)
    return out


def round_(x, decimals=0):
    v = to_value(x)
    if v.dtype.kind == "b":
        if decimals == 0:
            raise UnsupportedError("np.round of a boolean array gives float16, which lumen does "
                                   "not support")
        raise TypeError("np.round: boolean arrays support only decimals=0")
    if v.dtype.kind in "iu":
        if decimals >= 0:
            return wrap(v)
        # NumPy: through float64, rounded half to even, then cast back (wrapping)
        f = 10 ** -decimals
        y = ufunc("multiply", ufunc("rint", ufunc("divide", astype(wrap(v), np.float64), float(f))),
                  float(f))
        return astype(y, v.dtype)
    if decimals == 0:
        return ufunc("rint", x)
    scale = 10.0 ** decimals
    return ufunc("divide", ufunc("rint", ufunc("multiply", x, scale)), scale) if decimals > 0 else \
        ufunc("multiply", ufunc("rint", ufunc("divide", x, 10.0 ** -decimals)), 10.0 ** -decimals)


# -- reductions -------------------------------------------------------------------------------

def _axes(axis, ndim):
    if axis is None or ndim == 0:
        # NumPy accepts an int axis 0 / -1 (not a tuple) for a 0-d array: nothing is reduced
        if isinstance(axis, (tuple, list)) and axis:
            from numpy.exceptions import AxisError
            raise AxisError(f"axis {axis[0]} is out of bounds for array of dimension 0")
        if axis is not None and not isinstance(axis, (tuple, list)):
            _check_0d_axis(operator.index(axis))
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(normalize_axis(operator.index(a), ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError("duplicate value in 'axis'")
        return tuple(sorted(axes))
    return (normalize_axis(operator.index(axis), ndim),)


def _check_0d_axis(axis):
    if axis not in (0, -1):
        from numpy.exceptions import AxisError
        raise AxisError(f"axis {axis} is out of bounds for array of dimension 0")


def reduce(op, x, axis=None, keepdims=False, dtype=None):
    v = to_value(x)
    if dtype is not None:
        v = cast_value(v, dtype)
    elif op in ("sum", "prod") and v.type.weak:
        v = cast_value(v, v.dtype)
    axes = _axes(axis, v.ndim)
    if op in ("argmax", "argmin"):
        if axis is None or v.ndim == 0:
            flat = reshape(wrap(v), (-1,))
            out = reduce(op, flat, 0)
            return reshape(out, (1,) * v.ndim) if keepdims else out
        return wrap(emit(op, [v], axes=axes, keepdims=bool(keepdims)).out)
    return _as_requested(emit(op, [v], axes=axes, keepdims=bool(keepdims)).out, dtype)


def _as_requested(out, dtype):
    """``dtype=`` names the result dtype too: a sum of int8 asked for as int8 stays int8 (the
    primitive accumulates small integers in int64; wrapping modulo 2**8 afterwards gives the
    same bits as NumPy's int8 accumulator, and likewise for prod)."""
    if dtype is not None and out.dtype != np.dtype(dtype):
        out = cast_value(out, dtype)
    return wrap(out)


def count(v, axis):
    """Number of elements of value ``v`` that a reduction over ``axis`` combines."""
    return prod(v.shape[a] for a in _axes(axis, v.ndim))


def mean(x, axis=None, dtype=None, keepdims=False):
    v = to_value(x)
    if dtype is None and v.dtype.kind in "iub":
        dtype = np.float64
    total = reduce("sum", wrap(v), axis, keepdims, dtype)
    return ufunc("divide", total, count(v, axis))


def var(x, axis=None, dtype=None, ddof=0, keepdims=False):
    v = to_value(x)
    if dtype is None and v.dtype.kind in "iub":
        dtype = np.float64
    if dtype is not None:
        v = cast_value(v, dtype)
    m = mean(wrap(v), axis, keepdims=True)
    d = ufunc("subtract", wrap(v), m)
    sq = reduce("sum", ufunc("multiply", d, d), axis, keepdims)
    n = count(v, axis) - ddof
    from ..ir.dims import dmax
    return ufunc("divide", sq, dmax(n, 0))


def std(x, axis=None, dtype=None, ddof=0, keepdims=False):
    return ufunc("sqrt", var(x, axis, dtype, ddof, keepdims))


def cumulative(op, x, axis=None, dtype=None):
    v = to_value(x)
    if dtype is not None:
        v = cast_value(v, dtype)
    if axis is None or v.ndim == 0:
        if v.ndim == 0 and axis is not None:
            _check_0d_axis(operator.index(axis))
        v = to_value(reshape(wrap(v), (-1,)))    # NumPy: a 0-d input gives a 1-element result
        axis = 0
    out = emit(op, [v], axis=normalize_axis(operator.index(axis), v.ndim)).out
    return _as_requested(out, dtype)


# -- shapes -----------------------------------------------------------------------------------

def _shape_arg(shape):
    if isinstance(shape, (Dim, int, np.integer)) or hasattr(shape, "__index__") and not isinstance(shape, tuple):
        return (shape,)
    return tuple(shape)


def reshape(x, shape):
    v = to_value(x)
    shape = list(_shape_arg(shape))
    unknown = [i for i, d in enumerate(shape) if not isinstance(d, Dim) and operator.index(d) == -1]
    if len(unknown) > 1:
        raise ValueError("can only specify one unknown dimension")
    dims = [as_dim(d) if i not in unknown else None for i, d in enumerate(shape)]
    if unknown:
        known = prod(d for d in dims if d is not None)
        total = prod(v.shape)
        if known.value == 0 or (known.value is None and known.hint == 0):
            raise ValueError(f"cannot reshape array of size {total.hint} into shape {tuple(shape)}")
        if total.hint % known.hint:
            raise ValueError(f"cannot reshape array of size {total.hint} into shape "
                             f"{tuple(int(d) if not isinstance(d, Dim) else d.hint for d in shape)}")
        dims[unknown[0]] = total // known
    for d in dims:
        if d.hint < 0:
            raise ValueError("negative dimensions not allowed")
    dims = tuple(dims)
    out = _reshape_value(v, dims)
    from .indexing import is_c_contiguous
    if not (is_c_contiguous(x) or _unit_axes_only(v.shape, dims)):
        return wrap(out)      # NumPy copies: later writes to x do not show, nor the other way
    return view(x, out, lambda b: _reshape_value(b, dims),
                lambda b, new: _reshape_value(new, tuple(b.shape)), True)


def _reshape_value(v, dims):
    return v if tuple(dims) == tuple(v.shape) else emit("reshape", [v], shape=tuple(dims)).out


def _unit_axes_only(old, new):
    """Only length-1 axes are added or removed (expand_dims / squeeze): always a view."""
    return [d for d in old if d.hint != 1] == [d for d in new if d.hint != 1]


def view(x, out, read, write, contiguous):
    """``out`` as the NumPy view of ``x`` that it is: it sees later writes to ``x``, and writes
    to it go to ``x`` (``v = z.T; v[0] = 1`` changes z). ``read(base_value)`` recomputes it,
    ``write(base_value, new)`` gives the base after the view's contents became ``new``."""
    from .tracer import Tracer
    if not isinstance(x, Tracer):
        return wrap(out)
    from .indexing import View
    return Tracer(out, base=x, key=View(read, write, contiguous))


def transpose(x, axes=None):
    v = to_value(x)
    if axes is None:
        perm = tuple(range(v.ndim))[::-1]
    else:
        perm = tuple(normalize_axis(operator.index(a), v.ndim) for a in _shape_arg(axes))
        if sorted(perm) != list(range(v.ndim)):
            raise ValueError("axes don't match array")
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    return view(x, _transpose_value(v, perm), lambda b: _transpose_value(b, perm),
                lambda b, new: _transpose_value(new, inverse), perm == tuple(range(v.ndim)))


def _transpose_value(v, perm):
    return v if tuple(perm) == tuple(range(v.ndim)) else emit("transpose", [v], perm=perm).out


def swapaxes(x, a, b):
    v = to_value(x)
    perm = list(range(v.ndim))
    a, b = normalize_axis(a, v.ndim), normalize_axis(b, v.ndim)
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x, source, destination):
    v = to_value(x)
    src = [normalize_axis(a, v.ndim) for a in _shape_arg(source)]
    dst = [normalize_axis(a, v.ndim) for a in _shape_arg(destination)]
    order = [n for n in range(v.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def expand_dims(x, axis):
    v = to_value(x)
    axes = _shape_arg(axis)
    ndim = v.ndim + len(axes)
    axes = sorted(normalize_axis(a, ndim) for a in axes)
    shape = list(v.shape)
    for a in axes:
        shape.insert(a, Dim.const(1))
    return reshape(x, tuple(shape))


def squeeze(x, axis=None):
    v = to_value(x)
    if axis is None:
        axes = [a for a, d in enumerate(v.shape) if _is_one(d)]
    else:
        axes = [normalize_axis(a, v.ndim) for a in _shape_arg(axis)]
        for a in axes:
            if v.shape[a].value != 1 and int(v.shape[a]) != 1:
                raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(x, tuple(d for a, d in enumerate(v.shape) if a not in axes))


def _is_one(d):
    """Whether an axis has length 1. A derived size (``x[:, :1]`` gives min(1, n)) that was 1
    while tracing is taken as 1 and the function is specialised on it, as NumPy decides by the
    actual length; input axes are never 1 unless the broadcast pattern says so."""
    if d.value is not None or d.op == "input":
        return d.value == 1
    return d.hint == 1 and int(d) == 1


def broadcast_to(x, shape):
    v = to_value(x)
    shape = tuple(as_dim(d) for d in _shape_arg(shape))
    if len(shape) < v.ndim:
        raise ValueError("input operand has more dimensions than allowed by the axis remapping")
    if shape == tuple(v.shape):
        return wrap(v)
    return wrap(emit("broadcast_to", [v], shape=shape).out)


def broadcast_view(x, shape):
    """``np.broadcast_to``: a read-only view of ``x`` (writing to it raises, as in NumPy)."""
    out = to_value(broadcast_to(x, shape))

    def write(base, new):
        raise ValueError("assignment destination is read-only")
    return view(x, out, lambda b: to_value(broadcast_to(wrap(b), out.shape)), write, False)


def broadcast_arrays(*xs):
    values = _vals(xs)
    shape, _ = broadcast_dims([v.shape for v in values], "broadcast_arrays")
    return [broadcast_to(wrap(v), shape) for v in values]


def concatenate(xs, axis=0, dtype=None):
    values = _vals(xs)
    if not values:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        values = [to_value(reshape(wrap(v), (-1,))) for v in values]
        axis = 0
    ndim = values[0].ndim
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    for v in values:
        if v.ndim != ndim:
            raise ValueError("all the input arrays must have same number of dimensions")
    axis = normalize_axis(axis, ndim)
    dt = check_dtype(dtype) if dtype is not None else result_dtype(*values)
    values = [cast_value(v, dt) for v in values]
    if len(values) == 1:
        return wrap(values[0])
    return wrap(emit("concatenate", values, axis=axis).out)


def stack(xs, axis=0):
    values = _vals(xs)
    if not values:
        raise ValueError("need at least one array to stack")
    axis = normalize_axis(axis, values[0].ndim + 1)
    return concatenate([expand_dims(wrap(v), axis) for v in values], axis)


# -- linear algebra ---------------------------------------------------------------------------

def matmul(a, b):
    x, y = _vals((a, b))
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    dt = np.matmul.resolve_dtypes((weak_kind(x), weak_kind(y), None))
    check_dtype(dt[-1], "result of matmul")
    x, y = cast_value(x, dt[0]), cast_value(y, dt[1])
    squeeze_axes = []
    if x.ndim == 1:
        x = to_value(reshape(wrap(x), (1, x.shape[0])))
        squeeze_axes.append(-2)
    if y.ndim == 1:
        y = to_value(reshape(wrap(y), (y.shape[0], 1)))
        squeeze_axes.append(-1)
    out = emit("matmul", [x, y]).out
    if squeeze_axes:
        shape = list(out.shape)
        for a in sorted(squeeze_axes):
            shape.pop(a if a == -1 else len(shape) - 2)
        return reshape(wrap(out), tuple(shape))
    return wrap(out)


def dot(a, b):
    # np.dot converts Python scalars to arrays first: they are not weak here (NEP 50 applies to
    # ufuncs), so np.dot(int32 array, 2) is int64
    x, y = (cast_value(v, v.dtype) for v in _vals((a, b)))
    if x.ndim == 0 or y.ndim == 0:
        return ufunc("multiply", wrap(x), wrap(y))
    if y.ndim > 2:
        raise UnsupportedError("np.dot with a second operand of more than 2 dimensions is not "
                               "supported; use np.matmul or np.tensordot-style reshapes")
    return matmul(wrap(x), wrap(y))


def outer(a, b):
    x = reshape(a, (-1,))
    y = reshape(b, (-1,))
    return ufunc("multiply", expand_dims(x, 1), expand_dims(y, 0))


# -- creation ---------------------------------------------------------------------------------

def full_like(x, fill, dtype=None, shape=None):
    v = to_value(x)
    dt = check_dtype(dtype) if dtype is not None else v.dtype
    shape = v.shape if shape is None else tuple(as_dim(d) for d in _shape_arg(shape))
    scalar = cast_value(to_value(fill), dt) if not _is_number(fill) else \
        const_value(np.asarray(fill).astype(dt))
    return broadcast_to(wrap(scalar), shape)


def _is_number(x):
    return isinstance(x, (bool, int, float, np.generic))


def arange_like(n, dtype=np.int64):
    """0, 1, ..., n-1 for a size ``n`` that may be symbolic."""
    return wrap(emit("iota", [], size=as_dim(n), dtype=check_dtype(dtype)).out)
