"""Building derivative IR: a thin layer over the trace's `GraphBuilder` with the few
operations derivative rules need, all on values of one floating dtype."""
from __future__ import annotations

import math

import numpy as np

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
        return self.reduce_to(g, target, "sum")

    def reduce_to(self, g, target, op):
        """Reduce ``g`` with ``op`` over the axes NumPy broadcast ``target`` along to reach
        ``g``'s shape, giving ``target``'s shape."""
        lead = g.ndim - target.ndim
        if lead:
            g = self.op(op, g, axes=tuple(range(lead)), keepdims=False)
        axes, unknown = [], []
        for axis, (s, d) in enumerate(zip(target.shape, g.shape)):
            if s == d or s.not_one:
                continue
            (axes if s.value == 1 else unknown).append(axis)
        if axes:
            g = self.op(op, g, axes=tuple(axes), keepdims=True)
        for axis in unknown:
            g = self._reduce_if_one(g, axis, target.shape[axis], op)
        if tuple(g.shape) != tuple(target.shape):
            g = self.op("reshape", g, shape=tuple(target.shape))
        return g

    def _reduce_if_one(self, g, axis, n, op):
        """``g`` reduced over ``axis`` where the target's length ``n`` is 1 at run time, else
        ``g`` (whose length there is then ``n``): which one only the run time knows, e.g. for
        ``a[1:] - a[:-1]``. Both are computed, the right one selected and sliced to length n."""
        total = self.broadcast_to(self.op(op, g, axes=(axis,), keepdims=True), g.shape)
        one = self.op("equal", self.op("dim", dim=n), self.op("const", value=ConstValue(
            np.asarray(1, np.int64)), weak=False))
        picked = self.select(one, total, g)
        specs = tuple(("range", Dim.const(0), 1, d) for d in g.shape[:axis]) + \
            (("range", Dim.const(0), 1, n),)
        return self.op("slice", picked, specs=specs)

    def mask_to(self, mask, target, full):
        """A mask for ``target``'s cotangent from ``mask`` (which broadcasts to the value
        ``full`` that ``target`` was broadcast to): True where any element it went to is True."""
        if _fits(mask.shape, target.shape):
            return mask
        return self.reduce_to(self.broadcast_to(mask, full.shape), target, "any")

    def broadcast_to(self, v, shape):
        return v if tuple(v.shape) == tuple(shape) else self.op("broadcast_to", v, shape=tuple(shape))


def _fits(shape, target) -> bool:
    """``shape`` broadcasts to ``target`` without growing it."""
    return len(shape) <= len(target) and all(
        d == t or d.value == 1 for d, t in zip(reversed(shape), reversed(target)))


LN2, LN10 = math.log(2.0), math.log(10.0)
__all__ = ["Emitter", "Dim", "LN2", "LN10"]
