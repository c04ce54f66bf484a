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
from ...ir.ops.creation import ConstValue


def keepdims(e, g, node):
    """A reduction's cotangent with the reduced axes kept (length 1)."""
    if node.params["keepdims"]:
        return g
    shape = list(node.inputs[0].shape)
    for a in node.params["axes"]:
        shape[a] = Dim.const(1)
    return e.op("reshape", g, shape=tuple(shape))


def _reduced_out(e, node):
    return keepdims(e, node.out, node)


def _sum_vjp(e, node, g):
    x = node.inputs[0]
    return [e.broadcast_to(keepdims(e, g, node), x.shape)]


def _sum_jvp(e, node, ts):
    return e.op("sum", ts[0], **node.params)


def _chooser(e, node):
    """Where the max/min was taken, as weights summing to 1 over ties (JAX's convention)."""
    x = node.inputs[0]
    hit = e.cast(e.op("equal", x, _reduced_out(e, node)), x.dtype)
    count = e.op("sum", hit, axes=node.params["axes"], keepdims=True)
    return e.div(hit, count)


def _minmax_vjp(e, node, g):
    return [e.mul(keepdims(e, g, node), _chooser(e, node))]


def _minmax_jvp(e, node, ts):
    return e.op("sum", e.mul(ts[0], _chooser(e, node)), **node.params)


def _zeros_apart(e, x):
    """(x == 0, x with its zeros replaced by 1): products without the zeros, so that no
    derivative of a product divides by zero."""
    zero = e.op("equal", x, e.const(0, x))
    return zero, e.select(zero, e.const(1, x), x)


def _prod_partials(e, node):
    """d prod(x) / dx_j = the product of the other elements, without dividing by x_j: the
    product p of the nonzero elements over x_j (1 for a zero), times the zero elements other
    than x_j: 1 if there are none, their value (0, but with the right derivative, so that
    second derivatives are exact too) if one, 0 if more."""
    x = node.inputs[0]
    axes = node.params["axes"]
    zero, safe = _zeros_apart(e, x)
    p = e.op("prod", safe, axes=axes, keepdims=True)
    zeros = e.cast(zero, x.dtype)
    others = e.sub(e.op("sum", zeros, axes=axes, keepdims=True), zeros)
    at_zeros = e.where_zero(e.op("logical_not", zero), x)
    rest = e.sub(e.op("sum", at_zeros, axes=axes, keepdims=True), at_zeros)
    one = e.op("equal", others, e.const(1, x))
    factor = e.select(e.op("equal", others, e.const(0, x)), e.const(1, x),
                      e.where_zero(e.op("logical_not", one), rest))
    return e.mul(e.div(p, safe), factor)


def _prod_vjp(e, node, g):
    return [e.mul(keepdims(e, g, node), _prod_partials(e, node))]


def _prod_jvp(e, node, ts):
    return e.op("sum", e.mul(ts[0], _prod_partials(e, node)), **node.params)


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
    gv = e.op("gather", g, *idx, start=start)
    if node.params["mode"] == "add":
        gx = g
    else:
        gx = e.op("scatter", g, e.const(0, g), *idx, start=start, mode="set")
        kept = _kept_writes(e, node, gv)
        if kept is not None:
            gv = e.where_zero(e.op("logical_not", kept), gv)
    return [gx, e.sum_to(gv, v)] + [None] * len(idx)


def _kept_writes(e, node, gathered):
    """For ``x[idx] = v`` with repeated indices, NumPy keeps the last write to each element:
    True where an element of the indexed shape is the write that stays (None when the indices
    are constants without repeats). Found by scattering the write order and reading it back."""
    x, v, *idx = node.inputs
    start = node.params["start"]
    if _distinct_constants(idx):
        return None
    nb = gathered.ndim - (x.ndim - len(idx))
    b = gathered.shape[start:start + nb]
    n = Dim.const(1)
    for d in b:
        n = n * d
    order = e.op("iota", size=n, dtype=np.dtype(np.int64))
    order = e.op("reshape", order, shape=tuple(b) + (Dim.const(1),) * (gathered.ndim - start - nb))
    unset = e.op("const", value=ConstValue(np.asarray(-1, np.int64)), weak=False)
    slots = e.op("scatter", e.broadcast_to(unset, x.shape), order, *idx, start=start, mode="set")
    return e.op("equal", e.op("gather", slots, *idx, start=start), order)


