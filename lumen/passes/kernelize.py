"""Turns every elementwise and reduce node into a single-op `kernel` (the form fusion merges
and the backends lower)."""
from __future__ import annotations

from ..ir.ops import ELEMENTWISE, REDUCE
from ..ir.ops.kernel import KernelBody, Reduction, ScalarOp
from .rebuild import Rebuilder


def kernelize(graph):
    rb = Rebuilder(graph)
    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        if node.op in ELEMENTWISE:
            op = ScalarOp(node.op, tuple(range(len(inputs))), node.out.dtype,
                          tuple(sorted(node.params.items())))
            params = {"body": KernelBody(len(inputs), (op,)), "reduce": None,
                      "space": node.out.type.shape}
        elif node.op in REDUCE:
            red = Reduction(node.op, tuple(node.params["axes"]), node.params["keepdims"])
            params = {"body": KernelBody(1, ()), "reduce": red, "space": node.inputs[0].type.shape}
        else:
            rb.keep(node)
            continue
        new = rb.add("kernel", inputs, params, [node.out.type], node.loc, node.checks)
        rb.replace(node, new)
    return rb.finish()
