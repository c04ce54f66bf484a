"""Derivatives of the naive formulas that the stabilize phase rewrites
(`lumen.passes.rules.stabilize`), taken of the formula as a whole.

The chain rule through ``log(expit(x))`` multiplies ``1 / expit(x)`` by
``expit(x) * (1 - expit(x))``: at x = -1000 that is ``inf * 0``, NaN, although the function
(stabilised to ``-softplus(-x)``) has the derivative ``expit(-x)`` = 1 there. So autodiff reads
through such a composition, as the stabilize phase does for its value, and differentiates it
directly with respect to its operand ``x``.

``RULES``: (name, pattern rooted at the outer primitive, derivative). An elementwise rule's
derivative ``d(e, x, root)`` broadcasts against the root (tangent ``d * tx``, cotangent
``g * d``); a reduction's (``log(sum(exp(x)))``) has x's shape and is summed over the reduced
axes in forward mode.
"""
from __future__ import annotations

from ...passes.pattern import Pat, const_scalar

X = Pat.var("x")


def _expit(e, x):
    return e.op("expit", x)


def _dexpit(e, x):
    """expit'(x) = expit(x) * expit(-x), with no cancellation in 1 - expit(x)."""
    return e.mul(_expit(e, x), _expit(e, e.neg(x)))


def _softmax(e, x, root):
    """exp(x - log(sum(exp(x)))) over the root's axes, shifted by the maximum."""
    axes = root.node.inputs[0].node.params["axes"]
    m = e.op("max", x, axes=axes, keepdims=True)
    m = e.select(e.op("isfinite", m), m, e.zeros_like(m) if m.ndim else e.const(0, m))
    z = e.op("exp", e.sub(x, m))
    return e.div(z, e.op("sum", z, axes=axes, keepdims=True))


#: Elementwise compositions: (name, pattern, d(root)/dx).
ELEMENTWISE = (
    ("log_sigmoid", Pat("log", Pat("expit", X)), lambda e, x, root: _expit(e, e.neg(x))),
    ("log_one_minus_sigmoid", Pat("log1p", Pat("negative", Pat("expit", X))),
     lambda e, x, root: e.neg(_expit(e, x))),
    ("log_of_one_minus_sigmoid", Pat("log", Pat("subtract", Pat.const(1), Pat("expit", X))),
     lambda e, x, root: e.neg(_expit(e, x))),
    ("softplus", Pat("log1p", Pat("exp", X)), lambda e, x, root: _expit(e, x)),
    ("softplus_of_log", Pat("log", Pat("add", Pat.const(1), Pat("exp", X))),
     lambda e, x, root: _expit(e, x)),
    ("sigmoid_of_reciprocal", Pat("divide", Pat.const(1),
                                  Pat("add", Pat.const(1), Pat("exp", Pat("negative", X)))),
     lambda e, x, root: _dexpit(e, x)),
    ("sigmoid_of_exp_ratio", Pat("divide", Pat("exp", X), Pat("add", Pat.const(1), Pat("exp", X))),
     lambda e, x, root: _dexpit(e, x)),
    ("log1mexp", Pat("log1p", Pat("negative", Pat("exp", Pat("negative", X)))),
     lambda e, x, root: e.recip(e.op("expm1", x))),
    ("log_of_exp", Pat("log", Pat("exp", X)), lambda e, x, root: e.const(1, x)),
    ("sqrt_of_square", Pat("sqrt", Pat("multiply", X, X)), lambda e, x, root: e.op("sign", x)),
    ("sqrt_of_power_two", Pat("sqrt", Pat("power", X, Pat.const(2))),
     lambda e, x, root: e.op("sign", x)),
)

def _is_max_shift(x) -> bool:
    """x is already ``y - max(y)`` (as `lumen.nn.logsumexp` writes it, perhaps with the max
    guarded by a select): exp(x) <= 1, and the plain chain rule is exact."""
    node = x.node
    if node is None or node.op != "subtract":
        return False
    m = node.inputs[1].node
    while m is not None and m.op in ("select", "broadcast_to", "reshape", "stop_gradient"):
        m = m.inputs[1 if m.op == "select" else 0].node
    return m is not None and m.op == "max" and m.inputs[0] is node.inputs[0]


#: Reductions: (name, pattern, d(root)/dx with x's shape).
REDUCE = (
    ("logsumexp", Pat("log", Pat("sum", Pat("exp", Pat.var("x", where=lambda x: not _is_max_shift(x))))),
     _softmax),
)


def match(node, inside):
    """-> (x, derivative builder, is_reduction) for a composition rooted at ``node`` whose
    inner nodes all lie in ``inside`` (the stretch being differentiated: an inner value
    computed outside it is a constant there), or None."""
    for rules, reduce in ((ELEMENTWISE, False), (REDUCE, True)):
        for name, pattern, derivative in rules:
            if node.op not in pattern.ops:
                continue
            caps = {}
            if pattern.match(node.out, caps):
                x = caps["x"]
                if x.dtype.kind == "f" and x.dtype == node.out.dtype and \
                        all(_within(v, x, inside) for v in node.inputs):
                    return x, derivative, reduce
    return None


def _within(value, x, inside) -> bool:
    if value is x or const_scalar(value) is not None:
        return True
    node = value.node
    return node is not None and node in inside and all(_within(v, x, inside) for v in node.inputs)
