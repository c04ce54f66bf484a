"""The function transforms of SPEC §2 and the conventions of their derivatives: grad,
value_and_grad, rop, lop, jacobian, stop_gradient; has_aux, argnums, pytrees, broadcasting,
keepdims, integer arguments; composition with jit in any order; subgradients at kinks and ties
(JAX's conventions, checked with values); gradients through ``np.where`` that never take NaN or
inf from the branch not selected; stabilised gradients of the formulas the stabilize phase
rewrites."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc

import lumen
from lumen.ir.ops import OPS

X = np.array([0.5, -1.5, 2.0])


# -- grad and value_and_grad -----------------------------------------------------------------

def test_grad_of_scalar_function():
    np.testing.assert_allclose(lumen.grad(lambda x: np.sum(x ** 3))(X), 3 * X ** 2, rtol=1e-14)


def test_value_and_grad():
    value, g = lumen.value_and_grad(lambda x: np.sum(np.sin(x)))(X)
    np.testing.assert_allclose(value, np.sum(np.sin(X)), rtol=1e-14)
    np.testing.assert_allclose(g, np.cos(X), rtol=1e-14)


def test_has_aux_returns_aux_untouched():
    g, aux = lumen.grad(lambda x: (np.sum(x ** 2), {"double": x * 2}), has_aux=True)(X)
    np.testing.assert_allclose(g, 2 * X)
    np.testing.assert_allclose(aux["double"], 2 * X)
    (value, aux), g = lumen.value_and_grad(lambda x: (np.sum(x), x.shape[0]), has_aux=True)(X)
    assert float(value) == pytest.approx(np.sum(X)) and int(aux) == 3
    np.testing.assert_array_equal(g, np.ones(3))


def test_argnums_int_and_tuple():
    f = lambda a, b, c: np.sum(a * b ** 2 * c)  # noqa: E731
    a, b, c = X, X + 3, X - 1
    np.testing.assert_allclose(lumen.grad(f, argnums=1)(a, b, c), 2 * a * b * c)
    ga, gc = lumen.grad(f, argnums=(0, 2))(a, b, c)
    np.testing.assert_allclose(ga, b ** 2 * c)
    np.testing.assert_allclose(gc, a * b ** 2)
    (g1,) = lumen.grad(f, argnums=(1,))(a, b, c)        # a 1-tuple, not the array
    np.testing.assert_allclose(g1, 2 * a * b * c)
    ga, gb = lumen.grad(f, argnums=[0, 1])(a, b, c)
    np.testing.assert_allclose(gb, 2 * a * b * c)


def test_pytree_arguments():
    """A dict of parameters (with a nested list) gets a gradient of the same structure."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 2)), "b": np.zeros(2), "layers": [np.ones(2)]}

    def loss(p, x):
        return np.sum(np.tanh(x @ p["w"] + p["b"]) * p["layers"][0])

    g = lumen.grad(loss)(params, X)
    assert set(g) == {"w", "b", "layers"} and len(g["layers"]) == 1
    h = 1 - np.tanh(X @ params["w"]) ** 2
    np.testing.assert_allclose(g["b"], h, rtol=1e-13)
    np.testing.assert_allclose(g["w"], np.outer(X, h), rtol=1e-13)
    np.testing.assert_allclose(g["layers"][0], np.tanh(X @ params["w"]), rtol=1e-13)
    lumen.check_grad(loss, (params, X))


def test_keyword_arguments_pass_through():
    g = lumen.grad(lambda x, scale=1.0: np.sum(x * scale))(X, scale=3.0)
    np.testing.assert_allclose(g, np.full(3, 3.0))


def test_integer_arguments_raise_type_error():
    with pytest.raises(TypeError, match="integer"):
        lumen.grad(lambda x: np.sum(x * 1.0))(np.array([1, 2]))
    with pytest.raises(TypeError, match="integer"):
        lumen.grad(lambda x: x * 2.0)(3)
    with pytest.raises(TypeError, match="integer"):
        lumen.grad(lambda x, k: np.sum(x[k]), argnums=(0, 1))(X, np.array([0, 1]))
    with pytest.raises(TypeError):
        lumen.rop(lambda x: x * 1.0, (np.arange(3),), (np.ones(3),))
    with pytest.raises(TypeError):
        lumen.jacobian(lambda x: x * 1.0)(np.arange(3))


