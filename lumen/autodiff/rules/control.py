"""Derivatives of scan and cond: new control-flow nodes whose bodies are derivative graphs
(while loops: `rules.while_loop`).

- JVP of scan: a scan that carries tangents next to the carries (forward mode through time).
- VJP of scan: back-propagation through time: a forward scan that also records each step's
  incoming carries, then a scan in the opposite direction whose body is the VJP of the step,
  carrying the carries' cotangents and accumulating the captured values' cotangents.
- JVP / VJP of cond: a cond over the branches' derivative graphs (still lazy).
Both rules take and return one (co)tangent per node output / input (None: zero).
"""
from __future__ import annotations

from ...ir.builder import GraphBuilder
from ...ir.graph import Value
from ...ir.ops import MOVEMENT
from ..emit import Emitter


def float_parts(values) -> list:
    """Positions of the floating-point values (the ones that carry derivatives)."""
    return [i for i, v in enumerate(values) if v.dtype.kind == "f"]


def or_zeros(e, g, like):
    """``g``, or zeros like ``like`` where it is None (a zero derivative)."""
    return g if g is not None else e.zeros_like(like)


def replay(builder, graph, inputs):
    """Emit ``graph``'s nodes into ``builder`` with its inputs bound to ``inputs``;
    -> (the new nodes, the values of its outputs)."""
    env = dict(zip(graph.inputs, inputs))
    start = len(builder.nodes)
    for node in graph.nodes:
        new = builder.emit(node.op, [env[v] for v in node.inputs], node.loc, **node.params)
        env.update(zip(node.outputs, new.outputs))
    return builder.nodes[start:], [env[v] for v in graph.outputs]


def scan_jvp(e, node, ts):
    from ..transform import forward
    p = node.params
    body, nc, nx = p["body"], p["n_carry"], p["n_xs"]
    ins = node.inputs
    carries, xs, caps = ins[:nc], ins[nc:nc + nx], ins[nc + nx:]
    t_carry = float_parts(carries)
    t_xs = [i for i in range(nx) if ts[nc + i] is not None]
    t_caps = [i for i in range(len(caps)) if ts[nc + nx + i] is not None]
    b = GraphBuilder("scan_jvp")
    c_in = [b.add_input(v.type, f"c{i}") for i, v in enumerate(body.inputs[:nc])]
    tc_in = [b.add_input(body.inputs[i].type, f"tc{i}") for i in t_carry]
    x_in = [b.add_input(v.type, f"x{i}") for i, v in enumerate(body.inputs[nc:nc + nx])]
    tx_in = [b.add_input(body.inputs[nc + i].type, f"tx{i}") for i in t_xs]
    cap_in = [b.add_input(v.type, f"cap{i}") for i, v in enumerate(body.inputs[nc + nx:])]
    tcap_in = [b.add_input(body.inputs[nc + nx + i].type, f"tcap{i}") for i in t_caps]
    nodes, outs = replay(b, body, c_in + x_in + cap_in)
    seeds = {c_in[i]: t for i, t in zip(t_carry, tc_in)}
    seeds.update({x_in[i]: t for i, t in zip(t_xs, tx_in)})
    seeds.update({cap_in[i]: t for i, t in zip(t_caps, tcap_in)})
    tangents = forward(b, nodes, seeds)
    be = Emitter(b)
    new_c, ys = outs[:nc], outs[nc:]
    t_new_c = [or_zeros(be, tangents.get(new_c[i]), new_c[i]) for i in t_carry]
    t_ys = float_parts(ys)
    t_y_out = [or_zeros(be, tangents.get(ys[k]), ys[k]) for k in t_ys]
    new_body = b.build(new_c + t_new_c + ys + t_y_out)
    tc0 = [or_zeros(e, ts[i], carries[i]) for i in t_carry]
    inputs = list(carries) + tc0 + list(xs) + [ts[nc + i] for i in t_xs] + list(caps) + \
        [ts[nc + nx + i] for i in t_caps]
    scan = e.builder.emit("scan", inputs, e.loc, body=new_body, n_carry=nc + len(t_carry),
                          n_xs=nx + len(t_xs), reverse=p["reverse"], length=p["length"])
    o = scan.outputs
    n_tc, ny = len(t_carry), len(ys)
    result = [None] * len(node.outputs)
    for j, i in enumerate(t_carry):
        result[i] = o[nc + j]
    for j, k in enumerate(t_ys):
        result[nc + k] = o[nc + n_tc + ny + j]
    return result


