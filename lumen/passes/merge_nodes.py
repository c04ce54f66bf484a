"""Merging pairs of nodes into one node that produces both's values (the CPU backend's sibling
fusions: `matvec_siblings`, `reduce_siblings`)."""
from __future__ import annotations

import heapq

from ..ir.graph import Graph
from .rebuild import Rebuilder
from .rewrite import remove_dead


def dependence(graph: Graph):
    """-> ``depends(a, b)``: whether node ``a`` of ``graph`` reads, however indirectly, a value
    node ``b`` produces (two nodes may merge only where neither depends on the other, or the
    merged node computes the one's input itself)."""
    producer = {v: n for n in graph.nodes for v in n.outputs}
    position = {n: k for k, n in enumerate(graph.nodes)}
    ancestors = {}      # node -> bit set (by position) of the nodes it depends on
    for n in graph.nodes:
        bits = 0
        for v in n.inputs:
            p = producer.get(v)
            if p is not None:
                bits |= ancestors[p] | (1 << position[p])
        ancestors[n] = bits
    return lambda a, b: bool(ancestors[a] >> position[b] & 1)


def merge_one_by_one(graph: Graph, first_pair) -> Graph:
    """``graph`` with pairs merged one at a time: ``first_pair(graph)`` -> (merged node, the
    nodes whose outputs it produces in order, the one whose place it takes), or None when there
    is none left. Each pair is found in the graph the last merge made, so that the dependences
    it is checked against are those of the graph as it stands: two pairs each fine alone may
    not merge both (each merged node would need the other's value first)."""
    while (found := first_pair(graph)) is not None:
        node, olds, slot = found
        graph = merge(graph, {node: olds}, {node: slot})
    return graph


def merge(graph: Graph, parts: dict, slots: dict) -> Graph:
    """``graph`` with each merged node of ``parts`` (merged node -> the nodes whose outputs it
    produces, in its outputs' order) in the place of ``slots[merged]`` (one of those nodes), the
    others dropped; then sorted so that every node comes after its inputs' producers, otherwise
    in the order it had."""
    at = {slot: node for node, slot in slots.items()}
    gone = {old for olds in parts.values() for old in olds} - set(at)
    nodes = [at.get(n, n) for n in graph.nodes if n not in gone]
    rb = Rebuilder(graph)
    for node in _stable_order(nodes, parts):
        new = rb.add(node.op, [rb[v] for v in node.inputs], node.params,
                     [o.type for o in node.outputs], node.loc, node.checks, node.origin)
        if node in parts:
            olds = [v for old in parts[node] for v in old.outputs]
            for old, value in zip(olds, new.outputs):
                rb.map[old] = value
        else:
            rb.replace(node, new)
    return remove_dead(rb.finish())


def _stable_order(nodes, parts):
    """``nodes`` sorted so that each comes after its inputs' producers, otherwise in their
    given order (a merged node in ``parts`` produces the values of those it replaces)."""
    producer = {v: n for n in nodes for v in n.outputs}
    for node, replaced in parts.items():
        for old in replaced:
            for v in old.outputs:
                producer[v] = node
    position = {n: k for k, n in enumerate(nodes)}
    waiting = {n: {producer[v] for v in n.inputs if v in producer} - {n} for n in nodes}
    consumers = {}
    for n, needs in waiting.items():
        for p in needs:
            consumers.setdefault(p, []).append(n)
    ready = [position[n] for n, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for c in consumers.get(node, ()):
            waiting[c].discard(node)
            if not waiting[c]:
                heapq.heappush(ready, position[c])
    assert len(order) == len(nodes), "merged nodes that need each other's values"
    return order
