"""What one primitive is: `OpDef`, its kind, and the shape helpers the rules share."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from ..dims import Dim, binary
from ..graph import Check


class Kind(enum.Enum):
    """The category sets rewrites and codegen ask about (tinygrad's `GroupOp`)."""
    ELEMENTWISE = "elementwise"
    REDUCE = "reduce"
    MOVEMENT = "movement"      # reshape / transpose / slice / broadcast: views where possible
    INDEX = "index"            # gather / scatter
    LINALG = "linalg"
    CREATION = "creation"
    CUMULATIVE = "cumulative"
    KERNEL = "kernel"          # a fused loop nest (passes produce it)
    CONTROL = "control"        # scan / while / cond: nodes holding nested graphs


@dataclass(frozen=True)
class OpDef:
    """One primitive.

    ``infer(types, params) -> (out_types, checks)`` is its type and shape rule;
    ``reference(arrays, params, input_shapes) -> list of arrays`` evaluates it with NumPy
    (``input_shapes``, the graph inputs' concrete shapes, give symbolic sizes in params a value) (the test oracle,
    the constant folder and the debug mode's checker).
    """
    name: str
    kind: Kind
    infer: Callable
    reference: Callable
    differentiable: bool = True


def broadcast_dims(shapes, what: str):
    """NumPy broadcasting of symbolic shapes -> (dims, checks)."""
    ndim = max((len(s) for s in shapes), default=0)
    out, checks = [], []
    for axis in range(ndim):
        d = None
        for s in shapes:
            k = axis - (ndim - len(s))
            if k < 0:
                continue
            e = s[k]
            if d is None:
                d = e
            elif d != e and e.value != 1 and d.value != 1:
                checks.append(Check("bcast", d, e, what))
                d = binary("bcast", d, e)
            else:
                d = binary("bcast", d, e)
        out.append(d)
    return tuple(out), checks


def normalize_axis(axis: int, ndim: int, what="axis") -> int:
    valid = axis in (0, -1) if ndim == 0 else -ndim <= axis < ndim
    if not valid:
        from numpy.exceptions import AxisError
        raise AxisError(f"{what} {axis} is out of bounds for array of dimension {ndim}")
    return axis % ndim if ndim else 0


__all__ = ["Kind", "OpDef", "broadcast_dims", "normalize_axis", "Dim"]
