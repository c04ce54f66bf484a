"""Shape and layout primitives: reshape, transpose, broadcast_to, slice, concatenate.

Codegen turns reshape, transpose, broadcast_to and slice into views (no data moves) wherever
the layout allows.
"""
from __future__ import annotations

import numpy as np

from ..dims import Dim, prod
from ..graph import Check
from ..types import TensorType
from .base import Kind, OpDef


def _reshape_infer(types, params):
    (t,) = types
    shape = params["shape"]
    check = Check("eq", prod(t.shape), prod(shape),
                  f"cannot reshape array of {t.ndim} dimensions into shape {_fmt(shape)}")
    return [TensorType(t.dtype, shape)], [check]


def _fmt(shape):
    return "(" + ", ".join("?" if d.value is None else str(d.value) for d in shape) + ")"


def _transpose_infer(types, params):
    (t,) = types
    return [TensorType(t.dtype, tuple(t.shape[p] for p in params["perm"]))], []


def _broadcast_infer(types, params):
    (t,) = types
    shape = params["shape"]
    checks = []
    for axis, d in enumerate(t.shape):
        out = shape[len(shape) - t.ndim + axis]
        if d.value != 1 and d != out:
            checks.append(Check("expand", d, out,
                                f"operands could not be broadcast to shape {_fmt(shape)}"))
    return [TensorType(t.dtype, shape)], checks


def slice_out_dims(in_shape, specs):
    """Output shape of a `slice` node. Each spec is ``("range", start, step, size)`` or
    ``("index", i)`` (drops the axis)."""
    return tuple(s[3] for s in specs if s[0] == "range") + tuple(in_shape[len(specs):])


def index_checks(shape, specs):
    """The run-time bounds checks of the integer entries of slice ``specs`` over ``shape``
    (shared by `slice` and `update_slice`: an unchecked index reads or writes outside the array)."""
    checks = []
    for axis, s in enumerate(specs):
        if s[0] == "index":
            i = s[1]
            need = Dim.const(i + 1) if i >= 0 else Dim.const(-i)
            checks.append(Check("le", need, shape[axis],
                                f"index {i} is out of bounds for axis {axis}", IndexError))
    return checks


def _slice_infer(types, params):
    (t,) = types
    checks = index_checks(t.shape, params["specs"])
    return [TensorType(t.dtype, slice_out_dims(t.shape, params["specs"]))], checks


def slice_key(specs, ev):
    """Concrete slice objects for ``specs``; ``ev`` evaluates a `Dim`."""
    key = []
    for s in specs:
        if s[0] == "index":
            key.append(s[1])
        else:
            _, start, step, size = s
            st, sz = ev(start), ev(size)
            if sz == 0:
                # a negative-step start of -1 means "before element 0" here, not Python's "last"
                key.append(slice(0, 0))
                continue
            stop = st + step * sz
            key.append(slice(st, stop if stop >= 0 else None, step))
    return tuple(key)


def _concat_infer(types, params):
    axis = params["axis"]
    first = types[0]
    checks = []
    for t in types[1:]:
        for a, (d, e) in enumerate(zip(first.shape, t.shape)):
            if a != axis and d != e:
                checks.append(Check("eq", d, e, "all the input array dimensions except for the "
                                                 "concatenation axis must match exactly"))
    size = Dim.const(0)
    for t in types:
        size = size + t.shape[axis]
    shape = first.shape[:axis] + (size,) + first.shape[axis + 1:]
    return [TensorType(first.dtype, shape)], checks


def _ev(shapes):
    return lambda d: d.evaluate(shapes)


OPS = {
    "reshape": OpDef("reshape", Kind.MOVEMENT, _reshape_infer,
                     lambda a, p, sh: [a[0].reshape(tuple(map(_ev(sh), p["shape"])))]),
    "transpose": OpDef("transpose", Kind.MOVEMENT, _transpose_infer,
                       lambda a, p, sh: [np.transpose(a[0], p["perm"])]),
    "broadcast_to": OpDef("broadcast_to", Kind.MOVEMENT, _broadcast_infer,
                          lambda a, p, sh: [np.broadcast_to(a[0], tuple(map(_ev(sh), p["shape"])))]),
    "slice": OpDef("slice", Kind.MOVEMENT, _slice_infer,
                   lambda a, p, sh: [a[0][slice_key(p["specs"], _ev(sh))]]),
    "concatenate": OpDef("concatenate", Kind.MOVEMENT, _concat_infer,
                         lambda a, p, sh: [np.concatenate(a, axis=p["axis"])]),
}
