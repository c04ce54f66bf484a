"""scan / while / while_grad / cond as native control flow inside the entry function: bodies
are lowered in place (no call back into Python per step); each step's buffers are freed at its
end."""
from __future__ import annotations

import llvmlite.ir as ir

from ..context import Arr, contiguous_strides
from ..llvmtypes import i8p, i64, value_type
from .loops import align, copy, for_each
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
    p = node.params
    n = p["n_state"]
    init, caps = args[:n], args[n:]
    state = [ctx.new_array(v) for v in node.outputs]
    for c, s in zip(init, state):
        copy(ctx, c, s)
    _run_while(ctx, p, state, caps)
    return state


def _run_while(ctx, p, state, caps, on_step=None):
    """Run the loop of ``p`` (cond, body) on the ``state`` arrays, in place; ``on_step()`` runs
    at the start of every step, before the body."""
    from ..program import lower_body
    b = ctx.builder
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
    if on_step is not None:
        on_step()
    results = lower_body(ctx, p["body"], dict(zip(p["body"].inputs, list(state) + list(caps))))
    _commit(ctx, results, state)
    b.branch(head)
    b.position_at_end(done)
    ctx.pop_frame()


class _Tape:
    """The states a while_grad loop passes through: one record per step on a heap stack that
    doubles when full (the trip count is known only once the loop is done), each state part
    at an offset rounded up to 16 bytes so that every part stays aligned."""

    def __init__(self, ctx, parts):
        b = ctx.builder
        self.ctx, self.parts = ctx, parts
        self.slot = ctx.heap_slot("tape")
        self.length, self.capacity = ctx.alloca(i64, "tape.length"), ctx.alloca(i64, "tape.cap")
        b.store(ctx.i64(0), self.length)
        b.store(ctx.i64(0), self.capacity)
        self.offsets, size = [], ctx.i64(0)
        for arr in parts:
            self.offsets.append(size)
            nbytes = b.mul(ctx.count(arr.shape), ctx.i64(arr.dtype.itemsize))
            size = b.add(size, b.and_(b.add(nbytes, ctx.i64(15)), ctx.i64(-16)))
        # never 0 bytes: realloc(p, 0) may return NULL, which would read as out of memory
        self.record = b.select(b.icmp_signed("==", size, ctx.i64(0)), ctx.i64(16), size)

    def push(self):
        """Append the parts' current values."""
        ctx, b = self.ctx, self.ctx.builder
        t = b.load(self.length)
        with b.if_then(b.icmp_signed("==", t, b.load(self.capacity))):
            self._grow()
        for k, arr in enumerate(self.parts):
            copy(ctx, arr, self.view(t, k))
        b.store(b.add(t, ctx.i64(1)), self.length)

    def _grow(self):
        ctx, b = self.ctx, self.ctx.builder
        cap = b.load(self.capacity)
        empty = b.icmp_signed("==", cap, ctx.i64(0))
        new_cap = b.select(empty, ctx.i64(16), b.mul(cap, ctx.i64(2)))
        realloc = ctx.function("realloc", i8p, [i8p, i64])
        ptr = b.call(realloc, [b.load(self.slot), b.mul(new_cap, self.record)])
        # on failure the old block stays in the slot, for the exit path to free
        ctx.leave_if(b.icmp_unsigned("==", ptr, ir.Constant(i8p, None)), no_memory=True)
        b.store(ptr, self.slot)
        b.store(new_cap, self.capacity)

    def view(self, t, k) -> Arr:
        """Part ``k`` as recorded at step ``t``."""
        ctx, b = self.ctx, self.ctx.builder
        arr = self.parts[k]
        data = b.gep(b.load(self.slot), [b.add(b.mul(t, self.record), self.offsets[k])])
        strides = contiguous_strides(b, arr.shape, arr.dtype.itemsize, ctx.i64)
        return Arr(data, arr.shape, strides, arr.dtype, arr.dims, True)

    def free(self):
        b = self.ctx.builder
        b.call(self.ctx.function("free", ir.VoidType(), [i8p]), [b.load(self.slot)])
        b.store(ir.Constant(i8p, None), self.slot)


def lower_while_grad(ctx, node, args):
    """The loop, recording each step's incoming state on a `_Tape`; then the step's VJP from
    the last step back to the first, reading the tape."""
    p = node.params
    n = p["n_state"]
    n_caps = len(p["body"].inputs) - n
    init, caps, seeds = args[:n], args[n:n + n_caps], args[n + n_caps:]
    outs = [ctx.new_array(v) for v in node.outputs]
    state, grads = outs[:n], outs[n:]
    for c, s in zip(init, state):
        copy(ctx, c, s)
    tape = _Tape(ctx, state)
    _run_while(ctx, p, state, caps, tape.push)
    for g, out in zip(seeds, grads):
        copy(ctx, g, out)
    for acc in grads[len(seeds):]:
        _fill_zero(ctx, acc)
    _run_backward(ctx, p["vjp"], tape, caps, grads)
    tape.free()
    return outs


def _run_backward(ctx, vjp, tape, caps, grads):
    """grads = vjp(recorded state, caps, grads) for the recorded steps, last to first."""
    from ..program import lower_body
    b = ctx.builder
    n = b.load(tape.length)
    ctx.push_frame(_preheader(ctx, "while_grad"))
    with ctx.loop(n, "while_grad") as i:
        t = b.sub(b.sub(n, ctx.i64(1)), i)
        recorded = [tape.view(t, k) for k in range(len(tape.parts))]
        env = dict(zip(vjp.inputs, recorded + list(caps) + list(grads)))
        _commit(ctx, lower_body(ctx, vjp, env), grads)
    ctx.pop_frame()


def _fill_zero(ctx, arr):
    zero = ir.Constant(value_type(arr.dtype), 0)
    for_each(ctx, arr.shape, [align(ctx, arr, arr.dims)],
             lambda offsets, _: ctx.store(arr, offsets[0], zero))


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


LOWER = {"scan": lower_scan, "while": lower_while, "while_grad": lower_while_grad,
         "cond": lower_cond}
