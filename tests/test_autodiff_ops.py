"""Derivatives of every differentiable primitive (SPEC §2): op records, one per primitive or
NumPy spelling (JAX ``op_record`` style), each checked by `lumen.check_grad` (rop, lop, grad
and the transpose identity against central finite differences in float64) on inputs where the
op is smooth; the registry walk that fails for any differentiable primitive without a rule or
without a record here; the exact transpose identity <u, J·v> = <uᵀ·J, v>; hypothesis-drawn
shapes (gradients summed back over broadcast axes).

check_grad evaluates ``fn`` twice per input element, so arrays stay small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import scipy.special as sc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumen
from lumen.autodiff.transform import rules_missing
from lumen.frontend.ops import emit, wrap
from lumen.frontend.trace import to_value
from lumen.ir.ops import OPS
from lumen.ir.ops.elementwise import UFUNCS


def primitive(name, *args, **params):
    """Emit primitive ``name`` directly (those that only rewrites create: gemm, softplus...)."""
    return wrap(emit(name, [to_value(a) for a in args], **params).out)


# -- input domains: where each op is smooth ---------------------------------------------------

@dataclass(frozen=True)
class Dom:
    """Uniform on [lo, hi]; ``signed``: times a random sign (|x| in [lo, hi], away from 0)."""
    lo: float = -2.0
    hi: float = 2.0
    signed: bool = False

    def sample(self, rng, shape):
        x = rng.uniform(self.lo, self.hi, shape)
        return x * rng.choice([-1.0, 1.0], shape) if self.signed else x


ANY, POS, UNIT = Dom(), Dom(0.3, 3.0), Dom(-0.9, 0.9)
AWAY = Dom(0.3, 2.0, signed=True)            # away from 0 (kinks, poles, sign flips)

#: Unary elementwise primitives -> domain (default ANY).
UNARY_DOMAINS = {
    "absolute": AWAY, "reciprocal": AWAY, "sqrt": POS, "cbrt": AWAY, "log": POS, "log2": POS,
    "log10": POS, "log1p": Dom(-0.5, 3.0), "tan": Dom(-1.2, 1.2), "arcsin": UNIT,
    "arccos": UNIT, "arctanh": UNIT, "arccosh": Dom(1.2, 3.0), "logit": Dom(0.1, 0.9),
    "gammaln": Dom(0.3, 5.0), "psi": Dom(0.3, 5.0), "exp": Dom(-2, 1.5), "exp2": Dom(-2, 1.5),
    "sinh": Dom(-1.5, 1.5), "cosh": Dom(-1.5, 1.5),
}

#: Binary elementwise primitives -> (domain of x, domain of y) (default ANY, ANY).
BINARY_DOMAINS = {
    "divide": (ANY, AWAY), "power": (POS, ANY), "arctan2": (AWAY, AWAY),
    "hypot": (AWAY, AWAY), "xlogy": (ANY, POS), "copysign": (ANY, AWAY),
    # a / b in (2.04, 2.8) or (-2.8, -2.04): floor and trunc stay constant nearby
    "remainder": (Dom(2.2, 2.8, signed=True), Dom(1.0, 1.08)),
    "fmod": (Dom(2.2, 2.8, signed=True), Dom(1.0, 1.08)),
}

#: Broadcast shape pairs the binary records run on (gradients summed back to each shape).
BINARY_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2))]

#: Elementwise primitives only rewrites create, emitted directly: name -> domain.
DIRECT_UNARY = {"softplus": Dom(-3, 3), "log1mexp": Dom(0.2, 3.0)}

#: Differentiable primitives whose derivatives are checked in their own tests, not by check_grad
#: on a record of this table: `kernel` only exists after kernelize, long after autodiff.
NOT_TRACED = {"kernel"}

DIFFERENTIABLE = sorted(name for name, op in OPS.items() if op.differentiable)
UNARY = sorted(n for n in DIFFERENTIABLE if n in UFUNCS and UFUNCS[n].nin == 1)
BINARY = sorted(n for n in DIFFERENTIABLE if n in UFUNCS and UFUNCS[n].nin == 2)


def sample_args(doms, shapes, seed):
    rng = np.random.default_rng(seed)
    return tuple(d.sample(rng, s) for d, s in zip(doms, shapes))


# -- the registry ---------------------------------------------------------------------------------

def test_every_differentiable_primitive_has_a_rule():
    assert rules_missing() == []


def test_while_loop_both_modes():
    """Forward and reverse mode through while_loop agree (a ** 6 after five multiplications)."""
    def power6(a):
        return lumen.while_loop(lambda s: s[1] < 5, lambda s: (s[0] * a, s[1] + 1),
                                (a, np.int64(0)))[0]
    t = lumen.rop(power6, (np.float64(1.5),), (np.float64(1.0),))
    assert t == pytest.approx(6 * 1.5 ** 5)
    assert lumen.grad(power6)(np.float64(1.5)) == pytest.approx(6 * 1.5 ** 5)


def test_every_differentiable_primitive_has_a_gradient_record():
    """Every primitive the registry calls differentiable appears in the traced graph of some
    record below (so check_grad really differentiates it)."""
    seen = set()
    for fn, args in [r[1:] for r in STRUCTURAL] + _elementwise_cases():
        seen |= {n.op for n in lumen.jit(fn).lower(*args).graph.nodes}
    assert set(DIFFERENTIABLE) - NOT_TRACED - seen == set()


def test_primitives_without_derivative_are_marked():
    """Comparisons, rounding, integer and creation primitives are not differentiable, and a
    function of them alone has a zero gradient."""
    for name in ("sign", "floor", "equal", "argmax", "any", "const", "iota", "stop_gradient"):
        assert not OPS[name].differentiable, name
    x = np.array([0.5, 1.5, -2.5])
    g = lumen.grad(lambda x: np.sum(np.floor(x) + np.sign(x) + np.argmax(x) + (x > 0)))(x)
    np.testing.assert_array_equal(g, np.zeros(3))


@pytest.mark.parametrize("name", sorted(set(DIFFERENTIABLE) - NOT_TRACED))
def test_differentiable_primitive_really_differentiates(name):
    """grad of a small function built on ``name`` runs and gives finite numbers."""
    cases = [c for c in _all_cases() if name in c[0]]
    assert cases, f"no record uses {name}"
    fn, args = cases[0][1], cases[0][2]
    floats = tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")
    g = lumen.grad(lambda *a: np.sum(fn(*a)), argnums=floats)(*args)
    assert all(np.isfinite(gi).all() for gi in g)


_OPS_OF = {}


def _ops_of(fn, args):
    key = id(fn)
    if key not in _OPS_OF:
        _OPS_OF[key] = {n.op for n in lumen.jit(fn).lower(*args).graph.nodes}
    return _OPS_OF[key]


def _all_cases():
    return [(_ops_of(fn, args), fn, args) for fn, args in _elementwise_cases() +
            [r[1:] for r in STRUCTURAL]]


# -- elementwise primitives -------------------------------------------------------------------

_UNARY_FNS = {name: (lambda x, uf=UFUNCS[name]: uf(x)) for name in UNARY}
_BINARY_FNS = {name: (lambda x, y, uf=UFUNCS[name]: uf(x, y)) for name in BINARY}
_DIRECT_FNS = {name: (lambda x, n=name: primitive(n, x)) for name in DIRECT_UNARY}


def _elementwise_cases():
    cases = [(_UNARY_FNS[n], sample_args([UNARY_DOMAINS.get(n, ANY)], [(2, 3)], 0)) for n in UNARY]
    cases += [(_BINARY_FNS[n], sample_args(BINARY_DOMAINS.get(n, (ANY, ANY)), [(2, 3), (3,)], 0))
              for n in BINARY]
    cases += [(_DIRECT_FNS[n], sample_args([d], [(2, 3)], 0)) for n, d in DIRECT_UNARY.items()]
    cases += [(lambda c, a, b: np.where(c > 0, a, b), sample_args([ANY] * 3, [(2, 3), (2, 3), (3,)], 0)),
              (lambda a: a.astype(np.float32), sample_args([ANY], [(3,)], 0)),
              (_gemm, sample_args([ANY] * 3, [(2, 3), (3, 2), (2,)], 0))]
    return cases


def _gemm(a, b, c):
    return primitive("gemm", a, b, c, alpha=2.0, beta=0.5)


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(2, 3), ()])
def test_unary(name, shape):
    lumen.check_grad(_UNARY_FNS[name], sample_args([UNARY_DOMAINS.get(name, ANY)], [shape], 1))


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
def test_binary_with_broadcasting(name, shapes):
    lumen.check_grad(_BINARY_FNS[name],
                     sample_args(BINARY_DOMAINS.get(name, (ANY, ANY)), shapes, 2))


@pytest.mark.parametrize("name", sorted(DIRECT_UNARY))
def test_primitives_made_by_rewrites(name):
    lumen.check_grad(_DIRECT_FNS[name], sample_args([DIRECT_UNARY[name]], [(2, 3)], 3))


def test_gemm_primitive():
    """gemm = alpha * a @ b + beta * c only exists after the specialize phase; its rules are
    checked on the primitive emitted directly."""
    args = sample_args([ANY] * 3, [(2, 3), (3, 2), (2,)], 4)
    lumen.check_grad(_gemm, args)
    lumen.check_grad(lambda a, b, c: primitive("gemm", a, b, c, alpha=-1.0, beta=0.0), args)


def test_digamma_derivative_is_trigamma_everywhere():
    """psi' (trigamma) is built from IR: recurrence, asymptotic series, reflection below 1/2."""
    x = np.array([-2.5, -0.3, 0.1, 0.5, 0.7, 1.0, 3.3, 9.9, 25.0, 1e3, 1e8])
    g = lumen.grad(lambda x: np.sum(sc.psi(x)))(x)
    np.testing.assert_allclose(g, sc.polygamma(1, x), rtol=1e-13)


