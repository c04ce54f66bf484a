"""Elementwise primitives only lumen itself creates.

``softplus(x) = log(1 + exp(x))`` and ``log1mexp(x) = log(1 - exp(-x))`` (x >= 0), made by
stabilising rewrites, compute those formulas without their overflow, underflow or
cancellation. ``stop_gradient(x)`` is x, with a zero derivative (`lumen.stop_gradient`).
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .base import Kind, OpDef, broadcast_dims


def softplus_reference(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def log1mexp_reference(x):
    with np.errstate(all="ignore"):
        small = x < np.log(2.0)
        return np.where(small, np.log(-np.expm1(-x)), np.log1p(-np.exp(-x))).astype(x.dtype)


REFERENCES = {"softplus": softplus_reference, "log1mexp": log1mexp_reference,
              "stop_gradient": lambda x: x}


def _def(name):
    fn = REFERENCES[name]

    def infer(types, params):
        (t,) = types
        if t.dtype.kind != "f" and name != "stop_gradient":
            raise TypeError(f"{name} is defined for floating-point values, not {t.dtype}")
        shape, checks = broadcast_dims([t.shape], name)
        return [TensorType(t.dtype, shape)], checks

    def reference(arrays, params, shapes):
        with np.errstate(all="ignore"):
            return [np.asarray(fn(arrays[0]))]

    return OpDef(name, Kind.ELEMENTWISE, infer, reference, name != "stop_gradient")


OPS = {name: _def(name) for name in REFERENCES}
