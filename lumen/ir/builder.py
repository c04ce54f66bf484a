"""`GraphBuilder`: appends nodes in SSA order, applying each primitive's type rule."""
from __future__ import annotations

from .graph import Graph, Node, Value
from .ops import OPS
from .types import TensorType


class GraphBuilder:
    def __init__(self, name: str):
        self.name = name
        self.inputs: list[Value] = []
        self.input_names: list[str] = []
        self.nodes: list[Node] = []

    def add_input(self, type: TensorType, name: str) -> Value:
        v = Value(type)
        self.inputs.append(v)
        self.input_names.append(name)
        return v

    def emit(self, op: str, inputs, loc=None, **params) -> Node:
        """Append ``op(inputs)``; size checks that already fail on the traced sizes raise here,
        naming the user's line; the others are kept for the compiled code to check."""
        opdef = OPS[op]
        types, checks = opdef.infer([v.type for v in inputs], params)
        for c in checks:
            if not c.holds(c.a.hint, c.b.hint):
                where = f" (at {loc})" if loc else ""
                raise c.error(f"{op}: {c.what}; sizes {c.a.hint} and {c.b.hint}{where}")
        checks = [c for c in checks if not (c.a.is_const and c.b.is_const)]
        node = Node(op, inputs, params, types, loc, checks)
        self.nodes.append(node)
        return node

    def build(self, outputs, guards=None) -> Graph:
        g = Graph(self.name, self.inputs, self.nodes, outputs, guards)
        g.input_names = list(self.input_names)
        return g
