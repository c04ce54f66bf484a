"""`lumen.check_grad`: derivatives against central finite differences (Theano's verify_grad)."""
from __future__ import annotations

import numpy as np

from . import pytree


def check_grad(fn, args, eps=None, rtol=None, atol=None, seed=0, max_elements=256):
    """Compare lumen's reverse mode (grad / lop), forward mode (rop) and their transpose
    identity with central finite differences of ``fn`` in float64 at ``args``. Raises
    AssertionError naming the worst element when they disagree. Arguments that are not
    floating-point (integer indices, say) are held fixed."""
    from .jit import jit
    from .transforms import grad, lop, rop
    eps = 1e-6 if eps is None else eps
    rtol = 1e-5 if rtol is None else rtol
    leaves, treedef = pytree.flatten(tuple(args))
    names = [f"argument {p}" for p in pytree.leaf_paths(treedef)]
    where = [i for i, x in enumerate(leaves) if np.asarray(x).dtype.kind == "f"]
    xs = [np.array(leaves[i], dtype=np.float64) for i in where]
    names = [names[i] for i in where]

    def of_floats(*floats):
        """``fn`` as a function of the floating-point leaves alone."""
        full = list(leaves)
        for i, x in zip(where, floats):
            full[i] = x
        return fn(*pytree.unflatten(treedef, full))

    f = jit(of_floats)
    rng = np.random.default_rng(seed)

    def call(values):
        return pytree.flatten(f(*values))

    (out_leaves, out_tree) = call(xs)
    out_leaves = [np.asarray(o, np.float64) for o in out_leaves]
    scale = max([1.0] + [float(np.max(np.abs(o))) for o in out_leaves if o.size])
    tol = atol if atol is not None else rtol * scale

    def fd(direction):
        plus, _ = call([x + eps * d for x, d in zip(xs, direction)])
        minus, _ = call([x - eps * d for x, d in zip(xs, direction)])
        return [(np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2 * eps)
                for p, m in zip(plus, minus)]

    v = [rng.standard_normal(x.shape) for x in xs]
    u = [rng.standard_normal(o.shape) for o in out_leaves]

    # forward mode: J v against the directional difference
    jv = pytree.flatten(rop(of_floats, tuple(xs), tuple(v)))[0]
    for k, (a, n) in enumerate(zip(jv, fd(v))):
        _compare(f"rop (J·v), output {k}", np.asarray(a, np.float64), n, tol)

    # reverse mode: uᵀJ, element by element against finite differences
    ujs = [np.asarray(g, np.float64) for g in lop(of_floats, tuple(xs), pytree.unflatten(out_tree, u))]
    for i, x in enumerate(xs):
        flat = list(range(x.size))
        if len(flat) > max_elements:
            flat = sorted(rng.choice(x.size, max_elements, replace=False))
        expected = np.empty(len(flat))
        for j, index in enumerate(flat):
            basis = [np.zeros(y.shape) for y in xs]
            basis[i].reshape(-1)[index] = 1.0
            expected[j] = sum(float(np.sum(uo * d)) for uo, d in zip(u, fd(basis)))
        _compare(f"lop (uᵀ·J), {names[i]}", ujs[i].reshape(-1)[flat], expected, tol)

    # the transpose identity <u, J v> = <uᵀ J, v>
    lhs = sum(float(np.sum(uo * np.asarray(a, np.float64))) for uo, a in zip(u, jv))
    rhs = sum(float(np.sum(g * vi)) for g, vi in zip(ujs, v))
    if not abs(lhs - rhs) <= tol * max(1.0, abs(lhs)) * 10:
        raise AssertionError(f"<u, J·v> = {lhs!r} but <uᵀ·J, v> = {rhs!r}")

    # grad, when fn returns a scalar
    if xs and len(out_leaves) == 1 and out_leaves[0].ndim == 0:
        g = grad(of_floats, argnums=tuple(range(len(xs))))(*xs)
        for i, gi in enumerate(g):
            _compare(f"grad, {names[i]}", np.asarray(gi, np.float64).reshape(-1),
                     ujs[i].reshape(-1) / float(u[0]), tol)


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
