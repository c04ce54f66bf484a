"""The function transforms of SPEC §2: grad, value_and_grad, rop, lop, jacobian, hessian, hvp,
stop_gradient.

Inside traced code a transform traces the function inline and appends the derivative's
primitives to the same trace (`lumen.autodiff`), so ``jit(grad(f))`` compiles one graph and
transforms compose in any order. Called on plain arrays, a transform compiles itself with
`lumen.jit` (cached) and runs.
"""
from __future__ import annotations

import functools
import operator

import numpy as np

from ..autodiff.transform import backward, forward
from ..errors import UnsupportedError
from . import pytree
from .trace import current, in_trace, to_value
from .tracer import Tracer

_compiled = {}


def _tracing(*trees) -> bool:
    """Inside a trace (the transform is traced inline), or given traced values."""
    if in_trace():
        return True
    leaves, _ = pytree.flatten(trees)
    return any(isinstance(x, Tracer) for x in leaves)


def _eager(key, fn):
    """``lumen.jit(fn)``, made once per ``key``."""
    from .jit import jit
    jitted = _compiled.get(key)
    if jitted is None:
        jitted = _compiled[key] = jit(fn)
    return jitted


def _key(argnums):
    """``argnums`` for a cache key: ``1`` and ``(1,)`` return differently shaped results."""
    return argnums if isinstance(argnums, int) else ("tuple",) + tuple(argnums)


def _as_tracers(tree):
    """``tree`` with each floating-point leaf a fresh value of the trace: the identity
    ``cast`` (which the simplify phase drops). A transform differentiates with respect to these,
    never to the caller's values, which the function may also read as constants: in
    ``grad(lambda y: y * x)(x)`` the derivative is ``x``, not ``2 * x`` (perturbation confusion)."""
    leaves, treedef = pytree.flatten(tree)
    return pytree.unflatten(treedef, [_fresh(to_value(x)) for x in leaves])


def _fresh(v):
    if v.dtype.kind != "f":
        return Tracer(v)
    out = current().emit("cast", [v], dtype=v.dtype).out
    out.type = v.type           # keeps a Python scalar's weak type
    return Tracer(out)


def _record(fn, args, kwargs=None):
    """Call ``fn`` in the current trace; -> (its result, the nodes it added)."""
    builder = current().builder
    start = len(builder.nodes)
    out = fn(*args, **(kwargs or {}))
    return out, builder.nodes[start:]


def _float_leaves(tree, what):
    leaves, treedef = pytree.flatten(tree)
    for leaf in leaves:
        if to_value(leaf).dtype.kind != "f":
            raise TypeError(f"{what} requires floating-point inputs, got {to_value(leaf).dtype} "
                            "(differentiating with respect to an integer argument)")
    return leaves, treedef


def _zeros_or(ct, like):
    from ..autodiff.emit import Emitter
    return ct if ct is not None else Emitter(current().builder).zeros_like(like)


def value_and_grad(fn, argnums=0, has_aux=False):
    """A function returning ``(fn(*args), gradient of fn with respect to args[argnums])``
    (``((value, aux), gradient)`` with ``has_aux``). ``fn`` must return a float scalar."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    @functools.wraps(fn, updated=())
    def value_and_grad_fn(*args, **kwargs):
        if not _tracing(args, kwargs):
            return _eager(("value_and_grad", fn, _key(argnums), has_aux), value_and_grad_fn)(*args, **kwargs)
        args = list(args)
        for i in nums:
            args[i] = _as_tracers(args[i])
        wrt, trees = [], []
        for i in nums:
            leaves, treedef = _float_leaves(args[i], "grad")
            wrt.append([to_value(x) for x in leaves])
            trees.append(treedef)
        out, nodes = _record(fn, args, kwargs)
        value, aux = out if has_aux else (out, None)
        v = to_value(value)
        if v.ndim != 0 or v.dtype.kind != "f":
            raise TypeError(f"grad requires a function returning a float scalar, got "
                            f"{v.type.text()}; use lumen.lop or lumen.jacobian for arrays")
        from ..autodiff.emit import Emitter
        seed = Emitter(current().builder).const(1, v)
        flat = [w for group in wrt for w in group]
        cts = backward(current().builder, nodes, [(v, seed)], flat)
        grads, k = [], 0
        for group, treedef in zip(wrt, trees):
            leaves = [Tracer(_zeros_or(cts[k + j], w)) for j, w in enumerate(group)]
            grads.append(pytree.unflatten(treedef, leaves))
            k += len(group)
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((value, aux) if has_aux else value), grads
    return value_and_grad_fn


def grad(fn, argnums=0, has_aux=False):
    """The gradient of scalar-valued ``fn`` with respect to ``args[argnums]``."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn, updated=())
    def grad_fn(*args, **kwargs):
        out, g = vg(*args, **kwargs)
        return (g, out[1]) if has_aux else g
    return grad_fn


