"""examples/hessian_free.py: conjugate gradient in `lumen.while_loop`, the Gauss–Newton product
of the RNN against a dense Jᵀ J, and Hessian-free training making fast progress."""
import pathlib
import sys

import numpy as np
import pytest

import lumen

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

from hessian_free import (conjugate_gradient, gauss_newton, init, loss, make_task,  # noqa: E402
                          outputs, shapes, train_hf)


def rnn_numpy(theta, xs, n_hidden):
    """The example's f(θ) written as a plain NumPy loop (the oracle)."""
    parts, start = [], 0
    for shape in shapes(n_hidden):
        parts.append(theta[start:start + int(np.prod(shape))].reshape(shape))
        start += int(np.prod(shape))
    wx, wh, b, wo, bo = parts
    h, out = np.zeros((xs.shape[1], n_hidden)), []
    for x in xs:
        h = np.tanh(x @ wx + h @ wh + b)
        out.append(h @ wo + bo)
    return np.stack(out)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    xs, ys = make_task(rng, n_seq=2, length=2)     # J: 8 x 23
    return xs, ys, init(rng, 3), 3


def test_task_targets():
    xs, ys = make_task(np.random.default_rng(0), n_seq=3, length=9)
    u = xs[:, :, 0]
    np.testing.assert_array_equal(ys[4:, :, 0], u[:-4])             # the input 4 steps back
    np.testing.assert_array_equal(ys[:4, :, 0], 0.0)
    np.testing.assert_allclose(ys[2, :, 1], 0.2 * (u[2] + 0.8 * u[1] + 0.64 * u[0]), rtol=1e-12, atol=1e-15)


def _numpy_cg_iterations(a, b, x, max_iters, tol):
    """How many iterations the textbook CG recurrence takes in NumPy with the same stopping
    rule (|r| <= tol |b| or max_iters)."""
    r = b - a @ x
    p, rr, k = r, r @ r, 0
    while k < max_iters and rr > tol * tol * (b @ b):
        ap = a @ p
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        rr, rr_old = r @ r, rr
        p, k = r + (rr / rr_old) * p, k + 1
    return k


@pytest.mark.parametrize("n", [1, 8, 30])
def test_conjugate_gradient_solves_an_spd_system(n):
    rng = np.random.default_rng(n)
    m = rng.standard_normal((n, n))
    a, b = m @ m.T + 0.5 * np.eye(n), rng.standard_normal(n)
    solve = lumen.jit(lambda a, b, x0, k: conjugate_gradient(lambda v: a @ v, b, x0, k, 1e-13))
    exact = np.linalg.solve(a, b)
    for x0 in (np.zeros(n), 0.5 * exact + 0.1):            # from zero, and warm-started
        x, r, iters = solve(a, b, x0, 10 * n)
        np.testing.assert_allclose(x, exact, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(r, b - a @ x, atol=1e-9 * np.abs(b).max())
        assert iters == _numpy_cg_iterations(a, b, x0, 10 * n, 1e-13)   # the same recurrence
    _, _, stopped = solve(a, b, np.zeros(n), 1)
    assert stopped == 1                          # max_iters is obeyed
    _, _, none = solve(a, b, exact, 10 * n)
    assert none <= 1                             # started at the solution: (almost) nothing to do


def test_outputs_match_numpy_loop(tiny):
    xs, _, theta, h = tiny
    np.testing.assert_allclose(lumen.jit(outputs, static_argnums=2)(theta, xs, h),
                               rnn_numpy(theta, xs, h), rtol=1e-12)


def test_gauss_newton_product_matches_dense_jacobian(tiny):
    """G v = Jᵀ J v / (T N) with J from lumen.jacobian, itself checked by central differences
    of the NumPy loop."""
    xs, _, theta, h = tiny
    jac = lumen.jacobian(lambda t: outputs(t, xs, h))(theta).reshape(-1, theta.size)
    eps, fd = 1e-6, np.empty_like(jac)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = eps
        fd[:, k] = (rnn_numpy(theta + e, xs, h) - rnn_numpy(theta - e, xs, h)).ravel() / (2 * eps)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)
    gn = lumen.jit(gauss_newton, static_argnums=3)
    for v in np.random.default_rng(4).standard_normal((3, theta.size)):
        dense = jac.T @ (jac @ v) / (xs.shape[0] * xs.shape[1])
        np.testing.assert_allclose(gn(theta, xs, v, h), dense, rtol=1e-10, atol=1e-13)


def test_hessian_free_loss_falls_tenfold_in_eight_outer_steps():
    rng = np.random.default_rng(0)
    xs, ys = make_task(rng, n_seq=16, length=12)
    theta = init(rng, 12)
    start = float(lumen.jit(loss, static_argnums=3)(theta, xs, ys, 12))
    np.testing.assert_allclose(start, 0.5 * np.mean(np.sum((rnn_numpy(theta, xs, 12) - ys) ** 2, -1)),
                               rtol=1e-12)
    _, losses, cg_iters, _ = train_hf(theta, xs, ys, 12, outer_steps=8)
    assert all(b <= a for a, b in zip([start] + losses, losses))   # never worse: bad steps refused
    assert losses[-1] < start / 10
    assert all(1 <= k for k in cg_iters)