def scan_vjp(e, node, gs):
    """BPTT. The step's VJP is built first; the loop-variant values of the step that it reads
    (a tanh's output, say) become residuals: the recording forward scan stacks them and the
    backward scan reads them instead of computing the step again."""
    from ..transform import backward
    p = node.params
    body, nc, nx = p["body"], p["n_carry"], p["n_xs"]
    ins = node.inputs
    carries, xs, caps = ins[:nc], ins[nc:nc + nx], ins[nc + nx:]
    ny = len(body.outputs) - nc
    # 1. the backward step: the step replayed and differentiated
    f_carry = float_parts(carries)
    f_caps = float_parts(caps)
    g_ys = [k for k in range(ny) if gs[nc + k] is not None]
    b = GraphBuilder("scan_vjp")
    gc_in = [b.add_input(body.inputs[i].type, f"gc{i}") for i in f_carry]
    acc_in = [b.add_input(body.inputs[nc + nx + i].type, f"gcap{i}") for i in f_caps]
    c_in = [b.add_input(v.type, f"c{i}") for i, v in enumerate(body.inputs[:nc])]
    x_in = [b.add_input(v.type, f"x{i}") for i, v in enumerate(body.inputs[nc:nc + nx])]
    gy_in = [b.add_input(body.outputs[nc + k].type, f"gy{k}") for k in g_ys]
    cap_in = [b.add_input(v.type, f"cap{i}") for i, v in enumerate(body.inputs[nc + nx:])]
    nodes, outs = replay(b, body, c_in + x_in + cap_in)
    seeds = [(outs[i], g) for i, g in zip(f_carry, gc_in)] + \
        [(outs[nc + k], g) for k, g in zip(g_ys, gy_in)]
    cts = backward(b, nodes, seeds, c_in + x_in + cap_in)
    be = Emitter(b)
    new_gc = [or_zeros(be, cts[i], c_in[i]) for i in f_carry]
    new_acc = []
    for j, i in enumerate(f_caps):
        g = cts[nc + nx + i]
        new_acc.append(be.add(acc_in[j], g) if g is not None else acc_in[j])
    f_xs = float_parts(xs)
    gx = [or_zeros(be, cts[nc + i], x_in[i]) for i in f_xs]
    grad_outputs = new_gc + new_acc + gx
    residuals = _residuals(b, nodes, set(c_in + x_in), grad_outputs)
    grad_body = _read_residuals(b, residuals, grad_outputs, before=len(b.inputs) - len(cap_in))
    # 2. the forward pass again, recording every step's incoming carries and the residuals
    rec = GraphBuilder("scan_record")
    r_in = [rec.add_input(v.type, f"r{i}") for i, v in enumerate(body.inputs)]
    r_nodes, r_out = replay(rec, body, r_in)
    position = {v: (k, v.index) for k, n in enumerate(nodes) for v in n.outputs}
    recorded = [r_nodes[position[v][0]].outputs[position[v][1]] for v in residuals]
    record = rec.build(r_out + r_in[:nc] + recorded)
    fwd = e.builder.emit("scan", list(ins), e.loc, body=record, n_carry=nc, n_xs=nx,
                         reverse=p["reverse"], length=p["length"]).outputs
    stacked_carries, stacked_residuals = fwd[nc + ny:nc + ny + nc], fwd[nc + ny + nc:]
    # 3. the backward scan
    gc0 = [or_zeros(e, gs[i], carries[i]) for i in f_carry]
    acc0 = [e.zeros_like(caps[i]) for i in f_caps]
    inputs = gc0 + acc0 + list(stacked_carries) + list(xs) + [gs[nc + k] for k in g_ys] + \
        list(stacked_residuals) + list(caps)
    back = e.builder.emit("scan", inputs, e.loc, body=grad_body,
                          n_carry=len(f_carry) + len(f_caps),
                          n_xs=nc + nx + len(g_ys) + len(residuals), reverse=not p["reverse"],
                          length=p["length"]).outputs
    result = [None] * len(ins)
    for j, i in enumerate(f_carry):
        result[i] = back[j]
    for j, i in enumerate(f_caps):
        result[nc + nx + i] = back[len(f_carry) + j]
    for j, i in enumerate(f_xs):
        result[nc + i] = back[len(f_carry) + len(f_caps) + j]
    return result


