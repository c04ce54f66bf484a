"""Elementwise primitives: NumPy and scipy.special ufuncs, `cast` and `select`.

An elementwise node's inputs already have the ufunc's loop dtypes (the frontend inserts casts
after asking NumPy's own `ufunc.resolve_dtypes`, which is how lumen follows NEP 50 exactly).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..types import TensorType
from .base import Kind, OpDef, broadcast_dims

UNARY = ("negative", "positive", "absolute", "sign", "reciprocal", "square", "sqrt", "cbrt",
         "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
         "sin", "cos", "tan", "arcsin", "arccos", "arctan",
         "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
         "floor", "ceil", "trunc", "rint", "deg2rad", "rad2deg",
         "logical_not", "invert", "isnan", "isinf", "isfinite", "signbit")
BINARY = ("add", "subtract", "multiply", "divide", "floor_divide", "remainder", "fmod", "power",
          "arctan2", "hypot", "maximum", "minimum", "fmax", "fmin", "logaddexp", "logaddexp2",
          "copysign", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
          "logical_and", "logical_or", "logical_xor",
          "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")
SCIPY = ("expit", "logit", "erf", "erfc", "gammaln", "psi", "xlogy")
_NUMPY = frozenset(UNARY + BINARY)


class _Ufuncs(Mapping):
    """Name -> the NumPy or scipy.special ufunc. scipy.special is imported when one of its
    ufuncs is first looked up, not with lumen: its import took 0.17 s and left 20,000 objects
    that every full garbage collection of the process walks, for the programs that use it."""

    def __getitem__(self, name):
        if name in SCIPY:
            import scipy.special
            return getattr(scipy.special, name)
        if name in _NUMPY:
            return getattr(np, name)
        raise KeyError(name)

    def __iter__(self):
        return iter(UNARY + BINARY + SCIPY)

    def __len__(self):
        return len(UNARY + BINARY + SCIPY)

    def __contains__(self, name):
        return name in _NUMPY or name in SCIPY


UFUNCS = _Ufuncs()

#: Outputs that do not depend smoothly on the inputs (zero derivative).
NON_DIFFERENTIABLE = frozenset((
    "sign", "floor", "ceil", "trunc", "rint", "logical_not", "invert", "isnan", "isinf",
    "isfinite", "signbit", "floor_divide", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or",
    "bitwise_xor", "left_shift", "right_shift"))

COMMUTATIVE = frozenset(("add", "multiply", "maximum", "minimum", "fmax", "fmin", "equal",
                         "not_equal", "logical_and", "logical_or", "logical_xor", "bitwise_and",
                         "bitwise_or", "bitwise_xor", "hypot", "logaddexp", "logaddexp2"))


def ufunc_out_dtype(name: str, in_dtypes) -> np.dtype:
    return UFUNCS[name].resolve_dtypes(tuple(in_dtypes) + (None,))[-1]


def _ufunc_def(name: str) -> OpDef:
    def infer(types, params):
        shape, checks = broadcast_dims([t.shape for t in types], f"operands of {name}")
        return [TensorType(ufunc_out_dtype(name, [t.dtype for t in types]), shape)], checks

    def reference(arrays, params, shapes):
        with np.errstate(all="ignore"):
            return [np.asarray(UFUNCS[name](*arrays))]

    return OpDef(name, Kind.ELEMENTWISE, infer, reference, name not in NON_DIFFERENTIABLE)


def _cast_infer(types, params):
    return [TensorType(params["dtype"], types[0].shape)], []


def _cast_reference(arrays, params, shapes):
    with np.errstate(all="ignore"):
        return [np.asarray(arrays[0]).astype(params["dtype"])]


def _select_infer(types, params):
    cond, a, b = types
    shape, checks = broadcast_dims([cond.shape, a.shape, b.shape], "operands of where")
    return [TensorType(a.dtype, shape)], checks


def _select_reference(arrays, params, shapes):
    return [np.asarray(np.where(*arrays))]


OPS = {name: _ufunc_def(name) for name in UFUNCS}
OPS["cast"] = OpDef("cast", Kind.ELEMENTWISE, _cast_infer, _cast_reference)
OPS["select"] = OpDef("select", Kind.ELEMENTWISE, _select_infer, _select_reference)
