"""``x[key]`` and ``x[key] = v`` with NumPy's rules: basic indexing (ints, slices, None, ...) makes
views; integer arrays gather; assignment builds a new array (`update_slice` / `scatter`)."""
from __future__ import annotations

import operator

import numpy as np

from ..errors import UnsupportedError
from ..ir.dims import Dim, as_dim, cdiv, dmax, dmin
from . import ops
from .trace import to_value


class View:
    """The key of a view that basic indexing cannot express: a transpose or reshape of its base
    (see `ops.view`). ``contiguous``: the view is C-contiguous when its base is."""

    __slots__ = ("read", "write", "contiguous")

    def __init__(self, read, write, contiguous):
        self.read, self.write, self.contiguous = read, write, contiguous


def is_c_contiguous(x) -> bool:
    """Whether NumPy would hold ``x`` C-contiguously (and so reshape it without a copy). Fresh
    arrays are; views are when their key keeps rows whole (leading ints, then one unit-step
    slice, then full slices)."""
    from .tracer import Tracer
    if not isinstance(x, Tracer) or x._base is None:
        return True
    if isinstance(x._key, View):
        ok = x._key.contiguous
    else:
        ok = _contiguous_key(_expand_key(x._key, x._base.ndim))
    return ok and is_c_contiguous(x._base)


def _contiguous_key(entries):
    entries = [k for k in entries if k is not None]
    i = 0
    while i < len(entries) and not isinstance(entries[i], slice):
        i += 1
    if i < len(entries):
        if entries[i].step not in (None, 1):
            return False
        i += 1
    return all(isinstance(k, slice) and k == slice(None) for k in entries[i:])


def _is_advanced(k):
    from .tracer import Tracer
    if isinstance(k, Tracer):
        return True
    if isinstance(k, (list, np.ndarray)):
        return True
    return False


def _as_index_value(k):
    v = to_value(k if not isinstance(k, list) else np.asarray(k))
    if v.dtype.kind == "b":
        raise UnsupportedError("boolean-mask indexing gives a result whose size depends on the "
                               "data, which lumen does not compile; use np.where(mask, x, 0) or "
                               "a reduction with a mask instead")
    if v.dtype.kind not in "iu":
        raise IndexError("arrays used as indices must be of integer (or boolean) type")
    return v


def _expand_key(key, ndim):
    """Normalise ``key`` to a list with Ellipsis expanded; returns (entries, consumed axes)."""
    if not isinstance(key, tuple):
        key = (key,)
    n_ellipsis = sum(k is Ellipsis for k in key)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(_axes_used(k) for k in key if k is not None and k is not Ellipsis)
    if consumed > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but "
                         f"{consumed} were indexed")
    out = []
    for k in key:
        if k is Ellipsis:
            out.extend([slice(None)] * (ndim - consumed))
        else:
            out.append(k)
    if n_ellipsis == 0:
        out.extend([slice(None)] * (ndim - consumed))
    return out


def _axes_used(k):
    """How many axes of the indexed array an entry consumes (a boolean mask: its ndim)."""
    if _is_advanced(k):
        v = to_value(k if not isinstance(k, list) else np.asarray(k))
        if v.dtype.kind == "b":
            return v.ndim
    return 1


def _literal_zero(v) -> bool:
    """``v`` is None or a plain 0. Never compares a symbolic size (``x[n // 2:]``), which would
    specialise the function on it, nor a traced value (which has no Python value)."""
    return v is None or not isinstance(v, Dim) and not _is_advanced(v) and operator.index(v) == 0


def _range_spec(s: slice, n: Dim):
    """("range", start, step, size) for slice ``s`` over an axis of symbolic length ``n``
    (Python's slice.indices, with the signs of the static bounds deciding the cases)."""
    step = 1 if s.step is None else operator.index(s.step)
    if step == 0:
        raise ValueError("slice step cannot be zero")
    if step == 1 and _literal_zero(s.start) and s.stop is None:
        return ("range", as_dim(0), 1, n)

    def bound(v, default, lo, hi):
        if v is None:
            return default
        if isinstance(v, Dim):
            return dmin(dmax(v, lo), hi)
        v = operator.index(v)
        if v < 0:
            return dmax(n + v, lo)
        return dmin(as_dim(v), hi)
    if step > 0:
        start = bound(s.start, as_dim(0), as_dim(0), n)
        stop = bound(s.stop, n, as_dim(0), n)
        size = dmax(cdiv(stop - start, step), 0)
    else:
        start = bound(s.start, n - 1, as_dim(-1), n - 1)
        stop = bound(s.stop, as_dim(-1), as_dim(-1), n - 1)
        size = dmax(cdiv(start - stop, -step), 0)
    return ("range", start, step, size)


def _basic(x, entries):
    """Apply ints / slices / None; returns (tracer, positions of None)."""
    v = to_value(x)
    specs, new_axes, out_pos = [], [], 0
    axis = 0
    for k in entries:
        if k is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        n = v.shape[axis]
        if isinstance(k, slice):
            specs.append(_range_spec(k, n))
            out_pos += 1
        else:
            i = operator.index(k)
            if n.value is not None and not -n.value <= i < n.value:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n.value}")
            specs.append(("index", i))
        axis += 1
    while specs and specs[-1][0] == "range" and specs[-1][1].value == 0 and specs[-1][2] == 1 \
            and specs[-1][3] == v.shape[len(specs) - 1]:
        specs.pop()
    out = ops.wrap(ops.emit("slice", [v], specs=tuple(specs)).out) if specs else ops.wrap(v)
    if new_axes:
        shape = list(to_value(out).shape)
        for p in new_axes:
            shape.insert(p, Dim.const(1))
        out = ops.reshape(out, tuple(shape))
    return out


