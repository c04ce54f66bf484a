"""Loop rewrites on traced scan bodies (run before the bodies themselves are optimised).

- Loop-invariant code motion: body nodes that depend on neither the carries nor the per-step
  inputs are computed once, before the loop, and passed in as captured values.
- Batching over time: body nodes that depend on the per-step inputs but not on the carries
  (``x_t @ Wx + b`` in an RNN) are computed for all steps at once before the loop, on the
  stacked sequences — one matrix product instead of one per step — and the body reads their
  step slice like any other sequence.
- Accumulated products out of loops, merging of independent scans, pruning of unneeded
  carries and outputs, and unrolling of scans of length 1 (below).
"""
from __future__ import annotations

from ..ir.builder import GraphBuilder
from ..ir.dims import Dim
from ..ir.graph import Node
from ..ir.ops import BODY_PARAMS, CONTROL, ELEMENTWISE, OPS, REDUCE
from .rebuild import Rebuilder

_NEVER_MOVED = ("const", "iota", "dim")


def hoist_loops(graph):
    """Apply the loop rewrites to every scan in ``graph`` (nested scans first, those in
    while-loop and branch bodies too)."""
    if not any(n.op in BODY_PARAMS for n in graph.nodes):
        return graph
    return merge_and_prune_scans(products_out_of_loops(sink_outputs(_hoist(graph))))


def _hoist(graph):
    rb = Rebuilder(graph)
    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        if node.op != "scan":
            if node.op in BODY_PARAMS:      # a while loop's or a branch's scans (a CG loop's
                params = dict(node.params)  # Gauss-Newton products): the same rewrites
                for key in BODY_PARAMS[node.op]:
                    params[key] = hoist_loops(params[key])
                rb.replace(node, rb.add(node.op, inputs, params, [o.type for o in node.outputs],
                                        node.loc, node.checks, node.origin))
            else:
                rb.keep(node)
            continue
        body = hoist_loops(node.params["body"])
        if node.params["length"].value == 1:
            outs = _unrolled(rb, node, inputs, body)
        else:
            outs = _rewrite_scan(rb, node, inputs, body)
        for old, new in zip(node.outputs, outs):
            rb.map[old] = new
    return rb.finish()


def _unrolled(rb, node, inputs, body):
    """A scan of length 1: its body, inline (the step reads x[0]; each y gets its unit axis)."""
    p = node.params
    nc, nx = p["n_carry"], p["n_xs"]
    steps = []
    for x in inputs[nc:nc + nx]:
        (step,) = _emit(rb, "slice", [x], {"specs": (("index", 0),)}, node.loc)
        steps.append(step)
    env = dict(zip(body.inputs, list(inputs[:nc]) + steps + list(inputs[nc + nx:])))
    for n in body.nodes:
        outs = _emit(rb, n.op, [env[v] for v in n.inputs], n.params, n.loc)
        env.update(zip(n.outputs, outs))
    result = [env[v] for v in body.outputs[:nc]]
    for y in body.outputs[nc:]:
        (stacked,) = _emit(rb, "reshape", [env[y]], {"shape": (Dim.const(1),) + tuple(y.shape)},
                           node.loc)
        result.append(stacked)
    return result


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


# -- merging and pruning ---------------------------------------------------------------------------

def merge_and_prune_scans(graph):
    """Two scans over the same length and direction, the later not reading the earlier's
    results, become one loop; carries and per-step outputs nobody needs are removed."""
    from .rewrite import remove_dead
    graph = remove_dead(graph)
    graph = _merge_pairs(graph)
    return remove_dead(_prune(graph))


def _depends(node, on):
    """Whether ``node`` reads (transitively) an output of ``on``."""
    targets, stack, seen = set(on.outputs), list(node.inputs), set()
    while stack:
        v = stack.pop()
        if v in targets:
            return True
        if v in seen or v.node is None:
            continue
        seen.add(v)
        stack.extend(v.node.inputs)
    return False


def _mergeable(a, b):
    pa, pb = a.params, b.params
    return pa["length"] == pb["length"] and pa["reverse"] == pb["reverse"]


def _merge_pairs(graph):
    scans = [n for n in graph.nodes if n.op == "scan"]
    for i, a in enumerate(scans):
        for b in scans[i + 1:]:
            if _mergeable(a, b) and not _depends(b, a):
                return _merge_pairs(_merge(graph, a, b))
    return graph