def test_casts_between_float_dtypes():
    """The derivative passes through a float32 round trip (finite differences need a larger
    step there) and comes back in the argument's dtype."""
    f = lambda x: np.sin(x.astype(np.float32)).astype(np.float64) * 2  # noqa: E731
    lumen.check_grad(f, sample_args([ANY], [(4,)], 5), eps=1e-2, rtol=1e-3)
    x32 = np.linspace(-1, 1, 5, dtype=np.float32)
    g = lumen.grad(lambda x: np.sum(x.astype(np.float64) ** 2))(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * x32, rtol=1e-6)


# -- everything that is not elementwise -------------------------------------------------------

def _r(*shape, seed=0):
    return np.random.default_rng(seed + 10 * len(shape) + sum(shape)).standard_normal(shape)


def _p(*shape):
    return np.random.default_rng(sum(shape)).uniform(0.5, 1.5, shape)


def _set(x, v):
    y = x.copy()
    y[np.array([0, 2, 0])] = v          # repeated index: the last write stays
    return y


def _iadd(x, v):
    y = x.copy()
    y[np.array([0, 2, 0])] += v         # y[i] = y[i] + v: with repeats, one write stays too
    return y


def _set_dynamic(x, v, k):
    y = x.copy()
    y[k, 1] = v
    return y