def _residuals(b, replayed, step_inputs, outputs):
    """The values of the replayed step that its VJP reads and that change from step to step
    (depend on the carries or the sequences), except views of the step's inputs, which are
    free to recompute."""
    replayed_ids = {id(n) for n in replayed}
    variant, free = set(step_inputs), set(step_inputs)
    for n in replayed:
        if any(v in variant for v in n.inputs):
            variant.update(n.outputs)
            if n.op in MOVEMENT and all(v in free or v not in variant for v in n.inputs):
                free.update(n.outputs)
    read = [v for n in b.nodes if id(n) not in replayed_ids for v in n.inputs] + list(outputs)
    found = []
    for v in read:
        if v in variant and v not in free and v not in found:
            found.append(v)
    return found


def _read_residuals(b, residuals, outputs, before):
    """The graph of ``b`` where the VJP's nodes read the residuals from new sequence inputs
    (inserted at ``before``) instead of the replayed step; the replay is then dead code."""
    fresh = {}
    for k, v in enumerate(residuals):
        fresh[v] = Value(v.type)
        b.inputs.insert(before + k, fresh[v])
        b.input_names.insert(before + k, f"res{k}")
    for n in b.nodes:
        if any(v in fresh for v in n.inputs):
            n.inputs = tuple(fresh.get(v, v) for v in n.inputs)
    return b.build([fresh.get(v, v) for v in outputs])


# -- cond -----------------------------------------------------------------------------------------

def _branch_graphs(node):
    return node.params["true"], node.params["false"]


def cond_jvp(e, node, ts):
    from ..transform import forward
    ops = node.inputs[1:]
    t_ops = [i for i in range(len(ops)) if ts[1 + i] is not None]
    graphs = []
    for branch in _branch_graphs(node):
        b = GraphBuilder("cond_jvp")
        x_in = [b.add_input(v.type, f"x{i}") for i, v in enumerate(branch.inputs)]
        t_in = [b.add_input(branch.inputs[i].type, f"t{i}") for i in t_ops]
        nodes, outs = replay(b, branch, x_in)
        tangents = forward(b, nodes, {x_in[i]: t for i, t in zip(t_ops, t_in)})
        be = Emitter(b)
        touts = [or_zeros(be, tangents.get(outs[i]), outs[i]) for i in float_parts(outs)]
        graphs.append(b.build(touts))
    inputs = [node.inputs[0]] + list(ops) + [ts[1 + i] for i in t_ops]
    out = e.builder.emit("cond", inputs, e.loc, true=graphs[0], false=graphs[1]).outputs
    result, k = [], 0
    for o in node.outputs:
        if o.dtype.kind == "f":
            result.append(out[k])
            k += 1
        else:
            result.append(None)
    return result


def cond_vjp(e, node, gs):
    from ..transform import backward
    ops = node.inputs[1:]
    g_outs = [k for k, g in enumerate(gs) if g is not None]
    f_ops = float_parts(ops)
    graphs = []
    for branch in _branch_graphs(node):
        b = GraphBuilder("cond_vjp")
        x_in = [b.add_input(v.type, f"x{i}") for i, v in enumerate(branch.inputs)]
        g_in = [b.add_input(branch.outputs[k].type, f"g{k}") for k in g_outs]
        nodes, outs = replay(b, branch, x_in)
        cts = backward(b, nodes, [(outs[k], g) for k, g in zip(g_outs, g_in)], x_in)
        be = Emitter(b)
        graphs.append(b.build([or_zeros(be, cts[i], x_in[i]) for i in f_ops]))
    inputs = [node.inputs[0]] + list(ops) + [gs[k] for k in g_outs]
    out = e.builder.emit("cond", inputs, e.loc, true=graphs[0], false=graphs[1]).outputs
    result = [None] * len(node.inputs)
    for j, i in enumerate(f_ops):
        result[1 + i] = out[j]
    return result


JVP = {"scan": scan_jvp, "cond": cond_jvp}
VJP = {"scan": scan_vjp, "cond": cond_vjp}
