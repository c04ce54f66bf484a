"""Building derivative IR: a thin layer over the trace's `GraphBuilder` with the few
operations derivative rules need, all on values of one floating dtype."""
from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError
from ..ir.dims import Dim
from ..ir.ops.creation import ConstValue


class Emitter:
    def __init__(self, builder, loc=None):
        self.builder, self.loc = builder, loc

    def op(self, name, *inputs, **params):
        return self.builder.emit(name, list(inputs), self.loc, **params).out

    def const(self, value, like):
        """A 0-d constant of ``like``'s dtype."""
        return self.op("const", value=ConstValue(np.asarray(value, like.dtype)), weak=False)

    def zeros_like(self, v):
        return self.op("broadcast_to", self.const(0, v), shape=tuple(v.shape)) if v.ndim else \
            self.const(0, v)

    # arithmetic on same-dtype values (broadcasting as NumPy)
    def add(self, a, b): return self.op("add", a, b)
    def sub(self, a, b): return self.op("subtract", a, b)
    def mul(self, a, b): return self.op("multiply", a, b)
    def div(self, a, b): return self.op("divide", a, b)
    def neg(self, a): return self.op("negative", a)
    def square(self, a): return self.op("multiply", a, a)
    def recip(self, a): return self.div(self.const(1, a), a)
    def scale(self, a, k): return self.mul(a, self.const(k, a))
    def select(self, c, a, b): return self.op("select", c, a, b)

    def where_zero(self, cond, value):
        """value, or 0 where ``cond`` holds."""
        return self.select(cond, self.zeros_like(value) if value.ndim else self.const(0, value), value)

    def cast(self, v, dtype):
        return v if v.dtype == dtype else self.op("cast", v, dtype=np.dtype(dtype))

    def sum_to(self, g, target):
        """Sum ``g`` down to ``target``'s shape (undoing NumPy broadcasting)."""
        lead = g.ndim - target.ndim
        if lead:
            g = self.op("sum", g, axes=tuple(range(lead)), keepdims=False)
        axes = []
        for axis, (s, d) in enumerate(zip(target.shape, g.shape)):
            if s == d or s.not_one:
                continue
            if s.value == 1:
                axes.append(axis)
            else:
                raise UnsupportedError(
                    f"gradient through broadcasting of an axis whose length may be 1 at run "
                    f"time (at {self.loc}); give the operands equal shapes")
        if axes:
            g = self.op("sum", g, axes=tuple(axes), keepdims=True)
        if tuple(g.shape) != tuple(target.shape):
            g = self.op("reshape", g, shape=tuple(target.shape))
        return g

    def broadcast_to(self, v, shape):
        return v if tuple(v.shape) == tuple(shape) else self.op("broadcast_to", v, shape=tuple(shape))


LN2, LN10 = math.log(2.0), math.log(10.0)
__all__ = ["Emitter", "Dim", "LN2", "LN10"]
