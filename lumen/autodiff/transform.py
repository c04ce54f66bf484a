"""The derivative transforms, graph to graph: they read a stretch of traced nodes and append
the derivative's nodes to the same trace, so derivatives go through the same passes and code
generation as everything else, and can be differentiated again.

- `forward` (R-operator, J·v): tangents pushed through the nodes in order.
- `backward` (L-operator, uᵀ·J): cotangents pulled through the nodes in reverse, summed where a
  value is used more than once, and summed back over broadcast axes.

Gradients through ``np.where`` never pick up NaN or inf from the branch that was not taken: a
cotangent that `select` sends into one branch is zero where the other branch was chosen, and
every elementwise rule below it keeps it zero there (``0 * inf`` would otherwise be NaN). That
mask follows the cotangent through broadcasting (reduced with `any`), reshapes, transposes and
slices (`structural.MASK`), nested selects (and-ed) and values used twice (or-ed).

Compositions the stabilize phase rewrites (``log(expit(x))``, ``log1p(exp(x))``, ...) are
differentiated as a whole (`rules.stabilize`), where the chain rule would give ``inf * 0``.
"""
from __future__ import annotations

from ..errors import UnsupportedError
from ..ir.ops import ELEMENTWISE, OPS
from ..ir.ops.kernel import KERNEL_OPS
from .emit import Emitter
from .rules import control, stabilize, while_loop
from .rules.elementwise import PARTIALS
from .rules.elementwise import ZERO as ELEMENTWISE_ZERO
from .rules.structural import JVP, MASK, VJP, keepdims
from .rules.structural import ZERO as STRUCTURAL_ZERO


def differentiable(value) -> bool:
    return value.dtype.kind == "f"


#: Rules of the nodes with several outputs (control flow): one (co)tangent per output / input.
CONTROL_JVP = {**control.JVP, **while_loop.JVP}
CONTROL_VJP = {**control.VJP, **while_loop.VJP}


def _missing(node):
    return UnsupportedError(f"lumen cannot differentiate the primitive {node.op!r} "
                            f"(at {node.loc})")


# -- forward mode ------------------------------------------------------------------------------

def forward(builder, nodes, tangents: dict) -> dict:
    """Push ``tangents`` (Value -> tangent Value) through ``nodes``; returns the extended map."""
    tangents = dict(tangents)
    inside = set(nodes)
    for node in nodes:
        ts = [tangents.get(v) if differentiable(v) else None for v in node.inputs]
        if all(t is None for t in ts):
            continue
        if node.op in CONTROL_JVP:                # several outputs: one tangent each
            e = Emitter(builder, node.loc)
            for o, t in zip(node.outputs, CONTROL_JVP[node.op](e, node, ts)):
                if t is not None:
                    tangents[o] = t
            continue
        if not differentiable(node.out):
            continue
        e = Emitter(builder, node.loc)
        whole = stabilize.match(node, inside)
        t = _jvp_whole(e, node, whole, tangents) if whole else _jvp_node(e, node, ts)
        if t is not None:
            tangents[node.out] = e.broadcast_to(t, node.out.shape)
    return tangents


def _jvp_node(e, node, ts):
    op = node.op
    if op == "select":
        c, a, b = node.inputs
        ta = ts[1] if ts[1] is not None else e.zeros_like(a)
        tb = ts[2] if ts[2] is not None else e.zeros_like(b)
        return e.select(c, ta, tb)
    if op == "cast":
        return e.cast(ts[0], node.out.dtype)
    if op in ELEMENTWISE_ZERO or op in STRUCTURAL_ZERO:
        return None
    if op in ELEMENTWISE:
        partials = _partials(e, node)
        total = None
        for p, t in zip(partials, ts):
            if p is None or t is None:
                continue
            term = e.mul(p, t)
            total = term if total is None else e.add(total, term)
        return total
    rule = JVP.get(op)
    if rule is None:
        raise _missing(node)
    return rule(e, node, ts)


def _jvp_whole(e, node, whole, tangents):
    """Tangent of a composition differentiated as a whole (`rules.stabilize`)."""
    x, derivative, reduce = whole
    tx = tangents.get(x)
    if tx is None:
        return None
    d = e.mul(derivative(e, x, node.out), tx)
    return e.op("sum", d, **node.inputs[0].node.params) if reduce else d


def _partials(e, node):
    rule = PARTIALS.get(node.op)
    if rule is None:
        raise _missing(node)
    return rule(e, list(node.inputs), node.out)


# -- reverse mode ------------------------------------------------------------------------------