def _iadd_columns(x, v):
    y = x.copy()
    y[:, np.array([2, 2, 0])] += v * 2
    return y


def _set_slice(x, v):
    y = x.copy()
    y[1:3] = v * 2
    return y


def _iadd_slice(x, v):
    y = x.copy()
    y[:, ::2] += v
    return y


def _set_element(x, v):
    y = x.copy()
    y[1, 2] = v[0]
    return y


def _sin_while(x, w, n):
    """x = sin(x) * w + x, n times, as a while loop (its gradient is a while_grad node)."""
    return lumen.while_loop(lambda s: s[1] < n, lambda s: (np.sin(s[0]) * w + s[0], s[1] + 1),
                            (x, np.int64(0)))[0]


#: (name, fn, args): smooth at args (no ties for max/min, nonzero entries for prod).
STRUCTURAL = [
    # control flow
    ("scan", lambda w, xs: lumen.scan(lambda c, x: (np.tanh(c * w + x), c * x),
                                      np.zeros(3), xs)[1], (_r(3), _r(4, 3))),
    ("scan_reverse_carry", lambda w, xs: lumen.scan(lambda c, x: (np.sin(c) + x * w, c),
                                                    w, xs, reverse=True)[0], (_r(3), _r(5, 3))),
    ("while", lambda x, w: _sin_while(x, w, 3), (_r(3), _r(3))),
    ("while_grad", lambda x, w: lumen.grad(lambda x: np.sum(_sin_while(x, w, 3) ** 2))(x),
     (_r(3), _r(3))),
    ("cond", lambda x, y: lumen.cond(np.sum(x) > 0, lambda a, b: np.exp(a) * b,
                                     lambda a, b: a - b, x, y), (_r(3), _r(3))),
    # reductions
    ("sum", lambda x: np.sum(x, axis=1), (_r(2, 3, 2),)),
    ("sum_keepdims", lambda x: np.sum(x, axis=(0, 2), keepdims=True), (_r(2, 3, 2),)),
    ("sum_all", lambda x: x.sum(), (_r(2, 3),)),
    ("prod", lambda x: np.prod(x, axis=0), (_p(3, 2),)),
    ("prod_signed_keepdims", lambda x: np.prod(x, axis=-1, keepdims=True), (_r(3, 4),)),
    ("prod_all", lambda x: np.prod(x), (_r(2, 3),)),
    ("max", lambda x: np.max(x, axis=1), (_r(3, 4),)),
    ("max_keepdims", lambda x: np.max(x, axis=0, keepdims=True), (_r(3, 4),)),
    ("min", lambda x: np.min(x, axis=(0, 1)), (_r(3, 4),)),
    ("mean", lambda x: np.mean(x, axis=0), (_r(3, 4),)),
    ("mean_keepdims", lambda x: x.mean(axis=-1, keepdims=True), (_r(3, 4),)),
    ("var", lambda x: np.var(x, axis=1, ddof=1), (_r(3, 4),)),
    ("var_all", lambda x: np.var(x), (_r(3, 4),)),
    ("std", lambda x: np.std(x, axis=1, keepdims=True), (_r(3, 4),)),
    ("std_all", lambda x: x.std(), (_r(3, 4),)),
    ("norm", lambda x: np.linalg.norm(x), (_r(2, 3),)),
    ("average_weighted", lambda a, w: np.average(a, weights=w), (_r(3), _p(3))),
    # shape and layout
    ("reshape", lambda x: x.reshape(4, 3) * np.arange(12.0).reshape(4, 3), (_r(3, 4),)),
    ("ravel", lambda x: np.ravel(x) ** 2, (_r(2, 3),)),
    ("transpose", lambda x: np.transpose(x, (2, 0, 1)), (_r(2, 3, 4),)),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 1) @ x, (_r(3, 2),)),
    ("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)), (_r(3, 1),)),
    ("expand_squeeze", lambda x: np.squeeze(np.expand_dims(x, 0), 0) * x, (_r(3),)),
    # slicing
    ("slice", lambda x: x[1:, ::-2], (_r(3, 5),)),
    ("slice_step_index", lambda x: x[::2, 1] * 3, (_r(5, 3),)),
    ("int_index", lambda x: x[1], (_r(3, 4),)),
    ("negative_index", lambda x: x[-1, ::-1], (_r(3, 4),)),
    ("newaxis_ellipsis", lambda x: x[None, ..., None], (_r(3),)),
    ("flip", lambda x: np.flip(x, 0), (_r(3, 2),)),
    ("roll", lambda x: np.roll(x, 1, axis=1), (_r(2, 3),)),
    ("diff", lambda x: np.diff(x), (_r(2, 4),)),
    ("diagonal", lambda x: np.diagonal(x), (_r(3, 3),)),
    ("trace", lambda x: np.trace(x), (_r(3, 3),)),
    # joining
    ("concatenate", lambda a, b: np.concatenate([a, b, a], axis=1), (_r(2, 3), _r(2, 2))),
    ("stack", lambda a, b: np.stack([a, b], axis=-1), (_r(2, 3), _r(2, 3, seed=1))),
    ("vstack", lambda a, b: np.vstack([a, b]), (_r(3), _r(3, seed=1))),
    ("hstack", lambda a, b: np.hstack([a, b]), (_r(3), _r(2))),
    ("tile", lambda x: np.tile(x, (2, 1)), (_r(2, 3),)),
    ("repeat", lambda x: np.repeat(x, 2, axis=0), (_r(2, 3),)),
    # integer-array indexing: gather, and its transpose scatter-add (repeated indices add up)
    ("gather_repeated", lambda x: x[np.array([0, 2, 0, 0])], (_r(3, 2),)),
    ("gather_two_arrays", lambda x: x[np.array([0, 2, 0]), np.array([1, 1, 1])], (_r(3, 2),)),
    ("gather_argument", lambda x, k: x[k] * 2, (_r(3, 2), np.array([2, 2, 0]))),
    ("gather_middle_axis", lambda x: x[:, np.array([[1, 1], [0, 2]])], (_r(2, 3),)),
    ("take", lambda x: np.take(x, np.array([1, 1, 0]), axis=1), (_r(2, 3),)),
    ("take_along_axis", lambda x: np.take_along_axis(x, np.array([[0], [2]]), axis=1), (_r(2, 3),)),
    # assignment on a local copy: scatter (set / add) and update_slice
    ("set_repeated", _set, (_r(4, 3), _r(3, 3))),
    ("iadd_repeated", _iadd, (_r(4, 3), _r(3))),
    ("set_dynamic_index", _set_dynamic, (_r(4, 3), _r(3), np.array([1, 3, 1]))),
    ("iadd_columns_repeated", _iadd_columns, (_r(2, 3), _r(2, 3))),
    ("set_slice", _set_slice, (_r(4, 3), _r(2, 3))),
    ("iadd_strided_slice", _iadd_slice, (_r(2, 5), _r(3))),
    ("set_element", _set_element, (_r(4, 3), _r(1))),
    # matrix products
    ("matmul_2d", lambda a, b: a @ b, (_r(2, 3), _r(3, 4))),
    ("matmul_1d_1d", lambda a, b: a @ b, (_r(3), _r(3, seed=1))),
    ("matmul_1d_2d", lambda a, b: a @ b, (_r(3), _r(3, 2))),
    ("matmul_2d_1d", lambda a, b: a @ b, (_r(2, 3), _r(3))),
    ("matmul_batched", lambda a, b: a @ b, (_r(2, 2, 3), _r(2, 3, 2))),
    ("matmul_broadcast_batch", lambda a, b: a @ b, (_r(2, 1, 2, 3), _r(3, 3, 2))),
    ("matmul_batched_1d", lambda a, b: np.matmul(a, b), (_r(2, 2, 3), _r(3))),
    ("matmul_1d_batched", lambda a, b: np.matmul(a, b), (_r(3), _r(2, 3, 2))),
    ("matmul_self", lambda a: a.T @ a, (_r(3, 2),)),
    ("dot_2d", lambda a, b: np.dot(a, b), (_r(2, 3), _r(3, 2))),
    ("dot_1d", lambda a, b: a.dot(b), (_r(3), _r(3, seed=1))),
    ("outer", lambda a, b: np.outer(a, b), (_r(3), _r(2))),
    ("inner", lambda a, b: np.inner(a, b), (_r(2, 3), _r(4, 3))),
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=([1], [0])), (_r(2, 3), _r(3, 2))),
    ("affine", lambda a, b, c: 2.0 * (a @ b) + c, (_r(2, 3), _r(3, 2), _r(2))),
    # running sums and products
    ("cumsum", lambda x: np.cumsum(x, axis=1), (_r(2, 4),)),
    ("cumsum_flat", lambda x: np.cumsum(x), (_r(2, 3),)),
    ("cumprod", lambda x: np.cumprod(x, axis=0), (_p(3, 2),)),
    ("cumprod_signed", lambda x: np.cumprod(x, axis=-1), (_r(2, 4),)),
    # selection
    ("where", lambda c, a, b: np.where(c > 0, a, b), (_r(2, 3), _r(2, 3, seed=1), _r(3))),
    ("where_scalar_branch", lambda a: np.where(a > 0, a, 0.5), (_r(2, 3),)),
    ("clip", lambda a: np.clip(a, -0.5, 0.5), (np.array([[-1, -0.2, 0.3], [0.9, 0.1, -0.7]]),)),
    ("maximum_relu", lambda a: np.maximum(a, 0), (_r(2, 3),)),
]