def test_integer_arguments_not_differentiated_are_fine():
    g = lumen.grad(lambda x, k: np.sum(x[k] ** 2))(X, np.array([0, 0, 2]))
    np.testing.assert_allclose(g, [4 * X[0], 0, 2 * X[2]])


def test_grad_of_non_scalar_raises():
    with pytest.raises(TypeError, match="scalar"):
        lumen.grad(lambda x: x * 2)(X)
    with pytest.raises(TypeError, match="scalar"):
        lumen.grad(lambda x: np.argmax(x))(X)


def test_dtypes_follow_the_arguments():
    x32 = X.astype(np.float32)
    g = lumen.grad(lambda x: np.sum(x ** 2))(x32)
    assert g.dtype == np.float32
    gx, gy = lumen.grad(lambda x, y: np.sum(x * y), argnums=(0, 1))(x32, X)
    assert gx.dtype == np.float32 and gy.dtype == np.float64


def test_python_scalar_argument_stays_weak():
    """A Python float argument keeps NumPy's weak-scalar promotion under grad (NEP 50):
    ``b * x32`` stays float32."""
    x32 = X.astype(np.float32)
    value, gb = lumen.value_and_grad(lambda b, x: np.sum(b * x))(1.5, x32)
    assert value.dtype == np.float32
    assert float(gb) == pytest.approx(float(np.sum(x32)))


def test_unused_argument_has_zero_gradient():
    ga, gb = lumen.grad(lambda a, b: np.sum(a ** 2), argnums=(0, 1))(X, np.ones((2, 2)))
    np.testing.assert_array_equal(gb, np.zeros((2, 2)))


# -- rop, lop, jacobian ----------------------------------------------------------------------

def test_rop_and_lop_with_several_outputs():
    f = lambda x, y: (x * y, np.sum(x))  # noqa: E731
    jv = lumen.rop(f, (X, X + 1), (np.ones(3), np.zeros(3)))
    np.testing.assert_allclose(jv[0], X + 1)
    assert float(jv[1]) == pytest.approx(3.0)
    gx, gy = lumen.lop(f, (X, X + 1), (np.ones(3), 1.0))
    np.testing.assert_allclose(gx, X + 2)
    np.testing.assert_allclose(gy, X)


def test_lop_cotangent_structure_must_match():
    with pytest.raises(ValueError, match="structure"):
        lumen.lop(lambda x: (x, x), (X,), np.ones(3))


def test_jacobian():
    j = lumen.jacobian(lambda x: np.sin(x) * x[0])(X)
    expected = np.diag(np.cos(X) * X[0])
    expected[:, 0] += np.sin(X)
    np.testing.assert_allclose(j, expected, rtol=1e-14)
    ja, jb = lumen.jacobian(lambda a, b: a * b, argnums=(0, 1))(X, 2 * X)
    np.testing.assert_allclose(ja, np.diag(2 * X))
    np.testing.assert_allclose(jb, np.diag(X))


# -- stop_gradient ---------------------------------------------------------------------------

def test_stop_gradient_blocks():
    np.testing.assert_allclose(lumen.grad(lambda x: np.sum(lumen.stop_gradient(x) * x))(X), X)
    g = lumen.grad(lambda x: np.sum(lumen.stop_gradient(x ** 2)))(X)
    np.testing.assert_array_equal(g, np.zeros(3))
    jv = lumen.rop(lambda x: lumen.stop_gradient(x) * x, (X,), (np.ones(3),))
    np.testing.assert_allclose(jv, X)


def test_stop_gradient_on_pytrees_and_plain_arrays():
    g = lumen.grad(lambda p: np.sum(lumen.stop_gradient(p)["a"] * p["a"]))({"a": X})
    np.testing.assert_allclose(g["a"], X)
    assert lumen.stop_gradient(X) is X


# -- composition ------------------------------------------------------------------------------

def test_jit_of_grad_compiles_one_graph():
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    jitted = lumen.jit(lumen.grad(f))
    np.testing.assert_allclose(jitted(X), np.cos(X) * X + np.sin(X), rtol=1e-14)
    graph = jitted.lower(X).optimized_graph()
    assert all(n.op in OPS for n in graph.nodes)
    assert [n.op for n in graph.nodes] == ["kernel"]     # one fused loop, nothing else
    assert jitted.cache_info()["compiles"] == 1


