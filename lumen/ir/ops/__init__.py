"""The op registry: one `OpDef` per primitive, keyed by name, gathered explicitly from the
family modules (no registration by import side effect)."""
from __future__ import annotations

from . import (control, creation, cumulative, elementwise, indexing, kernel, linalg, movement,
               reduce, stable)
from .base import Kind, OpDef

OPS: dict[str, OpDef] = {}
for _family in (elementwise, stable, reduce, movement, indexing, linalg, creation, cumulative,
                kernel, control):
    for _name, _def in _family.OPS.items():
        assert _name not in OPS, f"primitive {_name} registered twice"
        OPS[_name] = _def


def ops_of_kind(kind: Kind) -> frozenset:
    return frozenset(name for name, d in OPS.items() if d.kind is kind)


ELEMENTWISE = ops_of_kind(Kind.ELEMENTWISE)
REDUCE = ops_of_kind(Kind.REDUCE)
MOVEMENT = ops_of_kind(Kind.MOVEMENT)
CONTROL = ops_of_kind(Kind.CONTROL)

#: The parameters of a control-flow node that hold nested graphs.
BODY_PARAMS = {"scan": ("body",), "while": ("cond", "body"), "while_grad": ("cond", "body", "vjp"),
               "cond": ("true", "false")}


def nested_nodes(graph):
    """Every node of ``graph`` and of the bodies it holds, in program order (a node, then
    its bodies' nodes)."""
    for node in graph.nodes:
        yield node
        for key in BODY_PARAMS.get(node.op, ()):
            yield from nested_nodes(node.params[key])


__all__ = ["OPS", "OpDef", "Kind", "ELEMENTWISE", "REDUCE", "MOVEMENT", "CONTROL", "BODY_PARAMS",
           "nested_nodes",
           "ops_of_kind"]