@pytest.mark.parametrize("name, fn, args", STRUCTURAL, ids=[r[0] for r in STRUCTURAL])
def test_structural(name, fn, args):
    lumen.check_grad(fn, args)


# -- the transpose identity, directly ---------------------------------------------------------

#: Records whose functions are linear in their float inputs: there rop and lop are exactly
#: J·v and uᵀ·J of the same matrix, and the identity holds to rounding.
LINEAR = ["sum_keepdims", "mean", "reshape", "transpose", "broadcast_to", "slice", "flip",
          "diff", "trace", "concatenate", "stack", "tile", "gather_repeated", "take_along_axis",
          "set_repeated", "iadd_repeated", "iadd_columns_repeated", "set_slice", "cumsum"]


@pytest.mark.parametrize("name", [r[0] for r in STRUCTURAL] + ["tanh", "arctan2", "logaddexp"])
def test_transpose_identity(name):
    """<u, rop(f, x, v)> == <lop(f, x, u), v> for random u and v (nonlinear ops at a point)."""
    record = {r[0]: r[1:] for r in STRUCTURAL}
    fn, args = record[name] if name in record else (
        _UNARY_FNS.get(name) or _BINARY_FNS[name],
        sample_args([ANY, ANY], [(2, 3), (3,)], 6)[:UFUNCS[name].nin])
    floats = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]

    def of_floats(*xs):
        full = list(args)
        for i, x in zip(floats, xs):
            full[i] = x
        return fn(*full)

    xs = tuple(args[i] for i in floats)
    rng = np.random.default_rng(7)
    v = tuple(rng.standard_normal(np.shape(x)) for x in xs)
    out = lumen.jit(of_floats)(*xs)
    u = rng.standard_normal(np.shape(out))
    jv = lumen.rop(of_floats, xs, v)
    uj = lumen.lop(of_floats, xs, u)
    lhs = float(np.sum(u * jv))
    rhs = sum(float(np.sum(g * vi)) for g, vi in zip(uj, v))
    rtol = 1e-12 if name in LINEAR else 1e-10
    assert abs(lhs - rhs) <= rtol * (abs(lhs) + 1), (lhs, rhs)


