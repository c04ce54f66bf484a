"""`lumen.scan`, `lumen.while_loop`, `lumen.cond` (SPEC §3): Python functions traced once into
loop and branch bodies that run in native code."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir.dims import as_dim
from ..ir.types import TensorType
from . import pytree
from .trace import SubTrace, current, in_trace, to_value
from .tracer import Tracer


def _tracing(*trees) -> bool:
    """Inside a trace (the transform is traced inline), or given traced values."""
    if in_trace():
        return True
    leaves, _ = pytree.flatten(trees)
    return any(isinstance(x, Tracer) for x in leaves)


def _strong(t: TensorType) -> TensorType:
    return TensorType(t.dtype, t.shape)


def _body(name, fn, in_types, in_trees, n_args):
    """Trace ``fn`` over fresh inputs of ``in_types`` (grouped into the pytrees ``in_trees``);
    -> (sub-trace, result leaves as values, result treedef)."""
    sub = SubTrace(current(), name)
    with sub:
        tracers = [Tracer(sub.input(t, f"{name}{i}")) for i, t in enumerate(in_types)]
        groups, k = [], 0
        for tree, n in zip(in_trees, n_args):
            groups.append(pytree.unflatten(tree, tracers[k:k + n]) if tree is not None else None)
            k += n
        result = fn(*groups)
        leaves, tree = pytree.flatten(result)
        values = [sub.local(to_value(x)) for x in leaves]
    return sub, values, tree


def _match_state(sub, values, types, what):
    """Body results for a carried state: the state's dtypes and shapes, or a clear error."""
    from . import ops
    out = []
    with sub:
        for i, (v, t) in enumerate(zip(values, types)):
            if v.dtype != t.dtype:
                raise TypeError(f"{what}: leaf {i} changes dtype from {t.dtype} to {v.dtype} in "
                                f"the loop body; cast it (.astype) so every step has one type")
            if v.ndim != t.ndim:
                raise ValueError(f"{what}: leaf {i} changes from {t.ndim} to {v.ndim} dimensions "
                                 "in the loop body")
            if tuple(v.shape) != tuple(t.shape):
                v = to_value(ops.broadcast_to(Tracer(v), t.shape))
            out.append(v)
    return out


def scan(fn, init, xs=None, length=None, reverse=False):
    """``fn(carry, x) -> (carry, y)`` over the leading axis of ``xs`` (or ``length`` steps);
    -> (final carry, ys stacked along a new leading axis). Runs as a native loop; the length
    may be a run-time size (a new length does not recompile)."""
    if not _tracing(init, xs):
        from .transforms import _eager
        return _eager(("scan", fn, length, reverse),
                      lambda i, x: scan(fn, i, x, length, reverse))(init, xs)
    init_leaves, init_tree = pytree.flatten(init)
    xs_leaves, xs_tree = pytree.flatten(xs)
    init_vals = [to_value(x) for x in init_leaves]
    xs_vals = [to_value(x) for x in xs_leaves]
    for v in xs_vals:
        if v.ndim == 0:
            raise ValueError("scan: each sequence in xs needs a leading axis to iterate over")
    if length is None:
        if not xs_vals:
            raise ValueError("scan: give xs or length")
        n = xs_vals[0].shape[0]
    else:
        n = as_dim(length)
    carry_types = [_strong(v.type) for v in init_vals]
    x_types = [TensorType(v.dtype, v.shape[1:]) for v in xs_vals]
    sub, out_vals, out_tree = _body("scan_body", fn, carry_types + x_types,
                                    [init_tree, xs_tree if xs is not None else None],
                                    [len(init_vals), len(xs_vals)])
    if out_tree[0] not in ("tuple", "list") or len(out_tree[1]) != 2:
        raise TypeError("scan: the body must return a pair (new carry, y)")
    carry_tree, y_tree = out_tree[1]
    if carry_tree != init_tree:
        raise TypeError("scan: the new carry must have the structure of the initial carry")
    n_carry = len(init_vals)
    carry_out = _match_state(sub, out_vals[:n_carry], carry_types, "scan")
    body = sub.builder.build(carry_out + out_vals[n_carry:])
    node = current().emit("scan", init_vals + xs_vals + sub.captures, body=body,
                          n_carry=n_carry, n_xs=len(xs_vals), reverse=bool(reverse), length=n)
    outs = [Tracer(v) for v in node.outputs]
    return pytree.unflatten(init_tree, outs[:n_carry]), pytree.unflatten(y_tree, outs[n_carry:])


