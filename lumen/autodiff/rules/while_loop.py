"""Derivatives of while loops, whose trip count is known only at run time.

- JVP of while: a while loop carrying tangents next to its float state (the condition reads
  the state alone, so it stops after as many steps).
- VJP of while: a `while_grad` node. The loop runs again, recording each step's incoming state
  on a stack that grows as it goes; then the step's VJP runs from the last step back to the
  first, carrying the state's cotangents and accumulating the captured values'. The recorded
  states never become IR values, so no size in the IR depends on the trip count.
- JVP and VJP of while_grad: `while_grad` nodes over the JVP loop (the loop carrying state and
  tangents), so derivatives of every order exist. With λ the cotangents while_grad returns and
  J the derivative of the final state:

  * forward over reverse: the JVP loop's reverse pass, seeded with (tangent of the seed,
    seed), returns (tangent of λ, λ), because the step's second derivatives are symmetric;
  * reverse over reverse: for cotangents (u, v) of λ, <(u, v), λ> = <seed, J·(u, v)>, the
    JVP loop's final tangent from (u, v). That tangent is the seed's cotangent, and the JVP
    loop's reverse pass seeded with (cotangent of the final state, seed) gives the initial
    state's and the captured values'.

Rules take and return one (co)tangent per node output / input (None: zero).
"""
from __future__ import annotations

from ...ir.builder import GraphBuilder
from ..emit import Emitter
from .control import float_parts, or_zeros, replay


def jvp_loop(cond, body, n_state, t_caps):
    """The loop carrying tangents next to its float state -> (cond, body) over (state, its
    float parts' tangents, captured values, tangents of the captured values at ``t_caps``);
    the body returns (new state, its tangents)."""
    from ..transform import forward
    f_state = float_parts(body.inputs[:n_state])

    def inputs_of(b, graph):
        s_in = [b.add_input(v.type, f"s{i}") for i, v in enumerate(graph.inputs[:n_state])]
        ts_in = [b.add_input(graph.inputs[i].type, f"ts{i}") for i in f_state]
        c_in = [b.add_input(v.type, f"cap{i}") for i, v in enumerate(graph.inputs[n_state:])]
        tc_in = [b.add_input(graph.inputs[n_state + i].type, f"tcap{i}") for i in t_caps]
        return s_in, ts_in, c_in, tc_in

    cb = GraphBuilder("while_jvp_cond")
    s_in, _, c_in, _ = inputs_of(cb, cond)
    _, (pred,) = replay(cb, cond, s_in + c_in)
    bb = GraphBuilder("while_jvp_body")
    s_in, ts_in, c_in, tc_in = inputs_of(bb, body)
    nodes, outs = replay(bb, body, s_in + c_in)
    seeds = {s_in[i]: t for i, t in zip(f_state, ts_in)}
    seeds.update({c_in[i]: t for i, t in zip(t_caps, tc_in)})
    tangents = forward(bb, nodes, seeds)
    be = Emitter(bb)
    t_outs = [or_zeros(be, tangents.get(outs[i]), outs[i]) for i in f_state]
    return cb.build([pred]), bb.build(outs + t_outs)


def step_vjp(body, n_state):
    """The step's VJP: (state, captured values, cotangents of the new state's float parts,
    captured values' cotangents so far) -> (cotangents of the state's float parts, captured
    values' cotangents with this step's added)."""
    from ..transform import backward
    f_state = float_parts(body.inputs[:n_state])
    f_caps = float_parts(body.inputs[n_state:])
    b = GraphBuilder("while_step_vjp")
    s_in = [b.add_input(v.type, f"s{i}") for i, v in enumerate(body.inputs[:n_state])]
    c_in = [b.add_input(v.type, f"cap{i}") for i, v in enumerate(body.inputs[n_state:])]
    g_in = [b.add_input(body.inputs[i].type, f"g{i}") for i in f_state]
    acc_in = [b.add_input(body.inputs[n_state + i].type, f"gcap{i}") for i in f_caps]
    nodes, outs = replay(b, body, s_in + c_in)
    cts = backward(b, nodes, [(outs[i], g) for i, g in zip(f_state, g_in)], s_in + c_in)
    be = Emitter(b)
    new_g = [or_zeros(be, cts[i], s_in[i]) for i in f_state]
    new_acc = [acc if cts[n_state + i] is None else be.add(acc, cts[n_state + i])
               for i, acc in zip(f_caps, acc_in)]
    return b.build(new_g + new_acc)