def test_linear_records_are_exactly_their_own_derivative():
    """For a linear f, rop(f, x, v) = f(v) and the Jacobian is the same at every point."""
    record = {r[0]: r[1:] for r in STRUCTURAL}
    for name in ("transpose", "gather_repeated", "cumsum", "diff"):
        fn, (x,) = record[name]
        v = np.random.default_rng(8).standard_normal(x.shape)
        np.testing.assert_allclose(lumen.rop(fn, (x,), (v,)), fn(v), rtol=1e-13, atol=1e-15)


# -- hypothesis-drawn shapes ------------------------------------------------------------------

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _fd_jvp(fn, xs, vs, eps=1e-6):
    plus = fn(*[x + eps * v for x, v in zip(xs, vs)])
    minus = fn(*[x - eps * v for x, v in zip(xs, vs)])
    return (plus - minus) / (2 * eps)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: each axis of one is the other's or 1, ranks differ."""
    ndim = draw(st.integers(0, 3))
    full = draw(st.lists(st.integers(2, 4), min_size=ndim, max_size=ndim))
    a = [n if draw(st.booleans()) else 1 for n in full]
    b = [n if draw(st.booleans()) else 1 for n in full]
    return tuple(a[draw(st.integers(0, ndim)):]), tuple(b)


def _broadcast_loss(x, y):
    return np.sum((np.tanh(x) * y + x / (1 + y * y)) * np.cos(x + y))