def _same_update(ba, bb, i, j, a_inputs, b_inputs, na, nb, assumed):
    """Whether carry j of body ``bb`` is updated exactly as carry i of ``ba`` is, given that
    the carry pairs in ``assumed`` are equal on entry (structural comparison; inputs fed the
    same outer value match)."""
    outer_a = dict(zip(ba.inputs, a_inputs))
    outer_b = dict(zip(bb.inputs, b_inputs))
    carry_a = {v: k for k, v in enumerate(ba.inputs[:na])}
    carry_b = {v: k for k, v in enumerate(bb.inputs[:nb])}
    memo = {}

    def same(u, w):
        key = (u, w)
        if key in memo:
            return memo[key]
        if u.node is None or w.node is None:
            if u in carry_a or w in carry_b:
                r = (carry_a.get(u), carry_b.get(w)) in assumed
            elif u.node is None and w.node is None:
                r = outer_a.get(u) is outer_b.get(w) and outer_a.get(u) is not None
            else:
                r = False
        else:
            m, n = u.node, w.node
            r = (m.op == n.op and u.index == w.index and len(m.inputs) == len(n.inputs) and
                 m.op not in CONTROL and m.params == n.params and
                 all(same(x, y) for x, y in zip(m.inputs, n.inputs)))
        memo[key] = r
        return r
    return same(ba.outputs[i], bb.outputs[j])


def _duplicate_carries(a, b):
    """{carry of b: carry of a} for carries that start from one value and evolve alike (a
    function and its derivative's recorded forward pass both compute the same states). The
    pairs are found together (an LSTM's h is updated from its c): start from every pair with
    the same initial value and drop pairs whose updates differ while the others are assumed
    equal, until none is dropped; what is left is equal at every step."""
    pa, pb = a.params, b.params
    na, nb = pa["n_carry"], pb["n_carry"]
    pairs = {(i, j) for i in range(na) for j in range(nb)
             if a.inputs[i] is b.inputs[j] and
             pa["body"].outputs[i].type == pb["body"].outputs[j].type}
    while True:
        kept = {(i, j) for i, j in pairs
                if _same_update(pa["body"], pb["body"], i, j, a.inputs, b.inputs, na, nb, pairs)}
        if kept == pairs:
            break
        pairs = kept
    dup = {}
    for i, j in sorted(pairs, key=lambda p: (p[1], p[0])):
        if j not in dup and i not in dup.values():
            dup[j] = i
    return dup


def _shared_inputs(a, b):
    """{input position in b: position in a} for sequences and captured values both scans
    read from one outer value: the merged body reads them once, so that common work of the
    two bodies is computed once (CSE)."""
    na, nb = a.params["n_carry"], b.params["n_carry"]
    xa, xb = a.params["n_xs"], b.params["n_xs"]
    roles_a = {}
    for i in range(na, len(a.inputs)):
        roles_a.setdefault((i < na + xa, a.inputs[i]), i)
    shared = {}
    for k in range(nb, len(b.inputs)):
        i = roles_a.get((k < nb + xb, b.inputs[k]))
        if i is not None:
            shared[k] = i
    return shared