def test_grad_of_jit_and_jit_inside_grad():
    f = lumen.jit(lambda x: np.sum(np.sin(x)))
    np.testing.assert_allclose(lumen.grad(f)(X), np.cos(X), rtol=1e-14)
    np.testing.assert_allclose(lumen.jit(lumen.grad(f))(X), np.cos(X), rtol=1e-14)
    g = lumen.grad(lambda x: f(x * 2))(X)
    np.testing.assert_allclose(g, 2 * np.cos(2 * X), rtol=1e-14)
    assert f.cache_info()["compiles"] == 0           # only ever inlined into other traces


def test_grad_inside_jit_with_other_arguments():
    @lumen.jit
    def step(w, x, lr):
        loss, g = lumen.value_and_grad(lambda w: np.sum((x @ w) ** 2))(w)
        return w - lr * g, loss

    w = np.ones(3)
    x = np.eye(3)[:2]
    w2, loss = step(w, x, 0.1)
    np.testing.assert_allclose(w2, w - 0.1 * 2 * x.T @ (x @ w))
    assert float(loss) == pytest.approx(2.0)


def test_nested_grad_does_not_confuse_perturbations():
    """d/dy (y * x) at y = x is x, not 2x: the inner transform differentiates its own
    argument, not the outer value the function also reads (perturbation confusion)."""
    inner = lambda x: lumen.grad(lambda y: y * x)(x)  # noqa: E731
    assert float(lumen.jit(inner)(3.0)) == 3.0
    assert float(lumen.grad(inner)(3.0)) == 1.0
    h = lumen.grad(lambda x: lumen.grad(lambda y: np.sum(y * x ** 2))(x)[0])(X)
    np.testing.assert_allclose(h, [2 * X[0], 0, 0])


def test_grad_of_grad_and_jit_in_between():
    f = lambda x: np.sin(x) * x  # noqa: E731
    d2 = -np.sin(1.0) * 1.0 + 2 * np.cos(1.0)
    assert float(lumen.grad(lumen.grad(f))(1.0)) == pytest.approx(d2, rel=1e-14)
    assert float(lumen.jit(lumen.grad(lumen.jit(lumen.grad(f))))(1.0)) == pytest.approx(d2, rel=1e-14)


# -- broadcasting and keepdims ---------------------------------------------------------------

def test_gradients_sum_back_to_bias_and_scalars():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    b, s = rng.standard_normal(2), np.float64(0.7)

    def loss(w, b, s, t):
        return np.sum(np.tanh(s * (x @ w) + b + t) ** 2)

    gw, gb, gs, gt = lumen.grad(loss, argnums=(0, 1, 2, 3))(w, b, s, 0.25)
    assert gw.shape == (3, 2) and gb.shape == (2,) and np.shape(gs) == () and np.shape(gt) == ()
    z = np.tanh(s * (x @ w) + b + 0.25)
    dz = 2 * z * (1 - z ** 2)
    np.testing.assert_allclose(gb, dz.sum(0), rtol=1e-13)
    np.testing.assert_allclose(gs, np.sum(dz * (x @ w)), rtol=1e-13)
    np.testing.assert_allclose(gt, dz.sum(), rtol=1e-13)
    lumen.check_grad(loss, (w, b, s, np.float64(0.25)))


def test_gradient_of_length_one_axes():
    lumen.check_grad(lambda a, b: np.sum(np.sin(a * b), axis=0), (np.ones((1, 3)) * 0.3, np.arange(6.0).reshape(2, 3)))
    lumen.check_grad(lambda a, b: a - b, (np.linspace(0, 1, 4).reshape(4, 1), np.ones((1, 1, 5))))


