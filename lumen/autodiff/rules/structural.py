"""Forward (JVP) and reverse (VJP) rules of the primitives that are not elementwise:
reductions, shape and layout, indexing, matrix products, running sums.

``JVP[op](e, node, tangents) -> tangent of the output or None``;
``VJP[op](e, node, g) -> one cotangent (or None) per input``. Inputs whose tangent or
cotangent is zero are passed / returned as None. Most of these primitives are linear in their
differentiable inputs, so the JVP applies the primitive itself to the tangent and the VJP is its
transpose.
"""
from __future__ import annotations

import numpy as np

from ...ir.dims import Dim


def _keepdims(e, g, node):
    """A reduction's cotangent with the reduced axes kept (length 1)."""
    if node.params["keepdims"]:
        return g
    shape = list(node.inputs[0].shape)
    for a in node.params["axes"]:
        shape[a] = Dim.const(1)
    return e.op("reshape", g, shape=tuple(shape))


def _reduced_out(e, node):
    return _keepdims(e, node.out, node)


def _sum_vjp(e, node, g):
    x = node.inputs[0]
    return [e.broadcast_to(_keepdims(e, g, node), x.shape)]


def _sum_jvp(e, node, ts):
    return e.op("sum", ts[0], **node.params)


def _chooser(e, node):
    """Where the max/min was taken, as weights summing to 1 over ties (JAX's convention)."""
    x = node.inputs[0]
    hit = e.cast(e.op("equal", x, _reduced_out(e, node)), x.dtype)
    count = e.op("sum", hit, axes=node.params["axes"], keepdims=True)
    return e.div(hit, count)


def _minmax_vjp(e, node, g):
    return [e.mul(_keepdims(e, g, node), _chooser(e, node))]


def _minmax_jvp(e, node, ts):
    return e.op("sum", e.mul(ts[0], _chooser(e, node)), **node.params)


def _prod_vjp(e, node, g):
    x = node.inputs[0]
    return [e.div(e.mul(_keepdims(e, g, node), _reduced_out(e, node)), x)]


def _prod_jvp(e, node, ts):
    x = node.inputs[0]
    return e.op("sum", e.div(e.mul(ts[0], _reduced_out(e, node)), x), **node.params)


def _reshape_vjp(e, node, g):
    return [e.op("reshape", g, shape=tuple(node.inputs[0].shape))]


def _transpose_vjp(e, node, g):
    perm = node.params["perm"]
    inverse = tuple(int(i) for i in np.argsort(perm))
    return [e.op("transpose", g, perm=inverse)]


def _broadcast_vjp(e, node, g):
    return [e.sum_to(g, node.inputs[0])]


def _slice_vjp(e, node, g):
    x = node.inputs[0]
    return [e.op("update_slice", e.zeros_like(x), g, specs=node.params["specs"])]


def _full_range(n):
    return ("range", Dim.const(0), 1, n)


def _concat_vjp(e, node, g):
    axis = node.params["axis"]
    out, start = [], Dim.const(0)
    for x in node.inputs:
        n = x.shape[axis]
        specs = tuple(_full_range(d) for d in g.shape[:axis]) + (("range", start, 1, n),)
        out.append(e.op("slice", g, specs=specs))
        start = start + n
    return out


def _concat_jvp(e, node, ts):
    parts = [t if t is not None else e.zeros_like(x) for x, t in zip(node.inputs, ts)]
    return e.op("concatenate", *parts, axis=node.params["axis"])


def _gather_vjp(e, node, g):
    x, *idx = node.inputs
    return [e.op("scatter", e.zeros_like(x), g, *idx, start=node.params["start"], mode="add")] + \
        [None] * len(idx)


def _scatter_vjp(e, node, g):
    x, v, *idx = node.inputs
    start = node.params["start"]
    if node.params["mode"] == "add":
        gx = g
    else:
        gx = e.op("scatter", g, e.const(0, g), *idx, start=start, mode="set")
    gv = e.sum_to(e.op("gather", g, *idx, start=start), v)
    return [gx, gv] + [None] * len(idx)


def _scatter_jvp(e, node, ts):
    x, v, *idx = node.inputs
    tx = ts[0] if ts[0] is not None else e.zeros_like(x)
    tv = ts[1] if ts[1] is not None else e.const(0, x)
    return e.op("scatter", tx, tv, *idx, **node.params)