class _Cotangents:
    """Accumulated cotangents, each with an optional mask: a boolean value it is known to be
    zero outside of (set by `select`, kept by elementwise rules)."""

    def __init__(self):
        self.value, self.mask = {}, {}

    def add(self, e, v, g, mask=None):
        if g is None or not differentiable(v):
            return
        g = e.cast(g, v.dtype)
        old = self.value.get(v)
        if old is None:
            self.value[v], self.mask[v] = g, mask
        else:
            self.value[v] = e.add(old, g)
            known = self.mask.get(v)
            if known is not mask:
                both = known is not None and mask is not None
                self.mask[v] = e.op("logical_or", known, mask) if both else None


def backward(builder, nodes, seeds, wrt) -> list:
    """Pull ``seeds``, (output Value, cotangent Value) pairs, back through ``nodes``; returns
    the cotangent of each value in ``wrt`` (None where it is zero). A value seeded twice (a
    function returning it twice) gets the sum."""
    cts = _Cotangents()
    for v, g in seeds:
        cts.add(Emitter(builder), v, g)
    inside = set(nodes)
    for node in reversed(nodes):
        if node.op in CONTROL_VJP:
            gs = [cts.value.get(o) for o in node.outputs]
            if all(g is None for g in gs):
                continue
            e = Emitter(builder, node.loc)
            for x, c in zip(node.inputs, CONTROL_VJP[node.op](e, node, gs)):
                cts.add(e, x, c)
            continue
        g = cts.value.get(node.outputs[0])
        if g is None:
            continue
        e = Emitter(builder, node.loc)
        mask = cts.mask.get(node.outputs[0])
        whole = stabilize.match(node, inside)
        if whole:
            _vjp_whole(e, node, g, mask, cts, whole)
        else:
            _vjp_node(e, node, g, mask, cts)
    return [cts.value.get(w) for w in wrt]


def _vjp_node(e, node, g, mask, cts):
    op = node.op
    if op == "select":
        c, a, b = node.inputs
        not_c = e.op("logical_not", c)
        for x, keep, drop in ((a, c, not_c), (b, not_c, c)):
            if mask is not None:
                keep = e.op("logical_and", keep, mask)
            cts.add(e, x, e.sum_to(e.where_zero(drop, g), x), e.mask_to(keep, x, g))
        return
    if op == "cast":
        x = node.inputs[0]
        if differentiable(x):
            cts.add(e, x, e.cast(g, x.dtype), mask)
        return
    if op in ELEMENTWISE_ZERO or op in STRUCTURAL_ZERO:
        return
    if op in ELEMENTWISE:
        for x, p in zip(node.inputs, _partials(e, node)):
            if p is not None and differentiable(x):
                _add_masked(e, cts, x, e.mul(g, p), mask)
        return
    rule = VJP.get(op)
    if rule is None:
        raise _missing(node)
    for k, (x, c) in enumerate(zip(node.inputs, rule(e, node, g))):
        if c is not None and differentiable(x):
            keep = MASK[op](e, node, mask) if k == 0 and mask is not None and op in MASK else None
            cts.add(e, x, c, keep)


def _vjp_whole(e, node, g, mask, cts, whole):
    """Cotangent of a composition differentiated as a whole, sent straight to its operand."""
    x, derivative, reduce = whole
    d = derivative(e, x, node.out)
    if reduce:
        cts.add(e, x, e.mul(keepdims(e, g, node.inputs[0].node), d))
        return
    _add_masked(e, cts, x, e.mul(g, d), mask)


def _add_masked(e, cts, x, term, mask):
    """Add ``term`` (a cotangent for ``x`` before broadcasting is undone) to x's, zeroed
    outside ``mask`` (so 0 * inf from an unselected branch stays 0) and keeping the mask."""
    keep = None
    if mask is not None:
        term = e.where_zero(e.op("logical_not", mask), term)
        keep = e.mask_to(mask, x, term)
    cts.add(e, x, e.sum_to(term, x), keep)


def rules_missing() -> list:
    """Differentiable primitives without what autodiff needs (the registry test uses this)."""
    missing = []
    for name, op in OPS.items():
        if name in ("select", "cast", *KERNEL_OPS) or name in ELEMENTWISE_ZERO or name in STRUCTURAL_ZERO:
            continue
        if name in CONTROL_JVP or name in CONTROL_VJP:
            missing += [f"{name} ({mode})" for mode, table in (("forward mode", CONTROL_JVP),
                                                               ("reverse mode", CONTROL_VJP))
                        if name not in table]
            continue
        if name in ELEMENTWISE:
            if name not in PARTIALS:
                missing.append(name)
        elif name not in JVP or name not in VJP:
            missing.append(name)
    return missing