@SETTINGS
@given(shapes=broadcast_pair(), seed=st.integers(0, 2**16))
def test_broadcast_gradients_summed_back(shapes, seed):
    """The gradient of each operand has that operand's shape: summed over the axes NumPy
    broadcast it along (numbers compared with finite differences of the NumPy function)."""
    x, y = sample_args([ANY, ANY], shapes, seed)
    gx, gy = lumen.grad(_broadcast_loss, argnums=(0, 1))(x, y)
    assert gx.shape == np.shape(x) and gy.shape == np.shape(y)
    rng = np.random.default_rng(seed)
    vx, vy = rng.standard_normal(np.shape(x)), rng.standard_normal(np.shape(y))
    fd = _fd_jvp(_broadcast_loss, (x, y), (vx, vy))
    np.testing.assert_allclose(np.sum(gx * vx) + np.sum(gy * vy), fd, rtol=1e-6, atol=1e-8)


def _reduce_mix(x, axis, keepdims):
    m = np.mean(x, axis=axis, keepdims=True)
    return np.sum(np.var(x, axis=axis, keepdims=keepdims) + np.max(x * x, axis=axis, keepdims=keepdims)) \
        + np.sum(np.prod(1 + 0.1 * (x - m), axis=axis, keepdims=keepdims))


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_reductions_over_drawn_axes(shape, data):
    axis = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    keepdims = data.draw(st.booleans())
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    g = lumen.grad(lambda x: _reduce_mix(x, axis, keepdims))(x)
    v = np.random.default_rng(1).standard_normal(shape)
    fd = _fd_jvp(lambda x: _reduce_mix(x, axis, keepdims), (x,), (v,))
    np.testing.assert_allclose(np.sum(g * v), fd, rtol=1e-6, atol=1e-8)


