"""Stabilisation: naive formulas users write, rewritten into forms that return the
mathematically right value where the naive one overflows, underflows or cancels.

Every rule here matches the spelling NumPy code actually has after tracing (operands of
commutative ops in either order, constants folded to the operand's dtype), and runs after the
simplify phase, whose canonical form it relies on: negation stays ``negative`` (never
``multiply(-1, x)``), ``1 - x`` stays ``subtract(1, x)``.
"""
from __future__ import annotations

from ..pattern import Pat, Rule


def _same(v, like):
    return v.dtype == like.dtype and v.ndim == like.ndim and tuple(v.shape) == tuple(like.shape)


def _float(v):
    return v.dtype.kind == "f"


def _checked(build):
    """Decline when the replacement would not have the original's type and shape."""
    def wrapped(g, v, **caps):
        if not _float(v):
            return None
        out = build(g, v=v, **caps)
        return out if out is not None and _same(out, v) else None
    return wrapped


def _reduce_params(node):
    return node.params["axes"], node.params["keepdims"]


def _is_max_shift(x) -> bool:
    """x is already ``y - max(y, axes, keepdims=True)`` (a shifted argument: leave it)."""
    node = x.node
    if node is None or node.op != "subtract":
        return False
    m = node.inputs[1].node
    if m is not None and m.op == "select":         # the guard _shifted puts on the max
        m = m.inputs[1].node
    return m is not None and m.op == "max" and m.inputs[0] is node.inputs[0]


def _shifted(g, x, axes):
    """(x - m, m) with m = max(x, axes, keepdims=True), and m replaced by 0 where it is not
    finite (so rows of -inf give -inf, not NaN, as scipy's logsumexp does)."""
    m = g.emit("max", x, axes=axes, keepdims=True)
    finite = g.emit("isfinite", m)
    m = g.emit("select", finite, m, g.const_like(m, 0.0))   # select broadcasts the scalar
    return g.emit("subtract", x, m), m


def _logsumexp(g, x, axes, keepdims, v):
    if _is_max_shift(x):
        return None
    shifted, m = _shifted(g, x, axes)
    s = g.emit("sum", g.emit("exp", shifted), axes=axes, keepdims=keepdims)
    if not keepdims:
        m = g.emit("reshape", m, shape=tuple(s.shape))
    return g.emit("add", g.emit("log", s), m)


def _logsumexp_rule(g, v, s, x):
    node = s.node
    axes, keepdims = _reduce_params(node)
    return _logsumexp(g, node.inputs[0].node.inputs[0], axes, keepdims, v)


def _broadcasts_back(axes, keepdims) -> bool:
    """A sum over ``axes`` lines up with its operand again when broadcast: it kept its axes, or
    it reduced leading ones (``np.exp(x) / np.exp(x).sum()`` on a vector, or ``.sum(0)``)."""
    return keepdims or tuple(sorted(axes)) == tuple(range(len(axes)))


def _softmax_rule(g, v, e, s):
    x = e.node.inputs[0]
    axes, keepdims = _reduce_params(s.node)
    if not _broadcasts_back(axes, keepdims) or s.node.inputs[0] is not e or _is_max_shift(x):
        return None
    shifted, _ = _shifted(g, x, axes)
    num = g.emit("exp", shifted)
    return g.emit("divide", num, g.emit("sum", num, axes=axes, keepdims=True))


def _constant_along(b, axis, ndim) -> bool:
    """``b``, broadcast against an operand of ``ndim`` axes, does not vary along ``axis``.
    Broadcasting aligns trailing axes: b's axis ``axis - (ndim - b.ndim)`` is the one that meets
    the operand's ``axis`` (a b of shape (n, 1) against (k, n, m) varies along axis 1)."""
    own = axis - (ndim - b.ndim)
    return own < 0 or b.shape[own].value == 1


def _argmax_of_monotone(op):
    """argmax/argmin(f(a)) -> argmax/argmin(a) for f increasing along the reduced axis."""
    def build(g, v, a, **caps):
        (axis,) = v.node.params["axes"]
        b = caps.get("b")
        if b is not None and not _constant_along(b, axis, v.node.inputs[0].ndim):
            return None
        return g.emit(op, a, axes=(axis,), keepdims=v.node.params["keepdims"])
    return build


def _positive(b) -> bool:
    n = b.node
    return n is not None and n.op == "sum" and n.inputs[0].node is not None and \
        n.inputs[0].node.op == "exp"


def _full_shape(a, v) -> bool:
    """``a`` has the shape of the argmax's operand (dropping the other operand loses nothing)."""
    return tuple(a.shape) == tuple(v.node.inputs[0].shape)


