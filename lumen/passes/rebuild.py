"""Building a new graph from an old one node by node (passes never edit a graph in place)."""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ir.ops import BODY_PARAMS


class Rebuilder:
    """Maps the old graph's values to the new one's while a pass emits nodes. Adding a node
    that computes what an earlier one does returns the earlier one (common subexpressions
    are merged as a side effect of every pass)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.map = {v: v for v in graph.inputs}
        self.nodes = []
        self._by_key = {}
        self.dim_aliases = dict(graph.dim_aliases)

    def __getitem__(self, value):
        return self.map[value]

    def add_node(self, node: Node) -> Node:
        key = node.key()
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        self._by_key[key] = node
        self.nodes.append(node)
        return node

    def add(self, op, inputs, params, out_types, loc, checks=(), origin=None) -> Node:
        return self.add_node(Node(op, inputs, params, out_types, loc, checks, origin))

    def keep(self, node: Node) -> Node:
        """Re-emit ``node`` unchanged but for its (mapped) inputs."""
        new = self.add(node.op, [self[v] for v in node.inputs], node.params,
                       [o.type for o in node.outputs], node.loc, node.checks, node.origin)
        self.replace(node, new)
        return new

    def replace(self, old: Node, new: Node):
        for a, b in zip(old.outputs, new.outputs):
            self.map[a] = b

    def finish(self) -> Graph:
        g = derived_graph(self.graph, self.nodes, [self[v] for v in self.graph.outputs])
        g.dim_aliases = self.dim_aliases
        return g


def map_bodies(graph: Graph, transform) -> Graph:
    """``graph`` with ``transform`` applied to the body graphs of its loops and branches (a
    transform that should reach nested bodies applies itself there); the same graph when it
    has none."""
    if not any(n.op in BODY_PARAMS for n in graph.nodes):
        return graph
    rb = Rebuilder(graph)
    for node in graph.nodes:
        if node.op not in BODY_PARAMS:
            rb.keep(node)
            continue
        params = dict(node.params)
        for key in BODY_PARAMS[node.op]:
            params[key] = transform(params[key])
        new = rb.add(node.op, [rb[v] for v in node.inputs], params,
                     [o.type for o in node.outputs], node.loc, node.checks, node.origin)
        rb.replace(node, new)
    return rb.finish()


def derived_graph(graph: Graph, nodes, outputs, inputs=None) -> Graph:
    """A graph with ``graph``'s inputs (or ``inputs``, values of the same kinds) and metadata
    but new nodes and outputs."""
    g = Graph(graph.name, graph.inputs if inputs is None else inputs, nodes, outputs, graph.guards)
    g.input_names = graph.input_names
    g.input_contiguous = graph.input_contiguous
    g.donated = graph.donated
    g.captured = graph.captured
    g.dim_aliases = graph.dim_aliases
    g.int_guards = graph.int_guards
    g.kept_checks = list(graph.kept_checks)
    return g