@pytest.mark.parametrize("lengths, compiles", [((4, 2), 2), ((2, 4), 1)])
def test_broadcast_axis_whose_length_is_known_only_at_run_time(lengths, compiles):
    """``x[1:]`` has length n - 1, which is 1 when n = 2: the gradient sums over the
    broadcast axis then, and not for other n. Traced with n = 4, the lengths were equal and
    the code assumes so (`lumen.ir.equal_sizes`): n = 2 is compiled again; traced with n = 2,
    one compiled gradient serves both."""
    g = lumen.jit(lumen.grad(lambda x, y: np.sum(np.sin(x[1:] + y)), argnums=(0, 1)))
    for n in lengths:
        x, y = np.linspace(0, 1, n), np.linspace(-1, 0, 3)
        c = np.cos(x[1:] + y)
        gx, gy = g(x, y)
        np.testing.assert_allclose(gx[1:], c if n == 4 else [c.sum()], rtol=1e-14)
        np.testing.assert_allclose(gy, c, rtol=1e-14)
    assert g.cache_info()["compiles"] == compiles


@pytest.mark.parametrize("axis", [0, 1, (0, 1), -1])
def test_reductions_with_keepdims(axis):
    x = np.random.default_rng(2).uniform(0.5, 1.5, (3, 4))
    lumen.check_grad(lambda x: x / np.sum(x, axis=axis, keepdims=True), (x,))
    lumen.check_grad(lambda x: (x - x.mean(axis=axis, keepdims=True)) / x.std(axis=axis, keepdims=True), (x,))
    lumen.check_grad(lambda x: np.exp(x - x.max(axis=axis, keepdims=True)), (x,))


# -- conventions at kinks and ties (JAX's) -------------------------------------------------------

