"""`lumen.check_grad`: derivatives against central finite differences (Theano's verify_grad)."""
from __future__ import annotations

import numpy as np

from . import pytree


def check_grad(fn, args, eps=None, rtol=None, atol=None, seed=0, max_elements=256):
    """Compare lumen's reverse mode (grad / lop), forward mode (rop) and their transpose
    identity with central finite differences of ``fn`` in float64 at ``args``. Raises
    AssertionError naming the worst element when they disagree."""
    from .jit import jit
    from .transforms import grad, lop, rop
    eps = 1e-6 if eps is None else eps
    rtol = 1e-5 if rtol is None else rtol
    leaves, treedef = pytree.flatten(tuple(args))
    leaves = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else x for x in leaves]
    is_float = [isinstance(x, np.ndarray) and x.dtype == np.float64 for x in leaves]
    f = jit(fn)
    rng = np.random.default_rng(seed)

    def call(xs):
        return pytree.flatten(f(*pytree.unflatten(treedef, xs)))

    (out_leaves, out_tree) = call(leaves)
    out_leaves = [np.asarray(o, np.float64) for o in out_leaves]
    scale = max([1.0] + [float(np.max(np.abs(o))) for o in out_leaves if o.size])
    tol = atol if atol is not None else rtol * scale

    def shifted(direction, k):
        return [x + k * d if fl else x for x, d, fl in zip(leaves, direction, is_float)]

    def fd(direction):
        plus, _ = call(shifted(direction, eps))
        minus, _ = call(shifted(direction, -eps))
        return [(np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2 * eps)
                for p, m in zip(plus, minus)]

    v = [rng.standard_normal(np.shape(x)) if fl else np.zeros(np.shape(x)) for x, fl in zip(leaves, is_float)]
    u = [rng.standard_normal(o.shape) for o in out_leaves]
    args_tree = pytree.unflatten(treedef, leaves)

    # forward mode: J v against the directional difference
    jv = pytree.flatten(rop(fn, args_tree, pytree.unflatten(treedef, [
        vi if fl else np.zeros_like(np.asarray(x, float)) for vi, x, fl in zip(v, leaves, is_float)])))[0]
    numeric = fd(v)
    for k, (a, n) in enumerate(zip(jv, numeric)):
        _compare(f"rop (J·v), output {k}", np.asarray(a, np.float64), n, tol)

    # reverse mode: uᵀJ, element by element against finite differences
    u_tree = pytree.unflatten(out_tree, u)
    ujs = pytree.flatten(lop(fn, args_tree, u_tree))[0]
    for i, (x, fl) in enumerate(zip(leaves, is_float)):
        if not fl:
            continue
        uj = np.asarray(ujs[i], np.float64)
        flat = list(range(x.size))
        if len(flat) > max_elements:
            flat = sorted(rng.choice(x.size, max_elements, replace=False))
        expected = np.empty(len(flat))
        for j, index in enumerate(flat):
            basis = [np.zeros(np.shape(y)) for y in leaves]
            basis[i].reshape(-1)[index] = 1.0
            expected[j] = sum(float(np.sum(uo * d)) for uo, d in zip(u, fd(basis)))
        _compare(f"lop (uᵀ·J), argument {i}", uj.reshape(-1)[flat], expected, tol)

    # the transpose identity <u, J v> = <uᵀ J, v>
    lhs = sum(float(np.sum(uo * np.asarray(a, np.float64))) for uo, a in zip(u, jv))
    rhs = sum(float(np.sum(np.asarray(g, np.float64) * vi)) for g, vi, fl in zip(ujs, v, is_float) if fl)
    if not abs(lhs - rhs) <= tol * max(1.0, abs(lhs)) * 10:
        raise AssertionError(f"<u, J·v> = {lhs!r} but <uᵀ·J, v> = {rhs!r}")

    # grad, when fn returns a scalar
    if len(out_leaves) == 1 and out_leaves[0].ndim == 0:
        nums = tuple(i for i, fl in enumerate(is_float) if fl and treedef[1][i] == pytree.LEAF)
        if nums and len(nums) == len(leaves):
            g = grad(fn, argnums=nums)(*args_tree)
            for i, gi in zip(nums, g):
                _compare(f"grad, argument {i}", np.asarray(gi, np.float64).reshape(-1),
                         np.asarray(ujs[i], np.float64).reshape(-1) / float(u[0]), tol)


def _compare(what, analytic, numeric, tol):
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    err = np.abs(analytic - numeric)
    bound = tol + tol * np.abs(numeric)
    bad = ~(err <= bound)
    if bad.any():
        k = int(np.argmax(np.where(bad, err, -1)))
        idx = np.unravel_index(k, analytic.shape) if analytic.ndim else ()
        raise AssertionError(f"{what}: element {[int(i) for i in idx]}: lumen gives "
                             f"{analytic.reshape(-1)[k]!r}, finite differences give "
                             f"{numeric.reshape(-1)[k]!r} (error {err.reshape(-1)[k]:.3g})")
