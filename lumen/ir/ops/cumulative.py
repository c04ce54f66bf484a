"""Running reductions along one axis: cumsum, cumprod."""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .base import Kind, OpDef
from .reduce import reduce_dtype

_NUMPY = {"cumsum": (np.cumsum, "sum"), "cumprod": (np.cumprod, "prod")}


def _def(op):
    fn, reduction = _NUMPY[op]

    def infer(types, params):
        (t,) = types
        return [TensorType(reduce_dtype(reduction, t.dtype), t.shape)], []

    def reference(arrays, params, shapes):
        with np.errstate(all="ignore"):
            return [np.asarray(fn(arrays[0], axis=params["axis"]))]

    return OpDef(op, Kind.CUMULATIVE, infer, reference)


OPS = {op: _def(op) for op in _NUMPY}
