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

import heapq

from ..ir.graph import Graph, Node
from .rebuild import Rebuilder
from .rewrite import remove_dead


def fuse_matvec_siblings(graph: Graph) -> Graph:
    """``graph`` with each (row-vector product with W.T, elementwise kernel over W) pair of
    independent nodes merged into one `kernel_matvec`; the same graph when there is none."""
    pairs = _pairs(graph)
    if not pairs:
        return graph
    fused = {}          # matmul node -> its kernel_matvec (in terms of the old graph's values)
    parts = {}          # kernel_matvec -> (kernel, matmul) it replaces
    for product, (update, index) in pairs.items():
        node = Node("kernel_matvec", list(update.inputs) + [product.inputs[0]],
                    {**update.params, "matrix": index}, [update.out.type, product.out.type],
                    update.loc, tuple(product.checks) + tuple(update.checks), update.origin)
        fused[product], parts[node] = node, (update, product)
    updates = {update for update, _ in pairs.values()}
    nodes = [fused.get(n, n) for n in graph.nodes if n not in updates]
    rb = Rebuilder(graph)
    for node in _stable_order(nodes, parts):
        new = rb.add(node.op, [rb[v] for v in node.inputs], node.params,
                     [o.type for o in node.outputs], node.loc, node.checks, node.origin)
        if node in parts:
            update, product = parts[node]
            rb.map[update.out], rb.map[product.out] = new.outputs
        else:
            rb.replace(node, new)
    return remove_dead(rb.finish())


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
    position = {n: k for k, n in enumerate(graph.nodes)}
    ancestors = {}      # node -> bit set (by position) of the nodes it depends on
    for n in graph.nodes:
        bits = 0
        for v in n.inputs:
            p = producer.get(v)
            if p is not None:
                bits |= ancestors[p] | (1 << position[p])
        ancestors[n] = bits
    pairs, taken = {}, set()
    for n, kernels in candidates:
        for update, index in kernels:
            if update not in taken and not ancestors[update] >> position[n] & 1 and \
                    not ancestors[n] >> position[update] & 1:
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


def _stable_order(nodes, parts):
    """``nodes`` sorted so that each comes after its inputs' producers, otherwise in their
    given order (a fused node in ``parts`` produces the values of the two it replaces)."""
    producer = {v: n for n in nodes for v in n.outputs}
    for node, replaced in parts.items():
        for old in replaced:
            producer[old.out] = node
    position = {n: k for k, n in enumerate(nodes)}
    waiting = {n: {producer[v] for v in n.inputs if v in producer} for n in nodes}
    consumers = {}
    for n, needs in waiting.items():
        for p in needs:
            consumers.setdefault(p, []).append(n)
    ready = [position[n] for n, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for c in consumers.get(node, ()):
            waiting[c].discard(node)
            if not waiting[c]:
                heapq.heappush(ready, position[c])
    return order