def _merge(graph, a, b):
    """``graph`` with scans ``a`` and ``b`` replaced by one scan (at ``b``'s position, which
    comes after everything either depends on); a carry of b that duplicates one of a is
    carried once."""
    pa, pb = a.params, b.params
    ba, bb = pa["body"], pb["body"]
    na, nb = pa["n_carry"], pb["n_carry"]
    xa, xb = pa["n_xs"], pb["n_xs"]
    dup = _duplicate_carries(a, b)
    same = {**dup, **_shared_inputs(a, b)}
    kept_b = [j for j in range(nb) if j not in dup]
    kept_xs = [k for k in range(nb, nb + xb) if k not in same]
    kept_caps = [k for k in range(nb + xb, len(bb.inputs)) if k not in same]
    body = GraphBuilder("scan_body")
    ins_a = [body.add_input(v.type, f"a{i}") for i, v in enumerate(ba.inputs)]
    ins_b = [ins_a[same[k]] if k in same else body.add_input(v.type, f"b{k}")
             for k, v in enumerate(bb.inputs)]
    order = ins_a[:na] + [ins_b[j] for j in kept_b] + ins_a[na:na + xa] + \
        [ins_b[k] for k in kept_xs] + ins_a[na + xa:] + [ins_b[k] for k in kept_caps]
    outs = []
    for g, ins in ((ba, ins_a), (bb, ins_b)):
        env = dict(zip(g.inputs, ins))
        for n in g.nodes:
            new = body.emit(n.op, [env[v] for v in n.inputs], n.loc, **n.params)
            env.update(zip(n.outputs, new.outputs))
        outs.append([env[v] for v in g.outputs])
    (oa, ob) = outs
    merged_body = body.build(oa[:na] + [ob[j] for j in kept_b] + oa[na:] + ob[nb:])
    merged_body.inputs = order
    ia, ib = a.inputs, b.inputs
    inputs = list(ia[:na]) + [ib[j] for j in kept_b] + list(ia[na:na + xa]) + \
        [ib[k] for k in kept_xs] + list(ia[na + xa:]) + [ib[k] for k in kept_caps]
    rb = Rebuilder(graph)
    deferred, waiting = [], set(a.outputs)     # nodes between a and b that read a's results
    for node in graph.nodes:
        if node is a:
            continue
        if node is b:
            nk = len(kept_b)
            params = dict(pa, body=merged_body, n_carry=na + nk, n_xs=xa + len(kept_xs))
            ins = [rb[v] for v in inputs]
            types = OPS["scan"].infer([v.type for v in ins], params)[0]
            merged = rb.add_node(Node("scan", ins, params, types, b.loc, a.checks + b.checks))
            out, ya = merged.outputs, len(ba.outputs) - na
            for old, new in zip(a.outputs, out[:na] + out[na + nk:na + nk + ya]):
                rb.map[old] = new
            b_carries = {j: out[na + k] for k, j in enumerate(kept_b)}
            b_carries.update({j: out[i] for j, i in dup.items()})
            for j in range(nb):
                rb.map[b.outputs[j]] = b_carries[j]
            for old, new in zip(b.outputs[nb:], out[na + nk + ya:]):
                rb.map[old] = new
            for d in deferred:
                rb.keep(d)
            deferred = None
            continue
        if deferred is not None and any(v in waiting for v in node.inputs):
            deferred.append(node)
            waiting.update(node.outputs)
            continue
        rb.keep(node)
    return rb.finish()


def _prune(graph):
    """Drop per-step outputs and carries of scans that nothing needs."""
    used = set(graph.outputs)
    for n in graph.nodes:
        used.update(n.inputs)
    rb = Rebuilder(graph)
    for node in graph.nodes:
        if node.op != "scan":
            rb.keep(node)
            continue
        keep_c, keep_y = _live_parts(node, used)
        p = node.params
        nc = p["n_carry"]
        if len(keep_c) == nc and len(keep_y) == len(p["body"].outputs) - nc:
            rb.keep(node)
            continue
        body = p["body"]
        new_body = _sub_body(body, [body.inputs[i] for i in keep_c] + list(body.inputs[nc:]),
                             [body.outputs[i] for i in keep_c] +
                             [body.outputs[nc + k] for k in keep_y])
        inputs = [rb[node.inputs[i]] for i in keep_c] + [rb[v] for v in node.inputs[nc:]]
        params = dict(p, body=new_body, n_carry=len(keep_c))
        types = OPS["scan"].infer([v.type for v in inputs], params)[0]
        new = rb.add_node(Node("scan", inputs, params, types, node.loc, node.checks))
        olds = [node.outputs[i] for i in keep_c] + [node.outputs[nc + k] for k in keep_y]
        for old, v in zip(olds, new.outputs):
            rb.map[old] = v
    return rb.finish()


def _live_parts(node, used):
    """(carries to keep, per-step outputs to keep): an output is needed if the graph reads it;
    a carry also if a needed part of the body reads its incoming value."""
    p = node.params
    body, nc = p["body"], p["n_carry"]
    keep_y = [k for k in range(len(body.outputs) - nc) if node.outputs[nc + k] in used]
    keep_c = {i for i in range(nc) if node.outputs[i] in used}
    while True:
        roots = [body.outputs[i] for i in keep_c] + [body.outputs[nc + k] for k in keep_y]
        reads = _reads(body, roots)
        more = {i for i in range(nc) if body.inputs[i] in reads} - keep_c
        if not more:
            return sorted(keep_c), keep_y
        keep_c |= more


