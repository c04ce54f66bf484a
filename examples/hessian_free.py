"""Hessian-free optimisation (Martens & Sutskever, "Learning recurrent neural networks with
Hessian-free optimization", ICML 2011) of a small tanh RNN, next to plain gradient descent.

The task, generated here: each of N sequences is T steps of white noise u_t ~ N(0, 1); the RNN
reads u_t and must output, at every step,

    y_t = (u_{t-DELAY},  m_t)      with u_{t-DELAY} = 0 for t < DELAY and
                                   m_t = 0.8 m_{t-1} + 0.2 u_t (m_{-1} = 0, a leaky running mean):

a delayed copy (the net must remember DELAY past inputs) and an accumulated signal. Loss: half the
mean over (t, sequence) of the squared error, L(θ) = ½ |f(θ) − y|² / (T N), where f(θ) stacks the
outputs of h_t = tanh(u_t Wx + h_{t−1} Wh + b), o_t = h_t Wo + bo, with θ all the weights as one
flat vector.

One outer step of Hessian-free — one compiled call, `hf_step`:
  1. the gradient g = ∇L(θ);
  2. conjugate gradient on (G + λI) d = −g inside `lumen.while_loop`, started from 0.95 times
     the previous step's d (Martens' warm start), where the Gauss–Newton product is G v = Jᵀ (J v) / (T N) =
     `lumen.lop(f, θ, lumen.rop(f, θ, v))` / (T N) — the loss's Hessian with respect to the outputs
     is I / (T N) — which lumen compiles to two passes over the sequence (the forward and R-op
     loops merged, then one backward loop);
  3. the reduction ratio ρ = (L(θ + d) − L(θ)) / (gᵀd + ½ dᵀG d) of the actual to the predicted
     decrease sets the Levenberg–Marquardt damping: λ ← 2/3 λ if ρ > 3/4, 3/2 λ if ρ < 1/4;
     the step is taken only if the loss went down.
Left out from the papers: Martens' CG stopping rule (relative progress of the quadratic), his
backtracking over CG's iterates and the RNN paper's structural damping; CG stops after MAX_CG
iterations or at a relative residual CG_TOL.

    python examples/hessian_free.py    # loss per outer step, time per step, and GD on the same budget
"""
import time

import numpy as np

import lumen

N_IN, N_OUT = 1, 2
DELAY, DECAY = 4, 0.8
MAX_CG, CG_TOL = 50, 1e-6


def make_task(rng, n_seq=64, length=24):
    """xs: (T, N, 1) white noise; ys: (T, N, 2) its DELAY-step-delayed copy and leaky mean."""
    u = rng.standard_normal((length, n_seq))
    delayed = np.zeros_like(u)
    delayed[DELAY:] = u[:-DELAY]
    mean = np.zeros_like(u)
    for t in range(length):
        mean[t] = DECAY * (mean[t - 1] if t else 0.0) + (1 - DECAY) * u[t]
    return u[:, :, None], np.stack([delayed, mean], axis=-1)


def shapes(n_hidden):
    """The weights' shapes in the order they lie in θ: Wx, Wh, b, Wo, bo."""
    return ((N_IN, n_hidden), (n_hidden, n_hidden), (n_hidden,), (n_hidden, N_OUT), (N_OUT,))


def init(rng, n_hidden):
    """Small input and output weights; Wh with spectral radius about 1.1, as Martens & Sutskever
    start their RNNs (at the edge of stable dynamics, so memories can last)."""
    wx = rng.standard_normal((N_IN, n_hidden))
    wh = rng.standard_normal((n_hidden, n_hidden))
    wh *= 1.1 / np.max(np.abs(np.linalg.eigvals(wh)))
    wo = rng.standard_normal((n_hidden, N_OUT)) / np.sqrt(n_hidden)
    return np.concatenate([wx.ravel(), wh.ravel(), np.zeros(n_hidden), wo.ravel(), np.zeros(N_OUT)])


def unpack(theta, n_hidden):
    out, start = [], 0
    for shape in shapes(n_hidden):
        size = int(np.prod(shape))
        out.append(theta[start:start + size].reshape(shape))
        start += size
    return out


def outputs(theta, xs, n_hidden):
    """f(θ): the RNN's outputs (T, N, 2) for inputs xs (T, N, 1), h_{-1} = 0."""
    wx, wh, b, wo, bo = unpack(theta, n_hidden)

    def cell(h, x):
        h = np.tanh(x @ wx + h @ wh + b)
        return h, h @ wo + bo
    return lumen.scan(cell, np.zeros((xs.shape[1], n_hidden)), xs)[1]


def loss(theta, xs, ys, n_hidden):
    err = outputs(theta, xs, n_hidden) - ys
    return 0.5 * np.sum(err * err) / (ys.shape[0] * ys.shape[1])


def gauss_newton(theta, xs, v, n_hidden):
    """G v = Jᵀ J v / (T N): the Gauss–Newton matrix of the loss times v, in two sequence passes."""
    def f(t):
        return outputs(t, xs, n_hidden)
    (gv,) = lumen.lop(f, (theta,), lumen.rop(f, (theta,), (v,)))
    return gv / (xs.shape[0] * xs.shape[1])


