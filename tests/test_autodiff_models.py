"""Gradients of whole models and second derivatives (SPEC §2): an MLP's cross-entropy loss
(784 -> 32 tanh -> 10, float64) against finite differences and hand-written backpropagation,
`lumen.nn.crossentropy`, Hessians against finite differences of the gradient, Hessian-vector
products, ``grad(grad(f))``, ``rop`` of ``grad`` and the Gauss-Newton product."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc

import lumen

RNG = np.random.default_rng(0)


# -- an MLP -------------------------------------------------------------------------------------

def init_mlp(rng, sizes=(784, 32, 10)):
    return {"w1": rng.standard_normal(sizes[:2]) / np.sqrt(sizes[0]), "b1": rng.standard_normal(sizes[1]) * 0.1,
            "w2": rng.standard_normal(sizes[1:]) / np.sqrt(sizes[1]), "b2": rng.standard_normal(sizes[2]) * 0.1}


def mlp_loss(params, x, labels):
    """Mean cross-entropy of softmax(tanh(x @ w1 + b1) @ w2 + b2), written in plain NumPy."""
    h = np.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(x.shape[0]), labels])


def mlp_backprop(params, x, labels):
    """The same gradient by hand (the reference)."""
    h = np.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    p = sc.softmax(logits, axis=1)
    n = x.shape[0]
    dlogits = p.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n
    dh = dlogits @ params["w2"].T * (1 - h ** 2)
    return {"w2": h.T @ dlogits, "b2": dlogits.sum(0), "w1": x.T @ dh, "b1": dh.sum(0)}


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (8, 784))
    labels = rng.integers(0, 10, 8)
    return init_mlp(rng), x, labels


def test_mlp_gradient_matches_backpropagation(mlp):
    params, x, labels = mlp
    value, g = lumen.value_and_grad(mlp_loss)(params, x, labels)
    assert float(value) == pytest.approx(mlp_loss(params, x, labels), rel=1e-12)
    expected = mlp_backprop(params, x, labels)
    for k in params:
        assert g[k].shape == params[k].shape
        np.testing.assert_allclose(g[k], expected[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_mlp_gradient_against_finite_differences(mlp):
    params, x, labels = mlp
    lumen.check_grad(mlp_loss, (params, x, labels), max_elements=48)


def test_mlp_training_step_compiles_once(mlp):
    """A jitted SGD step (value_and_grad inside jit) follows NumPy backpropagation step for
    step, compiled once."""
    params, x, labels = mlp

    @lumen.jit
    def step(params, x, labels):
        loss, g = lumen.value_and_grad(mlp_loss)(params, x, labels)
        return {k: params[k] - 0.1 * g[k] for k in params}, loss

    ours, reference, losses = params, params, []
    for _ in range(4):
        ours, loss = step(ours, x, labels)
        g = mlp_backprop(reference, x, labels)
        reference = {k: reference[k] - 0.1 * g[k] for k in reference}
        losses.append(float(loss))
    for k in params:
        np.testing.assert_allclose(ours[k], reference[k], rtol=1e-10, atol=1e-14)
    assert losses[-1] < losses[0]
    assert step.cache_info()["compiles"] == 1


def test_nn_crossentropy_gradient():
    rng = np.random.default_rng(2)
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    lumen.check_grad(lumen.nn.crossentropy, (logits, labels))
    g = lumen.grad(lumen.nn.crossentropy)(logits, labels)
    expected = sc.softmax(logits, axis=1)
    expected[np.arange(5), labels] -= 1
    np.testing.assert_allclose(g, expected / 5, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nn_crossentropy_picks_the_label_logits_first(dtype):
    """The loss and its gradient pick each row's label logit out of the logits themselves, not
    out of the whole log_softmax: no pass over every class subtracts logsumexp, and the row
    sums of the one-hot gradient are not taken; the numbers are NumPy's. Logits of another
    rank keep the plain formula."""
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((7, 5)).astype(dtype), rng.integers(0, 5, 7)
    graph = lumen.jit(lumen.nn.crossentropy).lower(logits, labels).optimized_graph()
    (gather,) = [n for n in graph.nodes if n.op == "gather"]
    assert gather.inputs[0] is graph.inputs[0]
    logp = logits - sc.logsumexp(logits.astype(np.float64), axis=1, keepdims=True)
    want = -np.mean(logp[np.arange(7), labels])
    got = lumen.jit(lumen.nn.crossentropy)(logits, labels)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13)
    step = lumen.jit(lumen.value_and_grad(lumen.nn.crossentropy))
    grad_graph = step.lower(logits, labels).optimized_graph()
    two_d = [n for n in grad_graph.nodes if n.op == "kernel" and n.params["reduce"] is not None
             and len(n.params["space"]) == 2 and 1 in n.params["reduce"].axes
             and n.params["space"][1].value != 1]
    assert len(two_d) <= 2                      # the row max and the row sum of exponentials
    expected = sc.softmax(logits.astype(np.float64), axis=1)
    expected[np.arange(7), labels] -= 1
    np.testing.assert_allclose(step(logits, labels)[1], expected / 7,
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    cube = rng.standard_normal((3, 2, 4))
    plain = -np.mean((cube - sc.logsumexp(cube, axis=-1, keepdims=True))[np.arange(3), [1, 0, 1]])
    np.testing.assert_allclose(lumen.jit(lumen.nn.crossentropy)(cube, np.array([1, 0, 1])), plain,
                               rtol=1e-12)


def test_nn_shift_has_no_derivative():
    """The max shift of logsumexp / softmax cancels out of their values, so its derivative is
    not taken: the optimised gradient of crossentropy has no max-tie mask (``equal``) and
    computes the same numbers, ties included; Hessians still match finite differences. The
    shifted ``exp(x - m)`` is differentiated by the chain rule, not re-stabilised as a naive
    logsumexp (which took the maximum again, of values whose maximum is 0)."""
    logits = np.array([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [4.0, -1.0, 2.0, 0.0]])
    labels = np.array([1, 3, 0])
    f = lumen.jit(lumen.grad(lumen.nn.crossentropy))
    optimized = f.lower(logits, labels).optimized_ir()
    assert " equal(" not in optimized
    assert optimized.count(" max(axes=") == 1
    expected = sc.softmax(logits, axis=1)
    expected[np.arange(3), labels] -= 1
    np.testing.assert_allclose(f(logits, labels), expected / 3, rtol=1e-12, atol=1e-15)
    for name in ("logsumexp", "softmax"):
        fn = getattr(lumen.nn, name)
        lumen.check_grad(lumen.grad(lambda x, fn=fn: np.sum(fn(x, axis=1) ** 2)), (logits,))


def test_nn_crossentropy_gradient_with_extreme_logits():
    """Logits 1000 apart: the gradient is still softmax - onehot, with no NaN."""
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 1.0]])
    labels = np.array([2, 0])
    g = lumen.grad(lumen.nn.crossentropy)(logits, labels)
    expected = sc.softmax(logits, axis=1)
    expected[np.arange(2), labels] -= 1
    np.testing.assert_allclose(g, expected / 2, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "sigmoid", "softplus", "relu"])
def test_nn_helpers(name):
    fn = getattr(lumen.nn, name)
    x = np.random.default_rng(3).standard_normal((2, 3)) * 2
    if name == "relu":
        x = np.where(np.abs(x) < 0.1, 0.5, x)       # away from the kink
    lumen.check_grad(fn, (x,))


# -- second order ---------------------------------------------------------------------------------

A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])


def f_scalar(x):
    return np.sum(np.sin(x) * x ** 2) + np.prod(x) + x @ A @ x + np.log(np.sum(np.exp(x)))


X = np.array([0.3, -0.7, 1.1])


def _fd_jacobian(g, x, eps=1e-5):
    cols = []
    for i in range(x.size):
        d = np.zeros_like(x)
        d[i] = eps
        cols.append((np.asarray(g(x + d)) - np.asarray(g(x - d))) / (2 * eps))
    return np.stack(cols, axis=-1)


def test_hessian_against_finite_differences_of_the_gradient():
    h = lumen.hessian(f_scalar)(X)
    assert h.shape == (3, 3)
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    np.testing.assert_allclose(h, _fd_jacobian(lumen.jit(lumen.grad(f_scalar)), X), rtol=1e-7, atol=1e-8)


def test_hvp_is_hessian_times_vector():
    v = np.array([1.0, -2.0, 0.5])
    h = lumen.hessian(f_scalar)(X)
    (hv,) = lumen.hvp(f_scalar, (X,), (v,))
    np.testing.assert_allclose(hv, h @ v, rtol=1e-12)


def test_hvp_of_several_arguments():
    f = lambda w, b: np.sum(np.tanh(X * w + b) ** 2)  # noqa: E731
    w, b = np.array([0.5, 1.0, -1.0]), np.float64(0.2)
    vw, vb = np.array([1.0, 0.0, 2.0]), np.float64(-1.0)
    hw, hb = lumen.hvp(f, (w, b), (vw, vb))
    eps = 1e-6
    fd = [(np.asarray(p) - np.asarray(m)) / (2 * eps) for p, m in zip(
        lumen.grad(f, argnums=(0, 1))(w + eps * vw, b + eps * vb),
        lumen.grad(f, argnums=(0, 1))(w - eps * vw, b - eps * vb))]
    np.testing.assert_allclose(hw, fd[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(hb, fd[1], rtol=1e-6, atol=1e-9)


def test_grad_of_grad_of_scalar_function():
    f = lambda x: x ** 3 * np.sin(x)  # noqa: E731
    x = 0.8
    expected = 6 * x * np.sin(x) + 6 * x ** 2 * np.cos(x) - x ** 3 * np.sin(x)
    assert float(lumen.grad(lumen.grad(f))(x)) == pytest.approx(expected, rel=1e-13)
    d3 = lumen.grad(lumen.grad(lumen.grad(f)))(x)
    fd = (lumen.grad(lumen.grad(f))(x + 1e-5) - lumen.grad(lumen.grad(f))(x - 1e-5)) / 2e-5
    assert float(d3) == pytest.approx(float(fd), rel=1e-7)


def test_rop_of_grad():
    v = np.array([0.5, 0.5, -1.0])
    jv = lumen.rop(lumen.grad(f_scalar), (X,), (v,))
    np.testing.assert_allclose(jv, lumen.hessian(f_scalar)(X) @ v, rtol=1e-12)


@pytest.mark.parametrize("fn", [
    f_scalar,
    lambda x: np.sum(np.tanh(np.outer(x, x)) @ x),
    lambda x: np.sum(sc.gammaln(np.exp(x)) + np.cumprod(x) + np.maximum(x, 0.1) ** 2),
    lambda x: np.sum(np.where(x > 0, np.sqrt(np.abs(x)), x ** 2)),
], ids=["mixed", "outer", "special", "where"])
def test_second_order_both_modes(fn):
    """check_grad of the gradient: forward-over-reverse (rop of grad), reverse-over-reverse
    (lop and grad of grad) against finite differences of the gradient."""
    lumen.check_grad(lumen.grad(fn), (X,), eps=1e-5, rtol=1e-6)


def test_hessian_of_mlp_output_layer():
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((4, 3)), np.array([0, 1, 1, 0])

    def loss(w):
        return lumen.nn.crossentropy(x @ w.reshape(3, 2), labels)

    w = rng.standard_normal(6)
    h = lumen.hessian(loss)(w)
    np.testing.assert_allclose(h, _fd_jacobian(lumen.jit(lumen.grad(loss)), w), rtol=1e-6, atol=1e-9)
    assert np.linalg.eigvalsh(h).min() > -1e-12         # cross-entropy is convex in w


def test_gauss_newton_product():
    """lop(f, θ, rop(f, θ, v)) = Jᵀ J v."""
    f = lambda t: np.tanh(A @ t) * t[0]  # noqa: E731
    v = np.array([1.0, 2.0, -1.0])
    jv = lumen.rop(f, (X,), (v,))
    (gn,) = lumen.lop(f, (X,), jv)
    j = lumen.jacobian(f)(X)
    np.testing.assert_allclose(gn, j.T @ j @ v, rtol=1e-12)


def test_trigamma_through_hessian_of_gammaln():
    x = np.array([0.2, 1.5, 7.0])
    h = lumen.hessian(lambda x: np.sum(sc.gammaln(x)))(x)
    np.testing.assert_allclose(h, np.diag(sc.polygamma(1, x)), rtol=1e-13, atol=1e-300)


def test_prod_hessian_at_zeros_is_exact():
    h = lumen.hessian(np.prod)(np.array([0.0, 2.0, 3.0]))
    np.testing.assert_array_equal(h, [[0, 3, 2], [3, 0, 0], [2, 0, 0]])     # jax.hessian's
    h = lumen.hessian(np.prod)(np.array([0.0, 0.0, 3.0]))
    np.testing.assert_array_equal(h, [[0, 3, 0], [3, 0, 0], [0, 0, 0]])
