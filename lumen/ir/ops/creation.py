"""Values that come from no input: constants, `iota` (0, 1, 2, ...) and `dim` (a run-time size
as a 0-d integer)."""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .base import Kind, OpDef


class ConstValue:
    """A NumPy array held as a node parameter, compared and hashed by content."""

    __slots__ = ("array", "_key")

    def __init__(self, array):
        self.array = np.array(array, order="C")  # a copy; 0-d stays 0-d
        self.array.flags.writeable = False
        self._key = (self.array.dtype.str, self.array.shape, self.array.tobytes())

    def __eq__(self, other):
        return isinstance(other, ConstValue) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        a = self.array
        if a.size <= 4:
            return np.array2string(a, separator=",").replace("\n", "")
        return f"<{a.dtype}{list(a.shape)}>"


def _const_infer(types, params):
    a = params["value"].array
    return [TensorType(a.dtype, a.shape, params.get("weak", False))], []


def _iota_infer(types, params):
    return [TensorType(params["dtype"], (params["size"],))], []


def _dim_infer(types, params):
    return [TensorType(np.int64, (), weak=True)], []   # a size mixes in like a Python int


OPS = {
    "const": OpDef("const", Kind.CREATION, _const_infer,
                   lambda a, p, sh: [p["value"].array], differentiable=False),
    "iota": OpDef("iota", Kind.CREATION, _iota_infer,
                  lambda a, p, sh: [np.arange(p["size"].evaluate(sh), dtype=p["dtype"])],
                  differentiable=False),
    "dim": OpDef("dim", Kind.CREATION, _dim_infer,
                 lambda a, p, sh: [np.asarray(p["dim"].evaluate(sh), np.int64)],
                 differentiable=False),
}