def _update_slice_vjp(e, node, g):
    x, v = node.inputs
    specs = node.params["specs"]
    gx = e.op("update_slice", g, e.const(0, g), specs=specs)
    gv = e.sum_to(e.op("slice", g, specs=specs), v)
    return [gx, gv]


def _update_slice_jvp(e, node, ts):
    x, v = node.inputs
    tx = ts[0] if ts[0] is not None else e.zeros_like(x)
    tv = ts[1] if ts[1] is not None else e.const(0, x)
    return e.op("update_slice", tx, tv, specs=node.params["specs"])


def _swap(e, v):
    perm = tuple(range(v.ndim - 2)) + (v.ndim - 1, v.ndim - 2)
    return e.op("transpose", v, perm=perm)


def _matmul_vjp(e, node, g):
    a, b = node.inputs[:2]
    return [e.sum_to(e.op("matmul", g, _swap(e, b)), a),
            e.sum_to(e.op("matmul", _swap(e, a), g), b)]


def _matmul_jvp(e, node, ts):
    a, b = node.inputs[:2]
    parts = []
    if ts[0] is not None:
        parts.append(e.op("matmul", ts[0], b))
    if ts[1] is not None:
        parts.append(e.op("matmul", a, ts[1]))
    return parts[0] if len(parts) == 1 else e.add(*parts)


def _gemm_vjp(e, node, g):
    alpha, beta = node.params["alpha"], node.params["beta"]
    ga, gb = _matmul_vjp(e, node, g)
    gc = e.sum_to(e.scale(g, beta), node.inputs[2]) if beta else None
    return [e.scale(ga, alpha), e.scale(gb, alpha), gc]


def _gemm_jvp(e, node, ts):
    alpha, beta = node.params["alpha"], node.params["beta"]
    out = None
    if ts[0] is not None or ts[1] is not None:
        out = e.scale(_matmul_jvp(e, node, ts[:2]), alpha)
    if beta and ts[2] is not None:
        tc = e.broadcast_to(e.scale(ts[2], beta), node.out.shape)
        out = tc if out is None else e.add(out, tc)
    return out


def _flip(e, v, axis):
    n = v.shape[axis]
    specs = tuple(_full_range(d) for d in v.shape[:axis]) + (("range", n - 1, -1, n),)
    return e.op("slice", v, specs=specs)


def _cumsum_vjp(e, node, g):
    axis = node.params["axis"]
    return [_flip(e, e.op("cumsum", _flip(e, g, axis), axis=axis), axis)]


def _cumprod_vjp(e, node, g):
    axis = node.params["axis"]
    x, out = node.inputs[0], node.out
    rev = _flip(e, e.op("cumsum", _flip(e, e.mul(g, out), axis), axis=axis), axis)
    return [e.div(rev, x)]


def _cumprod_jvp(e, node, ts):
    x = node.inputs[0]
    return e.mul(node.out, e.op("cumsum", e.div(ts[0], x), axis=node.params["axis"]))


def _linear(op_name):
    """JVP of a primitive linear in its first input: the primitive applied to the tangent."""
    def jvp(e, node, ts):
        return e.op(op_name, ts[0], *node.inputs[1:], **node.params)
    return jvp


JVP = {
    "sum": _sum_jvp, "max": _minmax_jvp, "min": _minmax_jvp, "prod": _prod_jvp,
    "reshape": _linear("reshape"), "transpose": _linear("transpose"),
    "broadcast_to": _linear("broadcast_to"), "slice": _linear("slice"),
    "concatenate": _concat_jvp, "gather": _linear("gather"), "scatter": _scatter_jvp,
    "update_slice": _update_slice_jvp, "matmul": _matmul_jvp, "gemm": _gemm_jvp,
    "cumsum": _linear("cumsum"), "cumprod": _cumprod_jvp,
}

VJP = {
    "sum": _sum_vjp, "max": _minmax_vjp, "min": _minmax_vjp, "prod": _prod_vjp,
    "reshape": _reshape_vjp, "transpose": _transpose_vjp, "broadcast_to": _broadcast_vjp,
    "slice": _slice_vjp, "concatenate": _concat_vjp, "gather": _gather_vjp,
    "scatter": _scatter_vjp, "update_slice": _update_slice_vjp, "matmul": _matmul_vjp,
    "gemm": _gemm_vjp, "cumsum": _cumsum_vjp, "cumprod": _cumprod_vjp,
}

#: Primitives with no derivative (integer results, or no inputs).
ZERO = frozenset(("argmax", "argmin", "any", "all", "const", "iota", "dim"))