def _batched_matmul_loss(a, b):
    return np.sum(np.tanh(a @ b))


@st.composite
def matmul_shapes(draw):
    """Operands of np.matmul: 1-D or matrices with batch axes that broadcast together."""
    m, k, n = (draw(st.integers(1, 3)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    a_batch = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    b_batch = [d if draw(st.booleans()) else 1 for d in batch]
    a = (k,) if draw(st.booleans()) else tuple(a_batch) + (m, k)
    b = (k,) if draw(st.booleans()) else tuple(b_batch) + (k, n)
    return a, b


@SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**16))
def test_matmul_over_drawn_shapes(shapes, seed):
    a, b = sample_args([ANY, ANY], shapes, seed)
    ga, gb = lumen.grad(_batched_matmul_loss, argnums=(0, 1))(a, b)
    assert ga.shape == a.shape and gb.shape == b.shape
    rng = np.random.default_rng(seed)
    va, vb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    fd = _fd_jvp(_batched_matmul_loss, (a, b), (va, vb))
    np.testing.assert_allclose(np.sum(ga * va) + np.sum(gb * vb), fd, rtol=1e-6, atol=1e-8)


def _scatter_gather(x, v, idx):
    y = x.copy()
    y[idx] += v * y[idx[::-1]]
    return np.sum(np.sin(y) * y[idx].sum())


@SETTINGS
@given(n=st.integers(1, 5), data=st.data())
def test_indexing_with_drawn_repeated_indices(n, data):
    """Gather, and assignment with repeated indices (the last write stays), with indices drawn
    at random: many repeats, none, negative ones."""
    idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    x, v = sample_args([ANY, ANY], [(n, 2), (len(idx), 2)], len(idx))
    gx, gv = lumen.grad(_scatter_gather, argnums=(0, 1))(x, v, idx)
    rng = np.random.default_rng(n)
    vx, vv = rng.standard_normal(x.shape), rng.standard_normal(v.shape)
    fd = _fd_jvp(lambda x, v: _scatter_gather(x, v, idx), (x, v), (vx, vv))
    np.testing.assert_allclose(np.sum(gx * vx) + np.sum(gv * vv), fd, rtol=1e-6, atol=1e-8)


# -- check_grad itself -------------------------------------------------------------------------

def test_check_grad_names_the_worst_element_of_a_wrong_rule(monkeypatch):
    from lumen.autodiff.rules import elementwise
    monkeypatch.setitem(elementwise.PARTIALS, "sin",
                        lambda e, xs, out: [e.scale(e.op("cos", xs[0]), 1.01)])
    with pytest.raises(AssertionError, match=r"rop \(J·v\).*finite differences give"):
        lumen.check_grad(lambda x: np.sin(x) * 2, (np.linspace(-1, 1, 4),))


def test_check_grad_holds_integer_arguments_fixed():
    lumen.check_grad(lambda x, k, n: x[k] * n, (np.linspace(0, 1, 3), np.array([2, 0, 2]), 3))