def conjugate_gradient(matvec, b, x0, max_iters, tol):
    """Solve A x = b for a symmetric positive-definite A known through ``matvec`` (x ↦ A x),
    starting at x0, inside `lumen.while_loop`: at most ``max_iters`` iterations, stopping once
    |r| <= tol |b|. Returns x, its residual r = b − A x (kept by the recurrence, so xᵀA x =
    xᵀb − xᵀr costs no further product) and the number of iterations run."""
    bound = tol * tol * (b @ b)
    r = b - matvec(x0)

    def more(state):
        _, _, _, rr, k = state
        return (k < max_iters) & (rr > bound)

    def iterate(state):
        x, r, p, rr, k = state
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        rr_next = r @ r
        return x, r, r + (rr_next / rr) * p, rr_next, k + 1

    x, r, _, _, k = lumen.while_loop(more, iterate, (x0, r, r, r @ r, np.int64(0)))
    return x, r, k


@lumen.jit(static_argnames=("n_hidden",))
def hf_step(theta, lam, d_prev, xs, ys, n_hidden, max_cg=MAX_CG, cg_tol=CG_TOL):
    """One outer Hessian-free step. Returns (θ', λ', d, L(θ), L(θ + d), ρ, CG iterations)."""
    value, g = lumen.value_and_grad(loss)(theta, xs, ys, n_hidden)
    d, r, iters = conjugate_gradient(lambda v: gauss_newton(theta, xs, v, n_hidden) + lam * v,
                                     -g, 0.95 * d_prev, max_cg, cg_tol)
    trial = loss(theta + d, xs, ys, n_hidden)
    curvature = d @ (-g) - d @ r - lam * (d @ d)          # dᵀ G d, from (G + λI) d = −g − r
    rho = (trial - value) / (g @ d + 0.5 * curvature)
    lam = np.where(rho > 0.75, lam * (2 / 3), np.where(rho < 0.25, lam * 1.5, lam))
    return np.where(trial < value, theta + d, theta), lam, d, value, trial, rho, iters


@lumen.jit(static_argnames=("n_hidden",))
def gd_steps(theta, lr, n_steps, xs, ys, n_hidden):
    """``n_steps`` steps of plain gradient descent in one native loop; returns θ and its loss."""
    def step(state):
        theta, k = state
        return theta - lr * lumen.grad(loss)(theta, xs, ys, n_hidden), k + 1
    theta, _ = lumen.while_loop(lambda s: s[1] < n_steps, step, (theta, np.int64(0)))
    return theta, loss(theta, xs, ys, n_hidden)


def train_hf(theta, xs, ys, n_hidden, outer_steps, lam=1.0, verbose=False):
    """Returns θ, the loss after each outer step, the CG iterations of each, and seconds per step
    (the first call, which compiles, excluded)."""
    lam = np.array(lam)              # a 0-d array, as hf_step returns it: one compilation
    d = np.zeros_like(theta)
    hf_step(theta, lam, d, xs, ys, n_hidden)                          # compile
    losses, cg_iters, seconds = [], [], []
    for k in range(outer_steps):
        start = time.perf_counter()
        theta, lam, d, value, trial, rho, iters = hf_step(theta, lam, d, xs, ys, n_hidden)
        seconds.append(time.perf_counter() - start)
        losses.append(min(float(value), float(trial)))
        cg_iters.append(int(iters))
        if verbose:
            print(f"  HF step {k + 1:3d}: loss {losses[-1]:.6f}   CG iterations {int(iters):3d}   "
                  f"rho {float(rho):6.3f}   lambda {float(lam):.3g}   {seconds[-1] * 1e3:6.1f} ms")
    return theta, losses, cg_iters, seconds


def main(n_hidden=24, outer_steps=30, gd_lr=0.2, seed=0):
    """gd_lr: the best of 0.2, 0.5, 1 and 2 for this task (1 and 2 diverge)."""
    rng = np.random.default_rng(seed)
    xs, ys = make_task(rng)
    theta0 = init(rng, n_hidden)
    start_loss = float(lumen.jit(loss, static_argnames=("n_hidden",))(theta0, xs, ys, n_hidden))
    print(f"tanh RNN, {n_hidden} hidden units ({theta0.size} parameters), {xs.shape[1]} sequences "
          f"of {xs.shape[0]} steps; initial loss {start_loss:.6f}")
    _, losses, cg_iters, seconds = train_hf(theta0, xs, ys, n_hidden, outer_steps, verbose=True)
    # the budget in sequence passes: a gradient is 2 (forward, backward), a Gauss-Newton product
    # 2 (forward + R-op, backward), a loss 1; per HF step: gradient, CG's products (one more for
    # the warm start's residual), trial loss
    passes = sum(2 + 2 * (k + 1) + 1 for k in cg_iters)
    gd_steps(theta0, gd_lr, 1, xs, ys, n_hidden)                     # compile
    start = time.perf_counter()
    _, gd_loss = gd_steps(theta0, gd_lr, passes // 2, xs, ys, n_hidden)
    gd_seconds = time.perf_counter() - start
    same_time = int(passes // 2 * sum(seconds) / gd_seconds)
    _, gd_loss_same_time = gd_steps(theta0, gd_lr, same_time, xs, ys, n_hidden)
    print(f"Hessian-free: final loss {losses[-1]:.6f} after {outer_steps} outer steps "
          f"({sum(cg_iters)} CG iterations, {passes} sequence passes), "
          f"{np.median(seconds) * 1e3:.1f} ms per outer step, {sum(seconds):.2f} s in all")
    print(f"gradient descent (lr {gd_lr}): final loss {float(gd_loss):.6f} after {passes // 2} steps "
          f"(the same {passes} sequence passes, {gd_seconds:.2f} s); {float(gd_loss_same_time):.6f} "
          f"after {same_time} steps (the same time)")
    return losses, float(gd_loss)


if __name__ == "__main__":
    main()
