"""Specialisation: patterns a backend has a better primitive for.

A matrix product followed by a bias add and/or a scaling becomes one BLAS ``gemm``
(``alpha * (a @ b) + beta * c``), when the product is read nowhere else.
"""
from __future__ import annotations

from ..pattern import Pat, Rule, const_scalar


def _float(*values):
    return all(v.dtype.kind == "f" and v.dtype == values[0].dtype for v in values)


def _only_use(g, v):
    return g.uses(v) == 1


def _keeps_shape(c, v, m):
    """Adding c does not enlarge the product m (the sum v has m's shape)."""
    return c.ndim <= v.ndim and tuple(m.shape) == tuple(v.shape)


def _scalar(s):
    return const_scalar(s) is not None


def _bias(g, v, m, c):
    a, b = m.node.inputs
    if not (_float(a, b, c, v) and _only_use(g, m) and _keeps_shape(c, v, m)):
        return None
    return g.emit("gemm", a, b, c, alpha=1.0, beta=1.0)


def _scale(g, v, m, s):
    a, b = m.node.inputs
    if not (_float(a, b, v) and _only_use(g, m) and tuple(m.shape) == tuple(v.shape)):
        return None
    return g.emit("gemm", a, b, g.const_like(v, 0.0), alpha=float(const_scalar(s)), beta=0.0)


def _gemm_bias(g, v, m, c):
    a, b, c0 = m.node.inputs
    p = m.node.params
    if p["beta"] != 0 or not (_float(a, c, v) and _only_use(g, m) and _keeps_shape(c, v, m)):
        return None
    return g.emit("gemm", a, b, c, alpha=p["alpha"], beta=1.0)


def _gemm_scale(g, v, m, s):
    a, b, c = m.node.inputs
    p = m.node.params
    k = float(const_scalar(s))
    if not (_float(a, v) and _only_use(g, m) and tuple(m.shape) == tuple(v.shape)):
        return None
    return g.emit("gemm", a, b, c, alpha=p["alpha"] * k, beta=p["beta"] * k)


RULES = (
    Rule("gemm_of_matmul_plus_bias", Pat("add", Pat("matmul", name="m"), Pat.var("c"), name="v"),
         _bias),
    Rule("gemm_of_scaled_matmul", Pat("multiply", Pat("matmul", name="m"),
                                      Pat.var("s", where=_scalar), name="v"), _scale),
    Rule("gemm_plus_bias", Pat("add", Pat("gemm", name="m"), Pat.var("c"), name="v"), _gemm_bias),
    Rule("gemm_scaled", Pat("multiply", Pat("gemm", name="m"), Pat.var("s", where=_scalar),
                            name="v"), _gemm_scale),
)
