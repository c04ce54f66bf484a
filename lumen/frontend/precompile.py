"""Ahead-of-time compilation specs: `lumen.ShapeDtype`, its text form for the command line
(``f32[?,784]``), and the stand-in arrays `Jitted.precompile` traces with."""
from __future__ import annotations

import operator
import re

import numpy as np

from ..ir.types import SUPPORTED_DTYPES, short_name
from . import pytree

#: The size a stand-in gets for an axis left open (``None`` / ``?``): not 1 (that would be the
#: broadcast pattern) and divisible by 1 to 10, so that reshapes of it trace.
OPEN_SIZE = 5040

_BY_SHORT_NAME = {short_name(d): d for d in SUPPORTED_DTYPES}
_SPEC = re.compile(r"\s*(\w+)\s*\[([^\]]*)\]\s*$")


class ShapeDtype:
    """The type of one argument, for `Jitted.precompile`: a dtype and either a shape or an
    ndim. A size ``None`` means any size other than 1; an int is that size. Compiled code is
    specialised on which axes have length 1, so a size 1 must be given as 1; other sizes only
    matter to a function that needs a concrete size (``range(x.shape[0])``)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        if isinstance(shape, (int, np.integer)):
            shape = (None,) * int(shape)
        self.shape = tuple(None if n is None else operator.index(n) for n in shape)
        if any(n is not None and n < 0 for n in self.shape):
            raise ValueError(f"ShapeDtype: negative size in {shape}")
        self.dtype = np.dtype(dtype)

    @classmethod
    def parse(cls, text: str) -> "ShapeDtype":
        """``f32[?,784]``: a dtype's short name (f32 f64 i8..i64 u8..u64 bool), then the sizes,
        ``?`` for any; ``f64[]`` is a 0-d array."""
        m = _SPEC.match(text)
        if m is None or m.group(1) not in _BY_SHORT_NAME:
            raise ValueError(f"bad argument spec {text!r}: expected a dtype ("
                             + " ".join(_BY_SHORT_NAME) + ") and sizes, e.g. f32[?,784]")
        sizes = [s.strip() for s in m.group(2).split(",")] if m.group(2).strip() else []
        try:
            shape = [None if s == "?" else int(s) for s in sizes]
        except ValueError:
            raise ValueError(f"bad argument spec {text!r}: sizes are integers or ?") from None
        return cls(shape, _BY_SHORT_NAME[m.group(1)])

    def __repr__(self):
        sizes = ",".join("?" if n is None else str(n) for n in self.shape)
        return f"ShapeDtype({short_name(self.dtype)}[{sizes}])"

    def stand_in(self) -> np.ndarray:
        """A read-only C-contiguous array of this shape and dtype over a one-element buffer:
        tracing reads an argument's dtype, shape and layout, never its elements."""
        shape = tuple(OPEN_SIZE if n is None else n for n in self.shape)
        if 0 in shape:
            return np.empty(shape, self.dtype)
        strides, step = [], self.dtype.itemsize
        for n in reversed(shape):
            strides.insert(0, step)
            step *= n
        return np.lib.stride_tricks.as_strided(np.zeros(1, self.dtype), shape, strides,
                                               writeable=False)


def stand_ins(tree):
    """``tree`` with every `ShapeDtype` leaf replaced by its stand-in array."""
    leaves, treedef = pytree.flatten(tree)
    return pytree.unflatten(treedef, [x.stand_in() if isinstance(x, ShapeDtype) else x
                                      for x in leaves])
