"""Specialisation: patterns a backend has a better primitive for.

A matrix product followed by a bias add and/or a scaling, or subtracted from a term, becomes
one BLAS ``gemm`` (``alpha * (a @ b) + beta * c``), when the product is read nowhere else.
"""
from __future__ import annotations

from ..pattern import Pat, Rule, const_scalar


def _float(*values):
    return all(v.dtype.kind == "f" and v.dtype == values[0].dtype for v in values)


def _only_use(g, v):
    return g.uses(v) == 1


def _keeps_shape(c, v, m):
    """Adding c does not enlarge the product m (the sum v has m's shape): c has no more axes,
    and where m's size is 1, so is c's (elsewhere the sizes are equal or c's is 1: a size
    that is not 1 in a type is checked equal to the one it broadcasts with)."""
    if c.ndim > m.ndim or m.ndim != v.ndim:
        return False
    return all(md.value != 1 or cd.value == 1
               for md, cd in zip(m.shape[m.ndim - c.ndim:], c.shape))


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


def _minus_product(g, v, c, m):
    """c - alpha * (a @ b): the update ``W - lr * (h.T @ dz)`` of every SGD step, one BLAS
    call into a copy of c instead of a product, a scaling and a subtraction."""
    a, b = m.node.inputs[:2]
    alpha = m.node.params["alpha"] if m.node.op == "gemm" else 1.0
    if m.node.op == "gemm" and m.node.params["beta"] != 0:
        return None
    if not (_float(a, b, c, v) and _only_use(g, m) and _keeps_shape(c, v, m)):
        return None
    return g.emit("gemm", a, b, c, alpha=-alpha, beta=1.0)


RULES = (
    Rule("gemm_of_matmul_plus_bias", Pat("add", Pat("matmul", name="m"), Pat.var("c"), name="v"),
         _bias),
    Rule("gemm_of_scaled_matmul", Pat("multiply", Pat("matmul", name="m"),
                                      Pat.var("s", where=_scalar), name="v"), _scale),
    Rule("gemm_plus_bias", Pat("add", Pat("gemm", name="m"), Pat.var("c"), name="v"), _gemm_bias),
    Rule("gemm_scaled", Pat("multiply", Pat("gemm", name="m"), Pat.var("s", where=_scalar),
                            name="v"), _gemm_scale),
    Rule("gemm_of_difference", Pat("subtract", Pat.var("c"), Pat("gemm", name="m"), name="v"),
         _minus_product),
    Rule("gemm_of_difference_with_matmul",
         Pat("subtract", Pat.var("c"), Pat("matmul", name="m"), name="v"), _minus_product),
)