def _while_grad(e, state, caps, seeds, cond, body):
    """Emit a while_grad node over the loop (cond, body), ``seeds`` being the cotangents of the
    final state's float parts -> (final state, cotangents of the initial state's float parts,
    cotangents of the captured values' float parts)."""
    n = len(state)
    out = e.builder.emit("while_grad", list(state) + list(caps) + list(seeds), e.loc, cond=cond,
                         body=body, vjp=step_vjp(body, n), n_state=n).outputs
    k = len(seeds)
    return out[:n], out[n:n + k], out[n + k:]


def while_jvp(e, node, ts):
    p = node.params
    n = p["n_state"]
    state, caps = node.inputs[:n], node.inputs[n:]
    f_state = float_parts(state)
    t_caps = [i for i in range(len(caps)) if ts[n + i] is not None]
    cond, body = jvp_loop(p["cond"], p["body"], n, t_caps)
    inputs = list(state) + [or_zeros(e, ts[i], state[i]) for i in f_state] + list(caps) + \
        [ts[n + i] for i in t_caps]
    out = e.builder.emit("while", inputs, e.loc, cond=cond, body=body,
                         n_state=n + len(f_state)).outputs
    result = [None] * n
    for j, i in enumerate(f_state):
        result[i] = out[n + j]
    return result


def while_vjp(e, node, gs):
    p = node.params
    n = p["n_state"]
    state, caps = node.inputs[:n], node.inputs[n:]
    f_state, f_caps = float_parts(state), float_parts(caps)
    seeds = [or_zeros(e, gs[i], state[i]) for i in f_state]
    _, g_state, g_caps = _while_grad(e, state, caps, seeds, p["cond"], p["body"])
    result = [None] * len(node.inputs)
    for j, i in enumerate(f_state):
        result[i] = g_state[j]
    for j, i in enumerate(f_caps):
        result[n + i] = g_caps[j]
    return result


def _while_grad_inputs(node):
    """A while_grad node's inputs split into (state, captured values, seeds)."""
    n = node.params["n_state"]
    m = len(node.params["body"].inputs) - n
    ins = node.inputs
    return ins[:n], ins[n:n + m], ins[n + m:]


def while_grad_jvp(e, node, ts):
    """Forward over reverse (see the module docstring)."""
    p = node.params
    state, caps, seeds = _while_grad_inputs(node)
    n, m = len(state), len(caps)
    f_state, f_caps = float_parts(state), float_parts(caps)
    t_caps = [i for i in range(m) if ts[n + i] is not None]
    cond, body = jvp_loop(p["cond"], p["body"], n, t_caps)
    t_state = [or_zeros(e, ts[i], state[i]) for i in f_state]
    t_seeds = [or_zeros(e, ts[n + m + j], g) for j, g in enumerate(seeds)]
    final, g_state, g_caps = _while_grad(e, list(state) + t_state,
                                         list(caps) + [ts[n + i] for i in t_caps],
                                         t_seeds + list(seeds), cond, body)
    t_final = [None] * n
    for j, i in enumerate(f_state):
        t_final[i] = final[n + j]
    return t_final + list(g_state[:len(f_state)]) + list(g_caps[:len(f_caps)])


def while_grad_vjp(e, node, gs):
    """Reverse over reverse (see the module docstring)."""
    p = node.params
    state, caps, seeds = _while_grad_inputs(node)
    n, m, k = len(state), len(caps), len(seeds)
    f_state, f_caps = float_parts(state), float_parts(caps)
    w, u, v = gs[:n], gs[n:n + k], gs[n + k:]
    t_caps = [i for j, i in enumerate(f_caps) if v[j] is not None]
    cond, body = jvp_loop(p["cond"], p["body"], n, t_caps)
    t_state = [or_zeros(e, u[j], state[i]) for j, i in enumerate(f_state)]
    new_seeds = [or_zeros(e, w[i], state[i]) for i in f_state] + list(seeds)
    final, g_state, g_caps = _while_grad(e, list(state) + t_state,
                                         list(caps) + [g for g in v if g is not None],
                                         new_seeds, cond, body)
    result = [None] * len(node.inputs)
    for j, i in enumerate(f_state):
        result[i] = g_state[j]
    for j, i in enumerate(f_caps):
        result[n + i] = g_caps[j]
    result[n + m:] = final[n:]
    return result


JVP = {"while": while_jvp, "while_grad": while_grad_jvp}
VJP = {"while": while_vjp, "while_grad": while_grad_vjp}
