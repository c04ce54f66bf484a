"""Loop rewrites on traced scan bodies (run before the bodies themselves are optimised).

- Loop-invariant code motion: body nodes that depend on neither the carries nor the per-step
  inputs are computed once, before the loop, and passed in as captured values.
- Batching over time: body nodes that depend on the per-step inputs but not on the carries
  (``x_t @ Wx + b`` in an RNN) are computed for all steps at once before the loop, on the
  stacked sequences — one matrix product instead of one per step — and the body reads their
  step slice like any other sequence.
"""
from __future__ import annotations

from ..ir.builder import GraphBuilder
from ..ir.dims import Dim
from ..ir.graph import Node
from ..ir.ops import ELEMENTWISE, OPS, REDUCE
from .rebuild import Rebuilder

_NEVER_MOVED = ("const", "iota", "dim")


def hoist_loops(graph):
    """Apply both rewrites to every scan in ``graph`` (nested scans first)."""
    if not any(n.op == "scan" for n in graph.nodes):
        return graph
    rb = Rebuilder(graph)
    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        if node.op != "scan":
            rb.keep(node)
            continue
        body = hoist_loops(node.params["body"])
        outs = _rewrite_scan(rb, node, inputs, body)
        for old, new in zip(node.outputs, outs):
            rb.map[old] = new
    return rb.finish()


def _emit(rb, op, inputs, params, loc):
    types, checks = OPS[op].infer([v.type for v in inputs], params)
    return rb.add_node(Node(op, inputs, params, types, loc, checks)).outputs


def _stacked_params(node, length):
    """Params of ``node``'s primitive applied to operands with a leading time axis, or None
    when it cannot be batched that way."""
    op, p = node.op, node.params
    if op in ELEMENTWISE or op in ("matmul", "gemm"):
        return dict(p)
    if op in ("reshape", "broadcast_to"):
        return dict(p, shape=(length,) + tuple(p["shape"]))
    if op == "transpose":
        return dict(p, perm=(0,) + tuple(a + 1 for a in p["perm"]))
    if op in REDUCE:
        return dict(p, axes=tuple(a + 1 for a in p["axes"]))
    return None


def _rewrite_scan(rb, node, inputs, body):
    p = node.params
    nc, nx = p["n_carry"], p["n_xs"]
    length = p["length"]
    c_in, x_in, k_in = body.inputs[:nc], body.inputs[nc:nc + nx], body.inputs[nc + nx:]
    outer_x, outer_k = inputs[nc:nc + nx], inputs[nc + nx:]
    varying, per_step = set(c_in), set(x_in)
    outside = dict(zip(k_in, outer_k))          # body value -> outer value (invariant)
    stacked = dict(zip(x_in, outer_x))          # body value -> outer stacked value
    moved = set()
    for n in body.nodes:
        if any(v in varying for v in n.inputs) or n.op in _NEVER_MOVED or n.op == "scan":
            varying.update(n.outputs)
            continue
        if all(v in outside for v in n.inputs):
            outs = _emit(rb, n.op, [outside[v] for v in n.inputs], n.params, n.loc)
            outside.update(zip(n.outputs, outs))
            moved.add(n)
            continue
        params = _stacked_params(n, length) if all(v in outside or v in stacked for v in n.inputs) \
            else None
        if params is None or len(n.outputs) != 1:
            varying.update(n.outputs)
            continue
        ins = [_align_time(rb, stacked[v], n, length) if v in stacked else outside[v]
               for v in n.inputs]
        if n.op in ("matmul", "gemm") and n.inputs[1] in stacked:
            varying.update(n.outputs)           # only a batched left operand is one product
            continue
        (out,) = _emit(rb, n.op, ins, params, n.loc)
        stacked[n.out] = out
        per_step.update(n.outputs)
        moved.add(n)
    if not moved:
        return _emit(rb, "scan", inputs, dict(p, body=body), node.loc)
    return _rebuild(rb, node, inputs, body, moved, outside, stacked, varying)


def _align_time(rb, value, node, length):
    """A stacked operand whose per-step rank is below the result's gets axes of length 1
    after the time axis, so NumPy's right-aligned broadcasting still pairs the right axes."""
    missing = node.out.ndim - (value.ndim - 1)
    if missing <= 0 or node.op in ("matmul", "gemm"):
        return value
    shape = (value.shape[0],) + (Dim.const(1),) * missing + tuple(value.shape[1:])
    (out,) = _emit(rb, "reshape", [value], {"shape": shape}, node.loc)
    return out


def _rebuild(rb, node, inputs, body, moved, outside, stacked, varying):
    """The scan again, its body without the moved nodes: their results come in as new
    sequences (batched values) or new captured values (invariants)."""
    p = node.params
    nc, nx = p["n_carry"], p["n_xs"]
    used = set(body.outputs)
    for n in body.nodes:
        if n not in moved:
            used.update(n.inputs)
    new_x = [v for v in stacked if v not in body.inputs and v in used]
    new_k = [v for v in outside if v not in body.inputs and v in used]
    b = GraphBuilder(body.name)
    env = {}
    groups = ((body.inputs[:nc + nx], "in"), (new_x, "step"), (body.inputs[nc + nx:], "cap"),
              (new_k, "hoisted"))
    for values, prefix in groups:
        for i, v in enumerate(values):
            env[v] = b.add_input(v.type, f"{prefix}{i}")
    for n in body.nodes:
        if n in moved:
            continue
        new = b.emit(n.op, [env[v] for v in n.inputs], n.loc, **n.params)
        env.update(zip(n.outputs, new.outputs))
    new_body = b.build([env[v] for v in body.outputs])
    scan_inputs = list(inputs[:nc + nx]) + [stacked[v] for v in new_x] + \
        list(inputs[nc + nx:]) + [outside[v] for v in new_k]
    return _emit(rb, "scan", scan_inputs, dict(p, body=new_body, n_xs=nx + len(new_x)), node.loc)
