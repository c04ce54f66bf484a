"""Fusion of an elementwise kernel with a reduction of the same values: one loop, not two.

Fusion (passes/fuse.py) puts a producer into each consumer's loop, but a value that is also
needed whole stays a kernel of its own: softmax's ``e = exp(z - m)`` is summed (``e.sum(1)``)
and returned; an MLP step's backward pass computes ``d = g * (1 - h * h)`` for a product and
again, fused, inside the bias gradient ``d.sum(0)``. Each such pair loops twice over the same
space and costs two loop functions to compile. This pass merges a reducing kernel R with an
elementwise kernel E over the same space where R reads E's value at each point (the producer
and its consumer) or computes the same scalar program from the same inputs (the siblings
fusion left), into one `kernel_map_reduce` that stores E's value at every point it reduces.

Neither may depend on the other otherwise. Applied by the CPU path before lowering
(frontend/compile.py), after `matvec_siblings`; the GPU backend's kernels stay as the
pipeline left them.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.graph import Graph, Node
from ..ir.ops.kernel import KernelBody, used_inputs
from .merge_nodes import dependence, merge_one_by_one


def fuse_reduce_siblings(graph: Graph) -> Graph:
    """``graph`` with each (elementwise kernel, reduction of its values) pair merged into one
    `kernel_map_reduce`; the same graph when there is none."""
    return merge_one_by_one(graph, _first_pair)


def _first_pair(graph: Graph):
    """(the merged node, (reduction, elementwise kernel), reduction) of the first reduction
    that has an elementwise kernel to merge with, in graph order; None if none has."""
    maps = {}           # space -> elementwise kernels over it
    for n in graph.nodes:
        if n.op == "kernel" and n.params["reduce"] is None and n.params["body"].ops:
            maps.setdefault(graph.unaliased(n.params["space"]), []).append(n)
    reductions = [n for n in graph.nodes if n.op == "kernel" and n.params["reduce"] is not None
                  and graph.unaliased(n.params["space"]) in maps]
    if not reductions:
        return None
    producer = {v: n for n in graph.nodes for v in n.outputs}
    depends = dependence(graph)
    for r in reductions:
        for e in maps[graph.unaliased(r.params["space"])]:
            if _reads(r, e):
                if any(p is e or p is not None and depends(p, e)
                       for p in (producer.get(v) for v in r.inputs if v is not e.out)):
                    continue
                reads = True
            elif _canonical(r) == _canonical(e) and not depends(r, e) and not depends(e, r):
                reads = False
            else:
                continue
            return _merged(e, r, reads), (r, e), r
    return None


def _reads(r: Node, e: Node) -> bool:
    """Whether reduction ``r``'s body reads ``e``'s value (and its epilogue does not)."""
    inputs = {k for k, v in enumerate(r.inputs) if v is e.out}
    late = used_inputs(r.params.get("epilogue"), n_lead=1)
    return bool(inputs & used_inputs(r.params["body"])) and not inputs & late


def _canonical(node: Node) -> tuple:
    """A kernel's scalar program with its inputs named by the values they are."""
    body = node.params["body"]

    def name(a):
        return ("value", node.inputs[a].id) if a < body.n_inputs else ("op", a - body.n_inputs)
    return tuple((s.op, s.dtype, s.params, tuple(map(name, s.args))) for s in body.ops)


def _merged(e: Node, r: Node, reads: bool) -> Node:
    """The `kernel_map_reduce` of reduction ``r`` that stores ``e``'s value: its inputs are
    e's, then r's others; its body e's ops, then (where r reads e's value) r's."""
    inputs = list(e.inputs)
    index = {}
    for k, v in enumerate(inputs):
        index.setdefault(v, k)
    for v in r.inputs:
        if v is not e.out and v not in index:
            index[v] = len(inputs)
            inputs.append(v)
    n, eb, rb = len(inputs), e.params["body"], r.params["body"]
    keep = n + len(eb.ops) - 1
    ops = _renumbered(eb, 0, lambda k: index[e.inputs[k]], n)
    if reads:
        ops += _renumbered(rb, 0, lambda k: keep if r.inputs[k] is e.out else index[r.inputs[k]],
                           n + len(eb.ops))
    params = {**r.params, "body": KernelBody(n, tuple(ops)), "keep": keep}
    epilogue = r.params.get("epilogue")
    if epilogue is not None:
        params["epilogue"] = KernelBody(1 + n, tuple(_renumbered(
            epilogue, 1, lambda k: 1 + index[r.inputs[k]], 1 + n)))
    return Node("kernel_map_reduce", inputs, params, [r.out.type, e.out.type], r.loc,
                tuple(e.checks) + tuple(r.checks), r.origin)


def _renumbered(body, lead, input_value, start) -> list:
    """``body``'s ops with their arguments renumbered: its first ``lead`` values stay, its
    input k becomes value ``input_value(k)`` and its ops are numbered from ``start``."""
    def arg(a):
        if a < lead:
            return a
        if a < body.n_inputs:
            return input_value(a - lead)
        return start + a - body.n_inputs
    return [replace(s, args=tuple(map(arg, s.args))) for s in body.ops]
