"""The IR verifier, run after every transform in tests and debug mode: SSA order, and every
node's recorded types agree with its primitive's type rule."""
from __future__ import annotations

from .ops import OPS


class IRError(AssertionError):
    pass


def verify(graph) -> None:
    """Check ``graph`` and, recursively, the bodies of its control-flow nodes."""
    from .ops import BODY_PARAMS
    defined = set(graph.inputs)
    for node in graph.nodes:
        if node.op not in OPS:
            raise IRError(f"unknown primitive {node.op!r}")
        for v in node.inputs:
            if v not in defined:
                raise IRError(f"{node.op} at {node.loc} reads a value defined later or elsewhere")
        types, _ = OPS[node.op].infer([v.type for v in node.inputs], node.params)
        for t, out in zip(types, node.outputs):
            if t.dtype != out.type.dtype or t.ndim != out.type.ndim or \
                    t.broadcastable != out.type.broadcastable:
                raise IRError(f"{node.op} at {node.loc}: recorded type {out.type.text()} but "
                              f"its rule gives {t.text()}")
        for key in BODY_PARAMS.get(node.op, ()):
            verify(node.params[key])
        defined.update(node.outputs)
    for v in graph.outputs:
        if v not in defined:
            raise IRError("graph output is not defined by the graph")
