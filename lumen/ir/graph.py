"""SSA graph: `Value`, `Node`, `Graph`.

A `Node` applies one primitive to input `Value`s and defines one or more output `Value`s. Nodes
are immutable once built; a pass builds a new `Graph` rather than editing one in place. Every node
records the user's source line that created it (``loc``) so errors and debug output can name it.
"""
from __future__ import annotations

import itertools

from .types import TensorType

_ids = itertools.count()


class Value:
    """One SSA value: an input of a graph or an output of a node."""

    __slots__ = ("type", "node", "index", "id")

    def __init__(self, type: TensorType, node: "Node | None" = None, index: int = 0):
        self.type, self.node, self.index, self.id = type, node, index, next(_ids)

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def shape(self):
        return self.type.shape

    @property
    def ndim(self):
        return self.type.ndim

    def __repr__(self):
        return f"Value#{self.id}:{self.type.text()}"


class Check:
    """A run-time condition on sizes that a node needs (e.g. broadcast compatibility).

    ``kind``: ``bcast`` (a == b or either is 1), ``expand`` (a == b or a is 1), ``eq`` (a == b)
    or ``le`` (a <= b).
    """

    __slots__ = ("kind", "a", "b", "what", "error")

    def __init__(self, kind, a, b, what, error=ValueError):
        self.kind, self.a, self.b, self.what, self.error = kind, a, b, what, error

    def holds(self, a: int, b: int) -> bool:
        if self.kind == "bcast":
            return a == b or a == 1 or b == 1
        if self.kind == "expand":
            return a == b or a == 1
        if self.kind == "eq":
            return a == b
        return a <= b

    def __repr__(self):
        return f"check {self.kind}({self.a.text()}, {self.b.text()})"


class Node:
    """An application of primitive ``op`` with static ``params``. ``origin`` names the rewrite
    rule that created the node (None for traced nodes), so debug output can blame it."""

    __slots__ = ("op", "inputs", "params", "outputs", "loc", "checks", "origin")

    def __init__(self, op: str, inputs, params: dict, out_types, loc=None, checks=(), origin=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.params = dict(params)
        self.outputs = tuple(Value(t, self, i) for i, t in enumerate(out_types))
        self.loc = loc
        self.checks = tuple(checks)
        self.origin = origin

    def key(self):
        """What makes two nodes compute the same thing (for common-subexpression merging);
        operands of commutative primitives in canonical (sorted) order, so a*b meets b*a."""
        from .ops.elementwise import COMMUTATIVE
        ids = tuple(v.id for v in self.inputs)
        if self.op in COMMUTATIVE:
            ids = tuple(sorted(ids))
        return (self.op, ids, tuple(sorted(self.params.items())))

    @property
    def out(self) -> Value:
        (v,) = self.outputs
        return v

    def __repr__(self):
        return f"Node({self.op})"


def node_site(node) -> str:
    """How an error message names where a node came from."""
    return f"{node.op} at {node.loc or node.op}"


class Graph:
    """A function in SSA form: inputs, nodes in a valid execution order, outputs."""

    def __init__(self, name, inputs, nodes, outputs, guards=None):
        self.name = name
        self.inputs = list(inputs)
        self.nodes = list(nodes)
        self.outputs = list(outputs)
        self.guards = dict(guards or {})
        self.input_names = None
        self.input_contiguous = [False] * len(self.inputs)
        self.captured = []          # arrays appended to the arguments at every call
        self.rewrites = []          # (rule name, node it replaced), from the pass that made it
        self.int_guards = []        # (argument position, int range) the trace depended on
        self.dim_aliases = {}       # input size -> the size checks proved it equals
        self.kept_checks = []       # (Check, where) of nodes rewritten or found dead: still run
        self.donated = frozenset()  # positions of the inputs whose memory results may take

    def unaliased(self, shape) -> tuple:
        """``shape`` with each input size the checks proved equal to another replaced by that
        one (`dim_aliases`): sizes that compare equal here are equal at run time."""
        return tuple(self.dim_aliases.get(d, d) for d in shape)

    def all_checks(self):
        """Every size check the compiled code must run: (Check, where it comes from). A node a
        rewrite removed still had its operands' sizes checked in NumPy, and passes may have
        relied on the sizes it proved equal."""
        for node in self.nodes:
            for c in node.checks:
                yield c, node_site(node)
        yield from self.kept_checks

    def __repr__(self):
        from .printer import format_graph
        return format_graph(self)

    def uses(self) -> dict:
        """Map Value -> list of nodes that read it."""
        out = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v, []).append(n)
        return out
