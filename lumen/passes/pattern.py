"""Declarative rewrite rules: a `Pat` tree matched against the graph, a named `Rule` that builds
the replacement (tinygrad's ``UPat`` / PyTensor's ``PatternNodeRewriter``).

    Rule("log1p_of_add_one", Pat("log", Pat("add", Pat.const(1), Pat.var("x"))),
         lambda g, x: g.emit("log1p", x))

Operands of commutative primitives are matched in either order. A constant pattern also
matches a constant scalar broadcast to a shape (how uniform arrays are traced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir.ops.elementwise import COMMUTATIVE


class Pat:
    __slots__ = ("ops", "args", "name", "value", "where")

    def __init__(self, op=None, *args, name=None, where=None):
        self.ops = (op,) if isinstance(op, str) else op   # None: any value
        self.args = args
        self.name = name
        self.value = None            # a constant pattern matches this scalar
        self.where = where           # extra predicate on the matched value

    @staticmethod
    def var(name, where=None) -> "Pat":
        return Pat(None, name=name, where=where)

    @staticmethod
    def const(value, name=None) -> "Pat":
        p = Pat(None, name=name)
        p.value = value
        return p

    def match(self, value, caps: dict) -> bool:
        if self.value is not None:
            c = const_scalar(value)
            if c is None or not _equal(c, self.value):
                return False
        elif self.ops is not None:
            node = value.node
            if node is None or node.op not in self.ops:
                return False
            if self.args:
                if not self._match_args(node, caps):
                    return False
        if self.where is not None and not self.where(value):
            return False
        if self.name is not None:
            seen = caps.get(self.name)
            if seen is not None and seen is not value:
                return False
            caps[self.name] = value
        return True

    def _match_args(self, node, caps) -> bool:
        if len(node.inputs) != len(self.args):
            return False
        orders = [node.inputs]
        if node.op in COMMUTATIVE and len(node.inputs) == 2:
            orders.append(node.inputs[::-1])
        for inputs in orders:
            trial = dict(caps)
            if all(p.match(v, trial) for p, v in zip(self.args, inputs)):
                caps.clear()
                caps.update(trial)
                return True
        return False


def const_scalar(value):
    """The scalar a value is known to hold everywhere (a constant, or one broadcast), or None."""
    node = value.node
    while node is not None and node.op in ("broadcast_to", "reshape"):
        node = node.inputs[0].node
    if node is None or node.op != "const":
        return None
    a = node.params["value"].array
    return a.reshape(-1)[0] if a.size == 1 else None


def _equal(a, b) -> bool:
    return bool(np.asarray(a == b)) and np.signbit(np.float64(a)) == np.signbit(np.float64(b))


@dataclass(frozen=True)
class Rule:
    """``build(g, **captures)`` returns the replacement value, or None to decline."""
    name: str
    pattern: Pat
    build: Callable

    @property
    def roots(self):
        return self.pattern.ops
