"""`kernel`: a loop nest over an iteration space with a scalar body (DESIGN.md decision 1).

The body is a small SSA program of elementwise primitives over scalars. Its first
``n_inputs`` values are the kernel's inputs read at the current index (each input broadcasts
to the iteration space like a NumPy operand); each further value is one `ScalarOp`. The last
value is the result, which is either stored at every index or, when ``reduce`` is set, combined
over the reduced axes. Both backends lower this one structure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dims import Dim
from ..types import TensorType
from .base import Kind, OpDef
from .reduce import reduce_dtype


@dataclass(frozen=True)
class ScalarOp:
    """``op(values[args...])`` with result dtype ``dtype``; ``params`` as sorted (key, value)s."""
    op: str
    args: tuple
    dtype: np.dtype
    params: tuple = ()


@dataclass(frozen=True)
class Reduction:
    op: str          # a reduce primitive: sum, prod, max, min, argmax, argmin, any, all
    axes: tuple      # axes of the iteration space
    keepdims: bool


@dataclass(frozen=True)
class KernelBody:
    n_inputs: int
    ops: tuple       # of ScalarOp

    def text(self, input_names) -> str:
        names = list(input_names)
        parts = []
        for i, s in enumerate(self.ops):
            name = f"s{i}"
            extra = "".join(f", {k}={v}" for k, v in s.params)
            parts.append(f"{name} = {s.op}({', '.join(names[a] for a in s.args)}{extra})")
            names.append(name)
        return "; ".join(parts)


def _out_shape(space, red):
    if red is None:
        return tuple(space)
    if red.keepdims:
        return tuple(Dim.const(1) if i in red.axes else d for i, d in enumerate(space))
    return tuple(d for i, d in enumerate(space) if i not in red.axes)


def _infer(types, params):
    body, red, space = params["body"], params["reduce"], params["space"]
    dtype = body.ops[-1].dtype if body.ops else types[0].dtype
    if red is not None:
        dtype = reduce_dtype(red.op, dtype)
    return [TensorType(dtype, _out_shape(space, red))], []


def evaluate_body(body: KernelBody, arrays, shapes):
    """Run a kernel body with NumPy arrays (broadcast like the iteration space)."""
    from . import OPS
    values = list(arrays)
    for s in body.ops:
        (out,) = OPS[s.op].reference([values[a] for a in s.args], dict(s.params), shapes)
        values.append(out)
    return values[-1]


def _reference(arrays, params, shapes):
    from . import OPS
    space = tuple(d.evaluate(shapes) for d in params["space"])
    arrays = [np.broadcast_to(a, space[len(space) - a.ndim:]) if a.ndim else a for a in arrays]
    out = np.broadcast_to(evaluate_body(params["body"], arrays, shapes), space)
    red = params["reduce"]
    if red is None:
        return [np.ascontiguousarray(out)]
    return OPS[red.op].reference([out], {"axes": red.axes, "keepdims": red.keepdims}, shapes)


OPS = {"kernel": OpDef("kernel", Kind.KERNEL, _infer, _reference)}
