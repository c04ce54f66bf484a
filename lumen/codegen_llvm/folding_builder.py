"""An IRBuilder that folds integer arithmetic on constants as it is built.

Sizes, strides and offsets are often known when compiling (a contiguous argument's inner
stride is its item size, a slice's step is a Python int), but llvmlite's builder emits
``mul i64 4, 1`` all the same. LLVM folds that within a function, not across the boundary of
a parallel region: the region loads every value of the entry it uses from its capture struct
(`parallel._capture`), so a stride computed by an instruction reached the region's loop as an
unknown, and the loop vectoriser, which needs a unit stride it can see, read the elements one
by one (``sigmoid(z[200:400])`` ran 3.5x slower than ``sigmoid(a)``). Folding here keeps such a
value a constant, and the module shorter.
"""
from __future__ import annotations

import llvmlite.ir as ir


def _wrap(value: int, bits: int) -> int:
    """``value`` as a two's-complement integer of ``bits`` bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _int_constant(v):
    """The Python int of an integer constant, else None."""
    if isinstance(v, ir.Constant) and isinstance(v.type, ir.IntType) and isinstance(v.constant, int):
        return v.constant
    return None


class FoldingBuilder(ir.IRBuilder):
    """`ir.IRBuilder` whose integer ``add``, ``sub`` and ``mul`` return a constant when both
    operands are constants, and the other operand for ``x + 0``, ``x - 0``, ``x * 1``."""

    @staticmethod
    def _fold(op, lhs, rhs, identity_left, identity_right):
        if lhs.type != rhs.type:
            return None                 # llvmlite's own method raises its error
        a, c = _int_constant(lhs), _int_constant(rhs)
        if a is not None and c is not None:
            return ir.Constant(lhs.type, _wrap(op(a, c), lhs.type.width))
        if c is not None and c == identity_right:
            return lhs
        if a is not None and a == identity_left:
            return rhs
        return None

    def add(self, lhs, rhs, name="", flags=()):
        folded = self._fold(lambda x, y: x + y, lhs, rhs, 0, 0)
        return folded if folded is not None else super().add(lhs, rhs, name, flags)

    def sub(self, lhs, rhs, name="", flags=()):
        folded = self._fold(lambda x, y: x - y, lhs, rhs, None, 0)
        return folded if folded is not None else super().sub(lhs, rhs, name, flags)

    def mul(self, lhs, rhs, name="", flags=()):
        folded = self._fold(lambda x, y: x * y, lhs, rhs, 1, 1)
        return folded if folded is not None else super().mul(lhs, rhs, name, flags)