def test_maximum_and_minimum_split_gradient_half_half_at_ties():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    gx, gy = lumen.grad(lambda x, y: np.sum(np.maximum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(gy, [1.0, 0.5, 0.0])
    gx, gy = lumen.grad(lambda x, y: np.sum(np.minimum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 0.5, 1.0])


def test_abs_gradient_at_zero_is_zero():
    g = lumen.grad(lambda x: np.sum(np.abs(x)))(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_relu_as_maximum_gradient_at_zero_is_half_like_jnp_maximum():
    x = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(lumen.grad(lambda x: np.sum(np.maximum(x, 0)))(x), [0, 0.5, 1])
    np.testing.assert_array_equal(lumen.grad(lambda x: np.sum(lumen.nn.relu(x)))(x), [0, 0.5, 1])


def test_max_and_min_reductions_share_gradient_evenly_among_ties():
    g = lumen.grad(lambda x: np.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    g = lumen.grad(lambda x: np.sum(np.min(x, axis=1)))(np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 5.0]]))
    np.testing.assert_allclose(g, [[1 / 3, 1 / 3, 1 / 3], [1, 0, 0]])


def test_clip_at_its_bounds_is_half_like_jax():
    g = lumen.grad(lambda x: np.sum(np.clip(x, -1.0, 1.0)))(np.array([-1.0, 0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.5, 1.0, 0.5, 0.0])


def test_fmax_and_fmin_follow_the_number_past_nan():
    x, y = np.array([1.0, np.nan, 3.0]), np.array([np.nan, 2.0, 2.0])
    gx, gy = lumen.grad(lambda x, y: np.sum(np.fmax(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.0])
    gx, gy = lumen.grad(lambda x, y: np.sum(np.fmin(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 1.0])


def test_prod_and_cumprod_with_zeros_do_not_divide_by_them():
    g = lumen.grad(lambda x: np.prod(x))(np.array([0.0, 2.0, 3.0]))
    np.testing.assert_array_equal(g, [6.0, 0.0, 0.0])
    g = lumen.grad(lambda x: np.sum(np.prod(x, axis=1)))(np.array([[0.0, 0.0, 3.0], [1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0], [6.0, 3.0, 2.0]])
    x = np.array([2.0, 0.0, 3.0, 0.0])
    g = lumen.grad(lambda x: np.sum(np.cumprod(x) * np.arange(1.0, 5.0)))(x)
    np.testing.assert_array_equal(g, [1.0, 22.0, 0.0, 0.0])          # as jax.grad gives
    jv = lumen.rop(np.cumprod, (x,), (np.array([1.0, 2.0, 3.0, 4.0]),))
    np.testing.assert_array_equal(jv, [1.0, 4.0, 12.0, 0.0])


def test_power_with_zero_exponent_at_zero():
    """x ** 0 is 1 everywhere: its derivative at 0 is 0 (not 0 * 0 ** -1 = NaN)."""
    g = lumen.grad(lambda x: np.sum(x ** 0.0 + x ** 2.0))(np.array([0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 4.0])


# -- np.where never takes NaN or inf from the branch it did not select ------------------------------

WHERE_CASES = {
    "sqrt_at_zero": (lambda x: np.where(x > 0, np.sqrt(x), 0), [0.0, 1.0, 4.0], [0, 0.5, 0.25]),
    "log_below_zero": (lambda x: np.where(x > 0, np.log(x), 0), [-1.0, 0.0, 2.0], [0, 0, 0.5]),
    "false_branch": (lambda x: np.where(x <= 0, 0.0, 1 / x), [0.0, -2.0, 2.0], [0, 0, -0.25]),
    "nested_in_ops": (lambda x: np.exp(np.where(x > 0, np.log(x) * 2, 0.5)) * 3,
                      [-1.0, 0.0, 1.0], [0, 0, 6.0]),
    "inside_log": (lambda x: np.log(np.where(x > 0, x, 1.0)), [-1.0, 0.0, 4.0], [0, 0, 0.25]),
    "nested_where": (lambda x: np.where(x > 0.5, np.where(x < 3, np.sqrt(x - 1), 1.0), 0.0),
                     [0.0, 4.0, 2.0], [0, 0, 0.5]),
    "shared_branch": (lambda x: _shared_sqrt(x), [0.0, 1.0, 4.0], [0, 0.5, 0.75]),
    "broadcast_condition": (lambda x: np.where(x[None, :] > 0, np.sqrt(x), np.zeros((2, 3))),
                            [-1.0, 0.0, 1.0], [0, 0, 1.0]),
    "broadcast_branch_product": (lambda x: np.where(x[:, None] > 0, np.sqrt(x)[:, None] * np.ones(2), 0),
                                 [-1.0, 0.0, 4.0], [0, 0, 0.5]),
    "reshaped_branch": (lambda x: np.where(x.reshape(3, 1) > 0, np.sqrt(x).reshape(3, 1), 0),
                        [-1.0, 0.0, 4.0], [0, 0, 0.25]),
    "sliced_branch": (lambda x: np.where(x[1:] > 0, np.sqrt(x)[1:], 0), [-1.0, 0.0, 4.0], [0, 0, 0.25]),
    "transposed_branch": (lambda x: np.where(x.T > 0, np.sqrt(x).T, 0), [[0.0, 1.0], [4.0, -1.0]],
                          [[0, 0.5], [0.25, 0]]),
    "broadcast_branch": (lambda x: np.where(x > 0, np.broadcast_to(np.sqrt(x), (2, 3)), 0),
                         [-1.0, 0.0, 4.0], [0, 0, 0.5]),
}


def _shared_sqrt(x):
    s = np.sqrt(x)
    return np.where(x > 0, s, 0) + np.where(x > 1, 2 * s, 0)


@pytest.mark.parametrize("name", sorted(WHERE_CASES))
def test_where_gradient_ignores_the_unselected_branch(name):
    fn, x, expected = WHERE_CASES[name]
    x = np.array(x)
    g = lumen.grad(lambda x: np.sum(fn(x)))(x)
    np.testing.assert_allclose(g, expected, rtol=1e-14, atol=0)
    jv = lumen.rop(fn, (x,), (np.ones_like(x),))
    assert np.isfinite(jv).all()
    assert np.isfinite(lumen.lop(fn, (x,), np.ones(np.shape(jv)))).all()


def test_where_in_second_derivatives():
    f = lambda x: np.sum(np.where(x > 0, x * np.sqrt(x), 0))  # noqa: E731
    x = np.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(lumen.hessian(f)(x), np.diag([0, 0.75, 0.375]))
    np.testing.assert_allclose(lumen.hvp(f, (x,), (np.ones(3),))[0], [0, 0.75, 0.375])
    np.testing.assert_allclose(lumen.jacobian(lambda x: np.where(x > 0, np.sqrt(x), 0))(x),
                               np.diag([0, 0.5, 0.25]))


# -- stabilised gradients -------------------------------------------------------------------------

Z = np.array([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0])

STABILISED = {
    "log_sigmoid": (lambda x: np.log(sc.expit(x)), lambda x: sc.expit(-x)),
    "log1p_minus_sigmoid": (lambda x: np.log1p(-sc.expit(x)), lambda x: -sc.expit(x)),
    "log_one_minus_sigmoid": (lambda x: np.log(1 - sc.expit(x)), lambda x: -sc.expit(x)),
    "log1p_exp": (lambda x: np.log1p(np.exp(x)), sc.expit),
    "log_one_plus_exp": (lambda x: np.log(1 + np.exp(x)), sc.expit),
    "nn_softplus": (lambda x: lumen.nn.softplus(x), sc.expit),
    "sigmoid_reciprocal": (lambda x: 1 / (1 + np.exp(-x)), lambda x: sc.expit(x) * sc.expit(-x)),
    "sigmoid_ratio": (lambda x: np.exp(x) / (1 + np.exp(x)), lambda x: sc.expit(x) * sc.expit(-x)),
    "log_exp": (lambda x: np.log(np.exp(x)), np.ones_like),
    "sqrt_square": (lambda x: np.sqrt(x * x), np.sign),
    "sqrt_power": (lambda x: np.sqrt(x ** 2), np.sign),
}


def test_log_sigmoid_gradient_at_minus_1000_is_one():
    g = lumen.grad(lambda x: np.log(sc.expit(x)))(-1000.0)
    assert np.isfinite(g) and float(g) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(STABILISED))
def test_stabilised_gradients(name):
    """The naive formulas the stabilize phase rewrites have derivatives that stay finite and
    accurate where the chain rule would multiply inf by 0, in both modes."""
    fn, derivative = STABILISED[name]
    expected = derivative(Z)
    np.testing.assert_allclose(lumen.grad(lambda x: np.sum(fn(x)))(Z), expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(lumen.rop(fn, (Z,), (np.ones_like(Z),)), expected, rtol=1e-13, atol=0)


def test_log1mexp_gradient():
    x = np.array([1e-8, 0.5, 2.0, 40.0])
    g = lumen.grad(lambda x: np.sum(np.log1p(-np.exp(-x))))(x)
    np.testing.assert_allclose(g, 1 / np.expm1(x), rtol=1e-13)


def test_naive_logsumexp_gradient_is_softmax():
    x = np.array([[1000.0, 999.0, -5.0], [0.0, 1.0, 2.0]])
    g = lumen.grad(lambda x: np.sum(np.log(np.sum(np.exp(x), axis=1))))(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(g, e / e.sum(axis=1, keepdims=True), rtol=1e-13)
    jv = lumen.rop(lambda x: np.log(np.sum(np.exp(x), axis=1, keepdims=True)), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(jv, np.ones((2, 1)), rtol=1e-13)


def test_stabilised_composition_read_from_outside_is_a_constant():
    """An inner value computed outside the differentiated function is a constant there: the
    whole-formula rule must not reach through it to the argument."""
    def f(x):
        s = sc.expit(x)
        return lumen.grad(lambda y: np.sum(np.log(s) * y))(x)
    x = np.array([-1.0, 0.5])
    np.testing.assert_allclose(lumen.jit(f)(x), np.log(sc.expit(x)), rtol=1e-14)


def test_stabilised_inner_value_used_twice():
    f = lambda x: np.sum(np.log(sc.expit(x)) + 2 * sc.expit(x))  # noqa: E731
    g = lumen.grad(f)(Z)
    np.testing.assert_allclose(g, sc.expit(-Z) + 2 * sc.expit(Z) * sc.expit(-Z), rtol=1e-13, atol=0)


def test_lop_of_an_output_returned_twice_sums_the_cotangents():
    def f(x):
        s = np.sin(x)
        return s, s
    x, u, v = np.array([0.5, 1.0]), np.array([1.0, 2.0]), np.array([3.0, -1.0])
    want = (u + v) * np.cos(x)
    np.testing.assert_allclose(lumen.lop(f, (x,), (u, v))[0], want, rtol=1e-12)
    np.testing.assert_allclose(lumen.jit(lambda x, u, v: lumen.lop(f, (x,), (u, v)))(x, u, v)[0], want,
                rtol=1e-12)
