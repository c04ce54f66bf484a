"""Sizes that the graph's checks prove equal are made the same `Dim`.

``a + b`` for two inputs of length n and m records a check that n and m broadcast; since input
sizes are never 1 (compiled code is specialised on length-1 axes), the check means n == m. This
pass rewrites every type and parameter to use one representative per class of equal sizes, so
that later passes see that ``a`` and ``b`` have the same shape (fusion, dense loops). The checks
themselves are kept as they were, and codegen runs them all before any kernel. The graph's
inputs keep their types; ``graph.dim_aliases`` maps their sizes to the representatives, for
codegen to see the same equalities.
"""
from __future__ import annotations

from ..ir.dims import Dim, binary
from ..ir.graph import Node
from ..ir.types import TensorType
from .rebuild import Rebuilder


class _Classes:
    def __init__(self):
        self.parent = {}

    def find(self, d):
        while self.parent.get(d, d) != d:
            d = self.parent[d]
        return d

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if _rank(rb) < _rank(ra):
            ra, rb = rb, ra
        self.parent[rb] = ra


def _rank(d: Dim):
    """Representatives: constants first, then input sizes in argument order, then the rest."""
    if d.op == "const":
        return (0, d.value, 0)
    if d.op == "input":
        return (1, *d.args)
    return (2, len(d.text()), 0)


def _equalities(graph):
    classes = _Classes()
    for c, _where in graph.all_checks():
        if c.kind == "eq" or (c.kind in ("bcast", "expand") and c.a.not_one and c.b.not_one):
            classes.union(c.a, c.b)
    return classes


def unify_dims(graph):
    classes = _equalities(graph)
    if not classes.parent:
        return graph
    memo = {}

    def sub(d: Dim) -> Dim:
        if d in memo:
            return memo[d]
        r = classes.find(d)
        if r != d:
            out = sub(r)
        elif d.op in ("const", "input"):
            out = d
        else:
            out = binary(d.op, sub(d.args[0]), sub(d.args[1]))
            r2 = classes.find(out)
            out = r2 if r2 != out else out
        memo[d] = out
        return out

    def sub_any(obj):
        if isinstance(obj, Dim):
            return sub(obj)
        if isinstance(obj, tuple):
            return tuple(sub_any(o) for o in obj)
        return obj

    rb = Rebuilder(graph)
    for v in graph.inputs:
        for d in v.type.shape:
            if d.op == "input" and sub(d) != d:
                rb.dim_aliases[d] = sub(d)
    for node in graph.nodes:
        params = {k: sub_any(v) for k, v in node.params.items()}
        types = [TensorType(o.dtype, sub_any(tuple(o.shape)), o.type.weak) for o in node.outputs]
        new = rb.add_node(Node(node.op, [rb[v] for v in node.inputs], params, types, node.loc,
                               node.checks, node.origin))
        rb.replace(node, new)
    return rb.finish()