def _reads(body, roots):
    seen, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v.node is not None:
            stack.extend(v.node.inputs)
    return seen


def _sub_body(body, inputs, outputs):
    """``body`` restricted to ``inputs`` and ``outputs`` (what no output needs is dropped)."""
    from .rebuild import derived_graph
    from .rewrite import remove_dead
    g = derived_graph(body, body.nodes, outputs)
    g.inputs = list(inputs)
    g.input_names = None
    return remove_dead(g)


# -- accumulated products ------------------------------------------------------------------------

def products_out_of_loops(graph):
    """A carry updated as ``acc + P_t @ Q_t`` (and read nowhere else in the body), e.g.
    dWh += h_{t-1}ᵀ·δ_t in back-propagation through time, becomes two stacked per-step
    outputs P and Q and ONE matrix product after the loop: sum_t P_t Q_t = [P_1 … P_T]·[Q_1; …; Q_T]."""
    if not any(n.op == "scan" for n in graph.nodes):
        return graph
    rb = Rebuilder(graph)
    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        found = _accumulators(node) if node.op == "scan" else []
        if not found:
            rb.keep(node)
            continue
        outs = _split_accumulators(rb, node, inputs, found)
        for old, new in zip(node.outputs, outs):
            rb.map[old] = new
    return rb.finish()


def _accumulators(node):
    """[(carry index, P, Q)] for carries updated only by ``acc + P @ Q`` (2-D P and Q that do
    not read the carry)."""
    body, nc = node.params["body"], node.params["n_carry"]
    reads = {}
    for n in body.nodes:
        for v in n.inputs:
            reads[v] = reads.get(v, 0) + 1
    for v in body.outputs:
        reads[v] = reads.get(v, 0) + 1
    found = []
    for i in range(nc):
        acc, out = body.inputs[i], body.outputs[i]
        add = out.node
        if add is None or add.op != "add" or reads.get(acc) != 1 or acc not in add.inputs:
            continue
        other = add.inputs[1] if add.inputs[0] is acc else add.inputs[0]
        while other.node is not None and other.node.op == "reshape" and \
                other.node.inputs[0].ndim == other.ndim:          # a reshape that changes nothing
            other = other.node.inputs[0]
        mm = other.node
        if mm is None or mm.op != "matmul" or other.ndim != acc.ndim or \
                tuple(add.out.shape) != tuple(acc.shape):
            continue
        p, q = mm.inputs
        if p.ndim == 2 and q.ndim == 2 and acc not in _reads(body, [p, q]) and \
                acc.dtype.kind == "f":
            found.append((i, p, q))
    return found


def _split_accumulators(rb, node, inputs, found):
    p = node.params
    body, nc = p["body"], p["n_carry"]
    moved = {i for i, _, _ in found}
    keep = [i for i in range(nc) if i not in moved]
    b = GraphBuilder(body.name)
    env = {}
    for i, v in enumerate(body.inputs):
        if i not in moved:
            env[v] = b.add_input(v.type, f"in{i}")
    skip = {body.outputs[i].node for i in moved}
    for n in body.nodes:
        if n in skip:
            continue
        new = b.emit(n.op, [env[v] for v in n.inputs], n.loc, **n.params)
        env.update(zip(n.outputs, new.outputs))
    ys = [env[v] for v in body.outputs[nc:]]
    factors = [env[v] for _, pp, qq in found for v in (pp, qq)]
    new_body = b.build([env[body.outputs[i]] for i in keep] + ys + factors)
    new_inputs = [inputs[i] for i in keep] + list(inputs[nc:])
    params = dict(p, body=new_body, n_carry=len(keep))
    outs = _emit(rb, "scan", new_inputs, params, node.loc)
    n_ys = len(ys)
    result = [None] * len(node.outputs)
    for j, i in enumerate(keep):
        result[i] = outs[j]
    for k in range(n_ys):
        result[nc + k] = outs[len(keep) + k]
    for j, (i, _, _) in enumerate(found):
        ps, qs = outs[len(keep) + n_ys + 2 * j], outs[len(keep) + n_ys + 2 * j + 1]
        t, n, k = ps.shape
        m = qs.shape[2]
        (pt,) = _emit(rb, "transpose", [ps], {"perm": (1, 0, 2)}, node.loc)
        (pm,) = _emit(rb, "reshape", [pt], {"shape": (n, t * k)}, node.loc)
        (qm,) = _emit(rb, "reshape", [qs], {"shape": (t * k, m)}, node.loc)
        (prod,) = _emit(rb, "matmul", [pm, qm], {}, node.loc)
        (total,) = _emit(rb, "add", [inputs[i], prod], {}, node.loc)
        result[i] = total
    return result


