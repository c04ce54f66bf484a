"""Sizes that the graph's checks or guards prove equal are made the same `Dim`.

``a + b`` for two inputs of length n and m records a check that n and m broadcast; since input
sizes are never 1 (compiled code is specialised on length-1 axes), the check means n == m. A
guard ``a - b == 0`` (`ir.equal_sizes`) says so outright. This pass rewrites every type and
parameter to use one representative per class of equal sizes, in loop and branch bodies too,
so that later passes see that ``a`` and ``b`` have the same shape (fusion, dense loops). The
checks themselves are kept as they were, and codegen runs them all (and the guards) before any
kernel. The graph's inputs keep their types; ``graph.dim_aliases`` maps their sizes to the
representatives, for codegen to see the same equalities.
"""
from __future__ import annotations

from ..ir.dims import Dim, binary
from ..ir.equal_sizes import equal_sizes
from ..ir.graph import Node, Value
from ..ir.ops import BODY_PARAMS
from ..ir.types import TensorType
from .rebuild import Rebuilder, derived_graph


def unify_dims(graph):
    return _unified(graph, top_level=True)


def unify_body_dims(graph):
    """The sizes of ``graph``'s loop and branch bodies only, before the bodies are optimised
    (the top level's nodes keep theirs until its own `unify_dims`: its rewrites compare the
    types of nodes they make from the graph's inputs, which keep their sizes, with the types
    of the nodes they replace)."""
    return _unified(graph, top_level=False)


def _unified(graph, top_level):
    classes = equal_sizes(graph)
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

    rb = Rebuilder(graph)
    if top_level:
        for v in graph.inputs:
            for d in v.type.shape:
                if d.op == "input" and sub(d) != d:
                    rb.dim_aliases[d] = sub(d)
    _substitute_nodes(graph, rb, sub, top_level)
    return rb.finish()


def _substitute_nodes(graph, rb, sub, top_level=True):
    """Emit ``graph``'s nodes into ``rb`` with every size replaced by ``sub(size)`` (at this
    level only if ``top_level``), in the bodies of loops and branches too: the prologue
    checks (and guards) every equality used, before any body runs."""
    def sub_any(obj):
        if isinstance(obj, Dim):
            return sub(obj)
        if isinstance(obj, tuple):
            return tuple(sub_any(o) for o in obj)
        return obj

    here = sub_any if top_level else (lambda obj: obj)
    for node in graph.nodes:
        if not top_level and node.op not in BODY_PARAMS:
            rb.keep(node)
            continue
        params = {k: here(v) for k, v in node.params.items()}
        for key in BODY_PARAMS.get(node.op, ()):
            params[key] = _substituted_body(node.params[key], sub)
        types = [TensorType(o.dtype, here(tuple(o.shape)), o.type.weak) for o in node.outputs]
        new = rb.add_node(Node(node.op, [rb[v] for v in node.inputs], params, types, node.loc,
                               node.checks, node.origin))
        rb.replace(node, new)


def _substituted_body(body, sub):
    """A loop or branch body with its sizes replaced: new inputs of the new types."""
    inputs = [Value(TensorType(v.dtype, tuple(sub(d) for d in v.shape), v.type.weak))
              for v in body.inputs]
    rb = Rebuilder(body)
    rb.map.update(zip(body.inputs, inputs))
    _substitute_nodes(body, rb, sub)
    return derived_graph(body, rb.nodes, [rb[v] for v in body.outputs], inputs)