def getitem(x, key):
    from .tracer import Tracer
    v = to_value(x)
    if isinstance(key, View):
        return ops.wrap(key.read(v))
    entries = _expand_key(key, v.ndim)
    if not any(_is_advanced(k) for k in entries):
        out = _basic(x, entries)
        return Tracer(to_value(out), base=x, key=key)
    if any(k is None for k in entries):
        raise UnsupportedError("mixing None/np.newaxis with integer-array indexing is not supported")
    # slices first (keeping every axis), then one gather over the advanced axes
    sliced = _basic(x, [k if isinstance(k, slice) else slice(None) for k in entries])
    adv = [i for i, k in enumerate(entries) if not isinstance(k, slice)]
    indices = [_as_index_value(entries[i]) for i in adv]
    sv = to_value(sliced)
    if adv != list(range(adv[0], adv[0] + len(adv))):
        # NumPy puts the broadcast index axes first when the advanced indices are not adjacent
        rest = [i for i in range(sv.ndim) if i not in adv]
        sv = to_value(ops.transpose(sliced, adv + rest))
        start = 0
    else:
        start = adv[0]
    return ops.wrap(ops.emit("gather", [sv, *indices], start=start).out)


def setitem(x, key, value):
    """The array ``x`` would be after ``x[key] = value`` (a new graph value)."""
    v = to_value(x)
    if isinstance(key, View):
        return ops.wrap(key.write(v, ops.cast_value(to_value(value), v.dtype)))
    entries = _expand_key(key, v.ndim)
    val = ops.cast_value(to_value(value), v.dtype)
    mask = _mask_entry(entries)
    if mask is not None:
        return _set_masked(v, entries, mask, val)
    if not any(_is_advanced(k) for k in entries):
        entries = [k for k in entries if k is not None]
        return ops.wrap(ops.emit("update_slice", [v, val], specs=_slice_specs(v, entries)).out)
    if any(k is None for k in entries):
        raise UnsupportedError("mixing None/np.newaxis with integer-array indexing is not supported")
    return _set_advanced(x, v, entries, val)


def _slice_specs(v, entries):
    """`slice` / `update_slice` specs for ints and slices (no None, no arrays)."""
    specs = []
    for axis, k in enumerate(entries):
        n = v.shape[axis]
        if isinstance(k, slice):
            specs.append(_range_spec(k, n))
        else:
            i = operator.index(k)
            if n.value is not None and not -n.value <= i < n.value:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n.value}")
            specs.append(("index", i))
    return tuple(specs)


def _set_advanced(x, v, entries, val):
    """``x[key] = val`` with integer arrays: a scatter into the region the slices select (moved
    so that non-adjacent index arrays lead, as NumPy orders the indexed shape), written back
    with `update_slice` when the slices do not cover every element."""
    adv = [i for i, k in enumerate(entries) if not isinstance(k, slice)]
    indices = [_as_index_value(entries[i]) for i in adv]
    region_key = [k if isinstance(k, slice) else slice(None) for k in entries]
    partial = any(k != slice(None) for k in region_key)
    region = _basic(x, region_key) if partial else ops.wrap(v)
    rv = to_value(region)
    if adv == list(range(adv[0], adv[0] + len(adv))):
        new = ops.emit("scatter", [rv, val, *indices], start=adv[0], mode="set").out
    else:
        perm = adv + [i for i in range(rv.ndim) if i not in adv]
        moved = to_value(ops.transpose(region, perm))
        scattered = ops.emit("scatter", [moved, val, *indices], start=0, mode="set").out
        new = to_value(ops.transpose(ops.wrap(scattered), [perm.index(i) for i in range(rv.ndim)]))
    if not partial:
        return ops.wrap(new)
    return ops.wrap(ops.emit("update_slice", [v, new], specs=_slice_specs(v, region_key)).out)


def _mask_entry(entries):
    """Position of a boolean-array entry in ``entries`` (None when there is none)."""
    for i, k in enumerate(entries):
        if _is_advanced(k) and to_value(k if not isinstance(k, list) else np.asarray(k)).dtype.kind == "b":
            return i
    return None


def _set_masked(v, entries, pos, val):
    """``x[mask] = value`` keeps x's shape, so unlike ``x[mask]`` it compiles: a select of value
    where the mask holds. Supported when the other entries are full slices and the value does
    not have one element per selected position (that count depends on the data)."""
    mask = to_value(entries[pos] if not isinstance(entries[pos], list) else np.asarray(entries[pos]))
    others = [k for i, k in enumerate(entries) if i != pos]
    if any(not isinstance(k, slice) or k != slice(None) for k in others):
        raise UnsupportedError("boolean-mask assignment is supported as x[mask] = value (with "
                               "full slices before the mask); use np.where(mask, value, x)")
    covered = v.shape[pos:pos + mask.ndim]
    for axis, (m, n) in enumerate(zip(mask.shape, covered)):
        if m.hint != n.hint:
            raise IndexError(f"boolean index did not match indexed array along axis {pos + axis}; "
                             f"size of axis is {n.hint} but size of corresponding boolean axis "
                             f"is {m.hint}")
    rest = v.ndim - pos - mask.ndim
    if val.ndim > rest:
        raise UnsupportedError("x[mask] = values with one value per selected element gives a "
                               "data-dependent count, which lumen does not compile; assign a "
                               "scalar or use np.where(mask, values, x)")
    cond = ops.reshape(ops.wrap(mask), tuple(mask.shape) + (1,) * rest)
    return ops.where(cond, ops.wrap(val), ops.wrap(v))
