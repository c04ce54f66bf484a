"""Reductions over a set of axes: sum, prod, max, min, argmax, argmin, any, all."""
from __future__ import annotations

import numpy as np

from ..dims import Dim, prod
from ..graph import Check
from ..types import TensorType
from .base import Kind, OpDef

_NUMPY = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min,
          "argmax": np.argmax, "argmin": np.argmin, "any": np.any, "all": np.all}

#: Reductions with no identity: an empty reduction is an error (as in NumPy).
NEEDS_ELEMENTS = frozenset(("max", "min", "argmax", "argmin"))


def reduce_dtype(op: str, dtype) -> np.dtype:
    """NumPy's result dtype of reduction ``op`` over an array of ``dtype``."""
    dtype = np.dtype(dtype)
    if op in ("argmax", "argmin"):
        return np.dtype(np.intp)
    if op in ("any", "all"):
        return np.dtype(bool)
    if op in ("sum", "prod"):
        return _NUMPY[op](np.zeros(1, dtype)).dtype
    return dtype


def _def(op: str) -> OpDef:
    def infer(types, params):
        (t,) = types
        axes, keepdims = params["axes"], params["keepdims"]
        shape = []
        for i, d in enumerate(t.shape):
            if i not in axes:
                shape.append(d)
            elif keepdims:
                shape.append(Dim.const(1))
        checks = []
        if op in NEEDS_ELEMENTS:
            n = prod(t.shape[a] for a in axes)
            checks.append(Check("le", Dim.const(1), n,
                                f"zero-size array to reduction operation {op} which has no identity"))
        return [TensorType(reduce_dtype(op, t.dtype), shape)], checks

    def reference(arrays, params, shapes):
        (x,) = arrays
        axes, keepdims = params["axes"], params["keepdims"]
        if op in ("argmax", "argmin"):
            (axis,) = axes
            return [np.asarray(_NUMPY[op](x, axis=axis, keepdims=keepdims))]
        with np.errstate(all="ignore"):
            return [np.asarray(_NUMPY[op](x, axis=axes, keepdims=keepdims))]

    return OpDef(op, Kind.REDUCE, infer, reference, op in ("sum", "prod", "max", "min"))


OPS = {op: _def(op) for op in _NUMPY}
