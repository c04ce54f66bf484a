"""Building a new graph from an old one node by node (passes never edit a graph in place)."""
from __future__ import annotations

from ..ir.graph import Graph, Node


class Rebuilder:
    """Maps the old graph's values to the new one's while a pass emits replacement nodes."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.map = {v: v for v in graph.inputs}
        self.nodes = []

    def __getitem__(self, value):
        return self.map[value]

    def add(self, op, inputs, params, out_types, loc, checks=()) -> Node:
        node = Node(op, inputs, params, out_types, loc, checks)
        self.nodes.append(node)
        return node

    def keep(self, node: Node) -> Node:
        """Re-emit ``node`` unchanged but for its (mapped) inputs."""
        new = self.add(node.op, [self[v] for v in node.inputs], node.params,
                       [o.type for o in node.outputs], node.loc, node.checks)
        self.replace(node, new)
        return new

    def replace(self, old: Node, new: Node):
        for a, b in zip(old.outputs, new.outputs):
            self.map[a] = b

    def finish(self) -> Graph:
        g = Graph(self.graph.name, self.graph.inputs, self.nodes,
                  [self[v] for v in self.graph.outputs], self.graph.guards)
        g.input_names = self.graph.input_names
        g.input_contiguous = self.graph.input_contiguous
        g.captured = self.graph.captured
        return g