def _selects_exp_ratio(v) -> bool:
    """``v`` picks elements (integer-array indexing or a slice) out of ``exp(x) / s``."""
    d = v.node.inputs[0].node
    return d is not None and d.op == "divide" and d.inputs[0].node is not None and \
        d.inputs[0].node.op == "exp"


def _log_inside(g, v, picked):
    """log(p[idx]) -> log(p)[idx]: the log then meets the ratio, which log_of_exp_ratio turns
    into x - log(s). Picking a softmax probability before taking its log is how cross-entropy
    is usually written, and the probability of a wrong class underflows to 0 for large logits."""
    node = picked.node
    logp = g.emit("log", node.inputs[0])
    return g.emit(node.op, logp, *node.inputs[1:], **node.params)


_SUM_EXP = Pat("sum", Pat("exp", Pat.var("x")), name="s")


RULES = (
    Rule("log1p_of_add_one", Pat("log", Pat("add", Pat.const(1), Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("log1p", x))),
    Rule("log1p_of_one_minus", Pat("log", Pat("subtract", Pat.const(1), Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("log1p", g.emit("negative", x)))),
    Rule("expm1_of_exp_minus_one", Pat("subtract", Pat("exp", Pat.var("x")), Pat.const(1), name="v"),
         _checked(lambda g, v, x: g.emit("expm1", x))),
    Rule("expm1_of_exp_plus_minus_one", Pat("add", Pat("exp", Pat.var("x")), Pat.const(-1), name="v"),
         _checked(lambda g, v, x: g.emit("expm1", x))),
    Rule("softplus_of_log1p_exp", Pat("log1p", Pat("exp", Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("softplus", x))),
    Rule("sigmoid_of_reciprocal", Pat("divide", Pat.const(1),
                                      Pat("add", Pat.const(1), Pat("exp", Pat("negative", Pat.var("x")))),
                                      name="v"),
         _checked(lambda g, v, x: g.emit("expit", x))),
    Rule("sigmoid_of_exp_ratio", Pat("divide", Pat("exp", Pat.var("x")),
                                     Pat("add", Pat.const(1), Pat("exp", Pat.var("x"))), name="v"),
         _checked(lambda g, v, x: g.emit("expit", x))),
    Rule("log_sigmoid", Pat("log", Pat("expit", Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("negative", g.emit("softplus", g.emit("negative", x))))),
    Rule("log_one_minus_sigmoid", Pat("log1p", Pat("negative", Pat("expit", Pat.var("x"))), name="v"),
         _checked(lambda g, v, x: g.emit("negative", g.emit("softplus", x)))),
    Rule("log1mexp", Pat("log1p", Pat("negative", Pat("exp", Pat("negative", Pat.var("x")))), name="v"),
         _checked(lambda g, v, x: g.emit("log1mexp", x))),
    Rule("log_of_exp", Pat("log", Pat("exp", Pat.var("x")), name="v"),
         _checked(lambda g, v, x: x)),
    Rule("sqrt_of_square", Pat("sqrt", Pat("multiply", Pat.var("x"), Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("absolute", x))),
    Rule("sqrt_of_square_ufunc", Pat("sqrt", Pat("square", Pat.var("x")), name="v"),
         _checked(lambda g, v, x: g.emit("absolute", x))),
    Rule("log_of_exp_ratio", Pat("log", Pat("divide", Pat("exp", Pat.var("x")), Pat.var("s")), name="v"),
         _checked(lambda g, v, x, s: g.emit("subtract", x, g.emit("log", s)))),
    Rule("logsumexp", Pat("log", _SUM_EXP, name="v"), _checked(_logsumexp_rule)),
    Rule("log_of_picked_exp_ratio", Pat("log", Pat(("gather", "slice"), name="picked",
                                                   where=_selects_exp_ratio), name="v"),
         _checked(_log_inside)),
    Rule("softmax_max_shift", Pat("divide", Pat("exp", Pat.var("x"), name="e"),
                                  Pat("sum", Pat.var("e"), name="s"), name="v"),
         _checked(lambda g, v, x, e, s: _softmax_rule(g, v, e, s))),
    Rule("argmax_of_exp", Pat(("argmax", "argmin"), Pat("exp", Pat.var("a")), name="v"),
         lambda g, v, a: _argmax_of_monotone(v.node.op)(g, v, a)),
    Rule("argmax_of_shift", Pat(("argmax", "argmin"), Pat("subtract", Pat.var("a"), Pat.var("b")), name="v"),
         lambda g, v, a, b: _argmax_of_monotone(v.node.op)(g, v, a, b=b)
         if _full_shape(a, v) else None),
    Rule("argmax_of_positive_scaling",
         Pat(("argmax", "argmin"), Pat("divide", Pat.var("a"), Pat.var("b", where=_positive)), name="v"),
         lambda g, v, a, b: _argmax_of_monotone(v.node.op)(g, v, a, b=b)
         if _full_shape(a, v) else None),
)
