"""Which of `small_gemm`'s kernels a program will call, read from its graph before it compiles.

The small products' kernels are linked on a thread of their own while a program compiles
(`frontend.compile`), and their dot products are a module apart, linked the first time a
product takes them (`symbols.resolve_dots`), in the middle of that call. Where a product of the
optimised graph (the unoptimised one still holds gradients that are never used, ``dx = d @
W1.T``) takes them at the sizes it was traced with, they are linked ahead, on a thread too. The decisions are the compiled code's own: the IR that makes them
(`lower.linalg.small_products_choice`, `small_gemm.copies_transposed_b`) is run here on Python
numbers (`_Evaluator`). Only where an operand lies transposed is a guess (an operand made by a
transpose is a transposed view; compiled code reads the strides), which costs a link too many
or one in the middle of a call, never a wrong result.
"""
from __future__ import annotations

import operator

import numpy as np

from ..ir.ops import nested_nodes
from . import small_gemm
from .lower.linalg import small_products_choice

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


class _Evaluator:
    """An IR builder's comparisons, selects and arithmetic on Python numbers (a constant of
    llvmlite or `ir_text` read as its value): a decision's IR, evaluated."""

    @staticmethod
    def _value(x):
        return getattr(x, "constant", x)

    def icmp_signed(self, op, a, b):
        return _COMPARE[op](self._value(a), self._value(b))

    icmp_unsigned = icmp_signed

    def select(self, cond, a, b):
        return self._value(a) if self._value(cond) else self._value(b)

    def and_(self, a, b):
        return bool(self._value(a)) and bool(self._value(b))

    def or_(self, a, b):
        return bool(self._value(a)) or bool(self._value(b))

    def mul(self, a, b):
        return self._value(a) * self._value(b)

    def urem(self, a, b):
        return self._value(a) % self._value(b)


def takes_dots(letter: str, features: str, ta: str, tb: str, m: int, n: int, k: int) -> bool:
    """Whether the product function runs an m x k by k x n product (``ta``, ``tb``: "N" or
    "T", BLAS's flags) on `small_gemm`'s dot products."""
    b = _Evaluator()
    return (tb == "T" and small_products_choice(b, letter, features, ord(ta), ord(tb), m, n, k)
            and not small_gemm.copies_transposed_b(b, small_gemm.lanes(letter, features), m, k))


def product_letters(graph) -> set:
    """BLAS's prefixes, "s" and "d", of the float32 / float64 matrix products in ``graph`` and
    its loops' bodies: the dtypes whose kernels the program may call."""
    return {letter for _, letter in _products(graph)}


def dots_letters(graph, features: str) -> set:
    """The prefixes whose dot products a product of ``graph`` takes at its traced sizes."""
    dots = set()
    for node, letter in _products(graph):
        a, b = node.inputs[:2]
        if min(a.ndim, b.ndim) < 2:
            continue
        # (..., M, K) @ (K, N) is one product of all the rows (`lower.linalg`)
        rows = a.shape[:-1] if b.ndim == 2 else a.shape[-2:-1]
        m, k, n = int(np.prod([d.hint for d in rows])), a.shape[-1].hint, b.shape[-1].hint
        if takes_dots(letter, features, _flag(a), _flag(b), m, n, k):
            dots.add(letter)
    return dots


def _products(graph):
    """(node, BLAS prefix) of each float32 / float64 matrix product in ``graph`` and its
    loops' bodies."""
    for node in nested_nodes(graph):
        if node.op in ("matmul", "gemm") and node.out.dtype in (np.float32, np.float64):
            yield node, "s" if node.out.dtype == np.float32 else "d"


def _flag(x) -> str:
    """BLAS's flag for operand ``x``: "T" where a transpose of its last two axes makes it."""
    made = x.node
    if made is not None and made.op == "transpose":
        perm = tuple(made.params["perm"])
        last = len(perm) - 2
        if perm[last:] == (last + 1, last) and perm[:last] == tuple(range(last)):
            return "T"
    return "N"
