"""The NumPy reference interpreter: runs a graph with each primitive's reference evaluation."""
from __future__ import annotations

import numpy as np

from .ops import OPS


def interpret(graph, arrays, on_node=None, shapes=None):
    """Evaluate ``graph`` on NumPy ``arrays``; ``on_node(node, outputs)`` sees every result.
    ``shapes``: the outermost graph's input shapes, which symbolic sizes refer to (a loop or
    branch body is given its enclosing function's)."""
    env = {v: np.asarray(a) for v, a in zip(graph.inputs, arrays)}
    if shapes is None:
        shapes = [np.shape(a) for a in arrays]
    for node in graph.nodes:
        outs = OPS[node.op].reference([env[v] for v in node.inputs], node.params, shapes)
        outs = [np.asarray(o, dtype=v.dtype) for o, v in zip(outs, node.outputs)]
        for v, o in zip(node.outputs, outs):
            env[v] = o
        if on_node is not None:
            on_node(node, outs)
    return [env[v] for v in graph.outputs]
