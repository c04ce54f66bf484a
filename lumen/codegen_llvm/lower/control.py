"""scan / while / cond as native control flow inside the entry function: bodies are lowered in
place (no call back into Python per step); each step's buffers are freed at its end."""
from __future__ import annotations

from ..context import Arr
from .loops import copy
from .scalar import truth


def _step_view(ctx, arr, index, dims):
    """arr[index] along the leading axis, as a view with symbolic ``dims``."""
    b = ctx.builder
    data = b.gep(arr.data, [b.mul(index, arr.strides[0])])
    return Arr(data, arr.shape[1:], arr.strides[1:], arr.dtype, dims, False, arr.owner)


def _commit(ctx, results, state):
    """state[i] = results[i] for all i, as if at once: a result that is not a fresh buffer of
    this step (it may be, or view, another state array) is copied aside first."""
    staged = []
    for r, s in zip(results, state):
        if ctx.in_frame(r):
            staged.append(r)
        else:
            tmp = ctx.malloc_buffer(s.dtype, s.dims, "carry_tmp")
            copy(ctx, r, tmp)
            staged.append(tmp)
    for r, s in zip(staged, state):
        copy(ctx, r, s)


def lower_scan(ctx, node, args):
    from ..program import lower_body
    b = ctx.builder
    p = node.params
    body, nc, nx = p["body"], p["n_carry"], p["n_xs"]
    carries, xs, caps = args[:nc], args[nc:nc + nx], args[nc + nx:]
    outs = [ctx.new_array(v) for v in node.outputs]
    state, ys = outs[:nc], outs[nc:]
    for c, s in zip(carries, state):
        copy(ctx, c, s)
    n = ctx.dim(p["length"])
    x_dims = [v.type.shape for v in body.inputs[nc:nc + nx]]
    y_dims = [v.type.shape for v in body.outputs[nc:]]
    ctx.push_frame(_preheader(ctx, "scan"))
    with ctx.loop(n, "scan") as t:
        index = b.sub(b.sub(n, ctx.i64(1)), t) if p["reverse"] else t
        env = dict(zip(body.inputs, list(state) + [_step_view(ctx, x, index, d)
                                                    for x, d in zip(xs, x_dims)] + list(caps)))
        results = lower_body(ctx, body, env)
        for y, out, d in zip(results[nc:], ys, y_dims):
            copy(ctx, y, _step_view(ctx, out, index, d))
        _commit(ctx, results[:nc], state)
    ctx.pop_frame()
    return outs


def _preheader(ctx, name):
    """A block of its own right before a loop, where the loop body's buffers are allocated."""
    b = ctx.builder
    pre = ctx.fn.append_basic_block(f"{name}.pre")
    b.branch(pre)
    b.position_at_end(pre)
    return pre


def lower_while(ctx, node, args):
    from ..program import lower_body
    b = ctx.builder
    p = node.params
    n = p["n_state"]
    init, caps = args[:n], args[n:]
    state = [ctx.new_array(v) for v in node.outputs]
    for c, s in zip(init, state):
        copy(ctx, c, s)
    pre = _preheader(ctx, "while")
    head = ctx.fn.append_basic_block("while.head")
    body_block = ctx.fn.append_basic_block("while.body")
    done = ctx.fn.append_basic_block("while.done")
    b.branch(head)
    b.position_at_end(head)
    ctx.push_frame(pre)
    (pred,) = lower_body(ctx, p["cond"], dict(zip(p["cond"].inputs, list(state) + list(caps))))
    go = truth(ctx, ctx.load(pred, ctx.i64(0)), pred.dtype)
    b.cbranch(go, body_block, done)
    b.position_at_end(body_block)
    results = lower_body(ctx, p["body"], dict(zip(p["body"].inputs, list(state) + list(caps))))
    _commit(ctx, results, state)
    b.branch(head)
    b.position_at_end(done)
    ctx.pop_frame()
    return state


def lower_cond(ctx, node, args):
    from ..program import lower_body
    b = ctx.builder
    pred, operands = args[0], args[1:]
    outs = [ctx.new_array(v) for v in node.outputs]
    go = truth(ctx, ctx.load(pred, ctx.i64(0)), pred.dtype)
    with b.if_else(go) as (then, otherwise):
        for block, key in ((then, "true"), (otherwise, "false")):
            with block:
                branch = node.params[key]
                ctx.push_frame()
                results = lower_body(ctx, branch, dict(zip(branch.inputs, operands)))
                for r, o in zip(results, outs):
                    copy(ctx, r, o)
                ctx.pop_frame()
    return outs


LOWER = {"scan": lower_scan, "while": lower_while, "cond": lower_cond}