def _distinct_constants(idx) -> bool:
    arrays = []
    for i in idx:
        if i.node is None or i.node.op != "const":
            return False
        arrays.append(i.node.params["value"].array)
    keys = list(zip(*(a.reshape(-1).tolist() for a in np.broadcast_arrays(*arrays))))
    return all(i >= 0 for k in keys for i in k) and len(set(keys)) == len(keys)


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


def _rows(e, v):
    """(..., M, K) as one (prod(...) * M, K) matrix."""
    from ...ir.dims import prod
    return e.op("reshape", v, shape=(prod(v.shape[:-1]), v.shape[-1]))


def _matmul_vjp(e, node, g):
    a, b = node.inputs[:2]
    ga = e.sum_to(e.op("matmul", g, _swap(e, b)), a)
    if b.ndim == 2 and a.ndim > 2:
        # b shared by every batch element: one (K x rows) @ (rows x N) product, not a batch of
        # outer products summed afterwards
        gb = e.op("matmul", _swap(e, _rows(e, a)), _rows(e, g))
    else:
        gb = e.sum_to(e.op("matmul", _swap(e, a), g), b)
    return [ga, gb]


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


def _cumprod_parts(e, node):
    """For out = cumprod(x): d out_k / dx_i (i <= k) = P_k / s_i if no x_j (j <= k, j != i) is
    zero, else 0; P = cumprod(s) and s = x with zeros replaced by 1. Which case holds follows
    from c, the running count of zeros: no zero up to k (c_k = 0), or x_i is the only one
    (c_k = 1). -> (zero, s, P, c == 0, c == 1)."""
    x, axis = node.inputs[0], node.params["axis"]
    zero, safe = _zeros_apart(e, x)
    count = e.op("cumsum", e.cast(zero, x.dtype), axis=axis)
    none = e.op("equal", count, e.const(0, x))
    first = e.op("equal", count, e.const(1, x))
    return zero, safe, e.op("cumprod", safe, axis=axis), none, first


def _cumprod_vjp(e, node, g):
    axis = node.params["axis"]
    zero, safe, p, none, first = _cumprod_parts(e, node)
    gp = e.mul(g, p)

    def rev_cumsum(v):
        return _flip(e, e.op("cumsum", _flip(e, v, axis), axis=axis), axis)

    before = rev_cumsum(e.where_zero(e.op("logical_not", none), gp))
    at_first = rev_cumsum(e.where_zero(e.op("logical_not", first), gp))
    return [e.div(e.select(zero, at_first, before), safe)]


def _cumprod_jvp(e, node, ts):
    axis = node.params["axis"]
    zero, safe, p, none, first = _cumprod_parts(e, node)
    t = ts[0]
    nonzero_part = e.op("cumsum", e.where_zero(zero, e.div(t, safe)), axis=axis)
    zero_part = e.op("cumsum", e.where_zero(e.op("logical_not", zero), t), axis=axis)
    inner = e.add(e.where_zero(e.op("logical_not", none), nonzero_part),
                  e.where_zero(e.op("logical_not", first), zero_part))
    return e.mul(p, inner)


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

def _full_mask(e, node, mask):
    return e.broadcast_to(mask, node.out.shape)


def _no(e, like):
    """False, in ``like``'s shape."""
    false = e.op("const", value=ConstValue(np.asarray(False)), weak=False)
    return e.broadcast_to(false, like.shape)


#: ``MASK[op](e, node, mask)``: where the cotangent of the first input can be nonzero, given
#: that the output's is zero outside ``mask`` (so ``np.where`` keeps NaN from the branch it did
#: not take through reshapes, transposes, broadcasts and slices of it too).
MASK = {
    "reshape": lambda e, node, m: e.op("reshape", _full_mask(e, node, m),
                                       shape=tuple(node.inputs[0].shape)),
    "transpose": lambda e, node, m: _transpose_vjp(e, node, _full_mask(e, node, m))[0],
    "broadcast_to": lambda e, node, m: e.mask_to(m, node.inputs[0], node.out),
    "slice": lambda e, node, m: e.op("update_slice", _no(e, node.inputs[0]),
                                     _full_mask(e, node, m), specs=node.params["specs"]),
}

#: Primitives with no derivative (integer results, or no inputs).
ZERO = frozenset(("argmax", "argmin", "any", "all", "const", "iota", "dim"))
