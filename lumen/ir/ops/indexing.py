"""Integer-array indexing: `gather` (``x[i, j]``) and `scatter` (``x[i, j] = v`` as a new array).

Both index ``len(indices)`` consecutive axes of ``x`` starting at axis ``start`` with integer
arrays that broadcast together to a shape B; the indexed part of ``x`` has shape
``x.shape[:start] + B + x.shape[start + k:]``. Negative indices count from the end; indices out
of range raise IndexError in compiled code.
"""
from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..graph import Check
from ..types import TensorType
from .base import Kind, OpDef, broadcast_dims


def gathered_shape(x_shape, index_shapes, start):
    b, checks = broadcast_dims(index_shapes, "indexing arrays")
    k = len(index_shapes)
    return tuple(x_shape[:start]) + b + tuple(x_shape[start + k:]), checks


def _key(x, indices, start):
    return (slice(None),) * start + tuple(indices)


def _gather_infer(types, params):
    x, *idx = types
    shape, checks = gathered_shape(x.shape, [t.shape for t in idx], params["start"])
    return [TensorType(x.dtype, shape)], checks


def assign_checks(target, value, what):
    """The value of an assignment broadcasts *to* the target's shape (never the other way, as
    NumPy says: a (3, 6) value does not fit a (6,) target): extra leading value axes must be 1,
    the others equal the target's or be 1."""
    checks = []
    lead = len(value) - len(target)
    for axis, d in enumerate(value):
        if axis < lead:
            if d.value != 1:
                checks.append(Check("eq", d, Dim.const(1), f"could not broadcast {what}"))
        elif d.value != 1 and d != target[axis - lead]:
            checks.append(Check("expand", d, target[axis - lead], f"could not broadcast {what}"))
    return checks


def _scatter_infer(types, params):
    x, v, *idx = types
    shape, checks = gathered_shape(x.shape, [t.shape for t in idx], params["start"])
    more = assign_checks(shape, v.shape, "the value assigned by indexing to the indexed shape")
    return [TensorType(x.dtype, x.shape)], checks + more


def _gather_ref(arrays, params, shapes):
    x, *idx = arrays
    return [np.asarray(x[_key(x, idx, params["start"])])]


def _scatter_ref(arrays, params, shapes):
    x, v, *idx = arrays
    out = x.copy()
    key = _key(x, idx, params["start"])
    if params["mode"] == "add":
        np.add.at(out, key, v)
    else:
        out[key] = v
    return [out]


def _update_slice_infer(types, params):
    from .movement import index_checks, slice_out_dims
    x, v = types
    target = slice_out_dims(x.shape, params["specs"])
    checks = assign_checks(target, v.shape, "the value assigned by slicing to the sliced shape")
    return [TensorType(x.dtype, x.shape)], index_checks(x.shape, params["specs"]) + checks


def _update_slice_ref(arrays, params, shapes):
    from .movement import slice_key
    x, v = arrays
    out = x.copy()
    out[slice_key(params["specs"], lambda d: d.evaluate(shapes))] = v
    return [out]


OPS = {
    "gather": OpDef("gather", Kind.INDEX, _gather_infer, _gather_ref),
    "scatter": OpDef("scatter", Kind.INDEX, _scatter_infer, _scatter_ref),
    "update_slice": OpDef("update_slice", Kind.INDEX, _update_slice_infer, _update_slice_ref),
}