# -- per-step outputs computed after the loop ----------------------------------------------------

def sink_outputs(graph):
    """A per-step output computed from the step's new carries and invariants only (``y_t =
    h_t @ Wy`` in an RNN) is computed after the loop for all steps at once: the loop stacks
    the carries it needs, and one batched operation on the stack gives every y_t."""
    if not any(n.op == "scan" for n in graph.nodes):
        return graph
    rb = Rebuilder(graph)
    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        outs = _sink(rb, node, inputs) if node.op == "scan" else None
        if outs is None:
            rb.keep(node)
            continue
        for old, new in zip(node.outputs, outs):
            rb.map[old] = new
    return rb.finish()


def _sinkable(v, leaves, length, memo):
    """Whether ``v`` is a leaf (a new carry or an invariant) or a batchable op of such."""
    if v in leaves:
        return True
    if v in memo:
        return memo[v]
    n = v.node
    ok = n is not None and len(n.outputs) == 1 and n.op not in _NEVER_MOVED and \
        _stacked_params(n, length) is not None and \
        all(_sinkable(u, leaves, length, memo) for u in n.inputs) and \
        not (n.op in ("matmul", "gemm") and n.inputs[1] not in leaves.get("invariant", ()))
    memo[v] = ok
    return ok


def _sink(rb, node, inputs):
    p = node.params
    body, nc, nx = p["body"], p["n_carry"], p["n_xs"]
    length = p["length"]
    carries_out = {}
    for i in range(nc):
        v = body.outputs[i]
        carries_out[v] = i
        while v.node is not None and v.node.op in ("broadcast_to", "reshape") and \
                v.node.inputs[0].ndim == v.ndim:           # the carry is this value, re-viewed
            v = v.node.inputs[0]
            carries_out.setdefault(v, i)
    invariant = set(body.inputs[nc + nx:])
    leaves = dict.fromkeys(list(carries_out) + list(invariant), True)
    leaves["invariant"] = invariant
    memo = {}
    ys = body.outputs[nc:]
    sunk = [k for k, y in enumerate(ys) if y not in leaves and y.node is not None and
            _sinkable(y, leaves, length, memo)]
    if not sunk:
        return None
    needed = sorted({carries_out[v] for k in sunk for v in _reads(body, [ys[k]]) if v in carries_out})
    keep = [k for k in range(len(ys)) if k not in sunk]
    new_body = _sub_body(body, body.inputs, list(body.outputs[:nc]) + [ys[k] for k in keep] +
                         [body.outputs[i] for i in needed])
    params = dict(p, body=new_body)
    outs = _emit(rb, "scan", inputs, params, node.loc)
    by_carry = {i: outs[nc + len(keep) + j] for j, i in enumerate(needed)}
    stacked = {v: by_carry[i] for v, i in carries_out.items() if i in by_carry}
    outer = dict(zip(body.inputs[nc + nx:], inputs[nc + nx:]))
    env = {}

    def replay(v):
        if v in stacked:
            return stacked[v]
        if v in outer:
            return outer[v]
        if v in env:
            return env[v]
        n = v.node
        ins = [_align_time(rb, replay(u), n, length) if _is_stacked(u, stacked, outer, env)
               else replay(u) for u in n.inputs]
        (out,) = _emit(rb, n.op, ins, _stacked_params(n, length), n.loc)
        env[v] = out
        return out

    result = list(outs[:nc])
    kept = iter(outs[nc:nc + len(keep)])
    for k in range(len(ys)):
        result.append(replay(ys[k]) if k in sunk else next(kept))
    return result


def _is_stacked(u, stacked, outer, env):
    return u in stacked or (u not in outer and (u in env or u.node is not None))
