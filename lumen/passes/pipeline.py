"""The ordered pass pipeline from a traced graph to the graph of kernels codegen lowers."""
from __future__ import annotations

from ..ir.verify import verify
from .kernelize import kernelize

#: (name, pass) in order; each takes a Graph and returns a new one.
PIPELINE = (("kernelize", kernelize),)


def optimize(graph, check=False):
    for _name, run in PIPELINE:
        graph = run(graph)
        if check:
            verify(graph)
    return graph