def while_loop(cond_fn, body_fn, init):
    """Repeat ``state = body_fn(state)`` while ``cond_fn(state)`` is true (a native loop)."""
    if not _tracing(init):
        from .transforms import _eager
        return _eager(("while", cond_fn, body_fn), lambda s: while_loop(cond_fn, body_fn, s))(init)
    leaves, tree = pytree.flatten(init)
    vals = [to_value(x) for x in leaves]
    types = [_strong(v.type) for v in vals]
    csub, (pred,), _ = _body("while_cond", cond_fn, types, [tree], [len(vals)])
    if pred.ndim != 0:
        raise ValueError(f"while_loop: cond_fn must return a scalar, got {pred.type.text()}")
    with csub:
        pred = to_value(Tracer(pred).astype(bool))
    bsub, new_vals, new_tree = _body("while_body", body_fn, types, [tree], [len(vals)])
    if new_tree != tree:
        raise TypeError("while_loop: body_fn must return a state of the structure of init")
    new_vals = _match_state(bsub, new_vals, types, "while_loop")
    captures, cond_graph, body_graph = _shared_captures(
        [(csub, [pred]), (bsub, new_vals)], [types, types])
    node = current().emit("while", vals + captures, cond=cond_graph, body=body_graph,
                          n_state=len(vals))
    return pytree.unflatten(tree, [Tracer(v) for v in node.outputs])


def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; lazy: only the branch
    taken runs."""
    if not _tracing(pred, operands):
        return true_fn(*operands) if bool(np.asarray(pred)) else false_fn(*operands)
    p = to_value(pred)
    if p.ndim != 0:
        raise ValueError(f"cond: the predicate must be a scalar, got {p.type.text()}")
    from . import ops
    p = to_value(ops.astype(Tracer(p), bool))
    leaves, tree = pytree.flatten(tuple(operands))
    vals = [to_value(x) for x in leaves]
    types = [_strong(v.type) for v in vals]
    tsub, t_out, t_tree = _body("cond_true", lambda *a: true_fn(*a[0]), types, [tree], [len(vals)])
    fsub, f_out, f_tree = _body("cond_false", lambda *a: false_fn(*a[0]), types, [tree], [len(vals)])
    if t_tree != f_tree:
        raise TypeError("cond: both branches must return the same structure")
    f_out = _match_state(fsub, f_out, [v.type for v in t_out], "cond")
    for a, b in zip(t_out, f_out):
        if tuple(a.shape) != tuple(b.shape):
            raise UnsupportedError("cond: both branches must return arrays of the same shape")
    captures, true_graph, false_graph = _shared_captures([(tsub, t_out), (fsub, f_out)],
                                                         [types, types])
    node = current().emit("cond", [p] + vals + captures, true=true_graph, false=false_graph)
    return pytree.unflatten(t_tree, [Tracer(v) for v in node.outputs])


def _shared_captures(bodies, arg_types):
    """Build the bodies' graphs over one list of captured values (each body gets an input for
    every capture, used or not) -> (captures, graph, graph, ...)."""
    captures = []
    for sub, _ in bodies:
        for v in sub.captures:
            if v not in captures:
                captures.append(v)
    graphs = []
    for (sub, outs), types in zip(bodies, arg_types):
        with sub:
            for v in captures:
                sub.local(v)                     # make sure every capture is an input
        order = sub.builder.inputs[:len(types)] + [sub.local(v) for v in captures]
        graph = sub.builder.build(outs)
        names = dict(zip(sub.builder.inputs, sub.builder.input_names))
        graph.inputs = order
        graph.input_names = [names[v] for v in order]
        graphs.append(graph)
    return (captures, *graphs)