def lop(fn, args, cotangents):
    """uᵀ·J: the cotangents (structure of ``fn(*args)``) pulled back to ``args``' structure."""
    args = tuple(args)
    if not _tracing(args, cotangents):
        return _eager(("lop", fn), lambda a, c: lop(fn, a, c))(args, cotangents)
    args = _as_tracers(args)
    leaves, treedef = _float_leaves(args, "lop")
    wrt = [to_value(x) for x in leaves]
    out, nodes = _record(fn, args)
    out_leaves, out_tree = pytree.flatten(out)
    ct_leaves, ct_tree = pytree.flatten(cotangents)
    if ct_tree != out_tree:
        raise ValueError("lop: cotangents must have the structure of fn(*args)")
    seeds = []
    for o, c in zip(out_leaves, ct_leaves):
        ov, cv = to_value(o), to_value(c)
        if ov.dtype.kind == "f":
            from .ops import astype, broadcast_to
            seeds.append((ov, to_value(broadcast_to(astype(Tracer(cv), ov.dtype), ov.shape))))
    cts = backward(current().builder, nodes, seeds, wrt)
    return pytree.unflatten(treedef, [Tracer(_zeros_or(c, w)) for c, w in zip(cts, wrt)])


def rop(fn, args, vectors):
    """J·v: the directional derivative of ``fn`` at ``args`` along ``vectors`` (same structure
    as ``args``); the result has the structure of ``fn(*args)``."""
    args = tuple(args)
    vectors = tuple(vectors)
    if not _tracing(args, vectors):
        return _eager(("rop", fn), lambda a, v: rop(fn, a, v))(args, vectors)
    args = _as_tracers(args)
    leaves, treedef = _float_leaves(args, "rop")
    v_leaves, v_tree = pytree.flatten(vectors)
    if v_tree != treedef:
        raise ValueError("rop: vectors must have the structure of args")
    from .ops import astype, broadcast_to
    tangents = {}
    for x, t in zip(leaves, v_leaves):
        xv = to_value(x)
        tangents[xv] = to_value(broadcast_to(astype(Tracer(to_value(t)), xv.dtype), xv.shape))
    out, nodes = _record(fn, args)
    tangents = forward(current().builder, nodes, tangents)
    out_leaves, out_tree = pytree.flatten(out)
    result = []
    for o in out_leaves:
        ov = to_value(o)
        t = tangents.get(ov)
        result.append(Tracer(_zeros_or(t, ov)))
    return pytree.unflatten(out_tree, result)


def jacobian(fn, argnums=0):
    """A function returning the full Jacobian: shape ``fn(...).shape + args[argnums].shape``
    (the output's size is then fixed at trace time)."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    @functools.wraps(fn, updated=())
    def jacobian_fn(*args):
        if not _tracing(args):
            return _eager(("jacobian", fn, _key(argnums)), jacobian_fn)(*args)
        from . import ops
        args = [_as_tracers(a) if i in nums else a for i, a in enumerate(args)]
        wrt = [to_value(args[i]) for i in nums]
        for w in wrt:
            if w.dtype.kind != "f":
                raise TypeError("jacobian requires floating-point inputs")
        out, nodes = _record(fn, args)
        ov = to_value(out)
        n = operator.index(int(np.prod([int(d) for d in ov.shape]) if ov.ndim else 1))
        rows = [[] for _ in nums]
        flat_iota = ops.arange_like(n)
        for i in range(n):
            onehot = ops.astype(ops.ufunc("equal", flat_iota, i), ov.dtype)
            seed = to_value(ops.reshape(onehot, tuple(ov.shape)))
            cts = backward(current().builder, nodes, [(ov, seed)], wrt)
            for k, (c, w) in enumerate(zip(cts, wrt)):
                rows[k].append(Tracer(_zeros_or(c, w)))
        jacs = [ops.reshape(ops.stack(r), tuple(ov.shape) + tuple(w.shape)) for r, w in zip(rows, wrt)]
        return jacs[0] if isinstance(argnums, int) else tuple(jacs)
    return jacobian_fn


def hessian(fn, argnums=0):
    """The Hessian of scalar-valued ``fn``: the Jacobian of its gradient."""
    return jacobian(grad(fn, argnums), argnums)


def hvp(fn, args, vectors):
    """Hessian-vector product of scalar-valued ``fn``: forward mode over reverse mode."""
    return rop(grad(fn, argnums=tuple(range(len(tuple(args))))), args, vectors)


def stop_gradient(x):
    """``x``, through which no derivative flows."""
    if isinstance(x, Tracer):
        return Tracer(current().emit("stop_gradient", [x._value]).out)
    leaves, treedef = pytree.flatten(x)
    if any(isinstance(leaf, Tracer) for leaf in leaves) and treedef != pytree.LEAF:
        return pytree.unflatten(treedef, [stop_gradient(leaf) for leaf in leaves])
    return x


__all__ = ["grad", "value_and_grad", "lop", "rop", "jacobian", "hessian", "hvp", "stop_gradient",
           "UnsupportedError"]
