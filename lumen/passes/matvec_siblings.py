"""Sibling fusion of a backward product and a weight update: one pass over each weight matrix.

An SGD step at batch 1 reads every weight matrix W twice after the forward pass: the backward
product ``d @ W.T`` (BLAS's gemv) and the update ``W - lr * (h.T @ d)`` (an elementwise kernel
over W's space). Neither needs the other's result, so both can run in one loop over W's rows:
each row is loaded once, its dot product with ``d`` accumulated while the updated row is
computed and stored. Where W no longer fits in the caches (784 -> 1000 -> 1000 -> 1000 -> 10,
4 MB per matrix) that is one read of W fewer per layer.

This pass pairs such siblings into a `kernel_matvec` node (ir/ops/kernel.py): a ``matmul(v,
transpose(W))`` with v a single row, and an elementwise kernel whose space is W's shape and
which reads W itself; neither may depend on the other. The fused node runs where both its
operands exist (the graph is re-sorted, stably); the two nodes' size checks are kept on it.
The CPU path applies it to the optimised graph before lowering (frontend/compile.py); the GPU
backend's kernels stay as the pipeline left them.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .merge_nodes import dependence, merge


def fuse_matvec_siblings(graph: Graph) -> Graph:
    """``graph`` with each (row-vector product with W.T, elementwise kernel over W) pair of
    independent nodes merged into one `kernel_matvec`; the same graph when there is none."""
    pairs = _pairs(graph)
    if not pairs:
        return graph
    parts, slots = {}, {}    # kernel_matvec -> (kernel, matmul) it replaces / the matmul
    for product, (update, index) in pairs.items():
        node = Node("kernel_matvec", list(update.inputs) + [product.inputs[0]],
                    {**update.params, "matrix": index}, [update.out.type, product.out.type],
                    update.loc, tuple(product.checks) + tuple(update.checks), update.origin)
        parts[node], slots[node] = (update, product), product
    return merge(graph, parts, slots)


def _pairs(graph: Graph) -> dict:
    """matmul node -> (elementwise kernel node, index of W among its inputs), each node in at
    most one pair."""
    producer = {v: n for n in graph.nodes for v in n.outputs}
    readers = {}        # W -> [(elementwise kernel over W's space, W's index among its inputs)]
    for n in graph.nodes:
        if n.op == "kernel" and n.params["reduce"] is None and len(n.params["space"]) == 2:
            for index, v in enumerate(n.inputs):
                if graph.unaliased(v.type.shape) == graph.unaliased(n.params["space"]):
                    readers.setdefault(v, []).append((n, index))
                    break
    candidates = [(n, readers[w]) for n in graph.nodes
                  if (w := _row_product_matrix(n, producer)) is not None and w in readers]
    if not candidates:
        return {}
    depends = dependence(graph)
    pairs, taken = {}, set()
    for n, kernels in candidates:
        for update, index in kernels:
            if update not in taken and not depends(update, n) and not depends(n, update):
                pairs[n] = (update, index)
                taken.add(update)
                break
    return pairs


def _row_product_matrix(node, producer):
    """W when ``node`` is ``matmul(v, transpose(W))`` with v a float row vector (1, k) of W's
    dtype; else None."""
    if node.op != "matmul":
        return None
    v, wt = node.inputs
    t = producer.get(wt)
    if t is None or t.op != "transpose" or tuple(t.params["perm"]) != (1, 0):
        return None
    w = t.inputs[0]
    if v.type.ndim != 2 or v.type.shape[0].value != 1 or w.dtype.kind != "f" or \
            v.dtype != w.dtype or node.out.dtype != w.dtype:
        return None
    return w
