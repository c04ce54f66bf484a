"""W4: one training step of a simple RNN — forward through time, back-propagation through time
(BPTT) and an SGD update — on one sequence (batch 1).

    h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b),  h_0 = 0
    y_t = h_t @ Wy
    loss = 0.5 * mean((y - t)**2)                  over all T*H elements
    W <- W - lr * dloss/dW                         for Wx, Wh, b, Wy; lr = 0.01

One call = one step; it returns ``(loss, Wx', Wh', b', Wy')``, and every one of them is checked
against NumPy's. Throughput is T / time per call (sequence elements per second).

float64, not float32: with a mean over T*H elements and lr = 0.01 the update ``lr * dW`` is so
small next to the weights it changes that a float32 check of the updated weights cannot see the
gradient: with rtol 1e-4, atol 1e-5 every gradient could be 10% wrong (at H = 1000: zero) and
pass. In float64 (rtol 1e-9, atol 1e-12) each parameter's change ``lr * dW`` is >= ~1e6 times the
tolerance at its largest entries, so a relative error of 1e-4 in any gradient fails the check,
while the peers agree with NumPy to < 1e-5 of the tolerance. ``_sensitivity`` below shows both.
"""
import numpy as np

from ..harness import Workload

T, T_QUICK = 100, 10            # sequence length (full run, --quick)
SIZES = (50, 100, 200, 500, 1000)
QUICK_MAX_H = 100               # --quick runs H in {50, 100}: larger workloads shrink to H = 100
LR = 0.01
DTYPE = np.float64
TOL = dict(rtol=1e-9, atol=1e-12)


def make_inputs(shape, dtype, rng):
    """xs, ts: (T, 1, H) — batch 1; Wx, Wh, Wy: (H, H); b: (H,). Wh is scaled to spectral radius
    ~0.9 (stable dynamics: rounding differences do not grow over the sequence)."""
    t, h = shape
    xs = rng.standard_normal((t, 1, h))
    ts = rng.standard_normal((t, 1, h))
    wx = rng.standard_normal((h, h)) / np.sqrt(h)
    wh = rng.standard_normal((h, h)) * (0.9 / np.sqrt(h))
    b = rng.standard_normal(h) * 0.1
    wy = rng.standard_normal((h, h)) / np.sqrt(h)
    return tuple(np.ascontiguousarray(a, dtype=dtype) for a in (xs, ts, wx, wh, b, wy))


# ---- NumPy: hand-written forward loop and BPTT (the reference) -----------------------------------

def numpy_step(xs, ts, wx, wh, b, wy):
    """Forward loop over time, then BPTT written by hand. Only the recurrence is a Python loop:
    the input products, the outputs and the weight gradients are one matmul each over all steps
    (the way a careful NumPy programmer writes it)."""
    n, _, hdim = xs.shape
    dt = xs.dtype.type
    x = xs.reshape(n, hdim)
    tgt = ts.reshape(n, hdim)
    # forward
    xw = x @ wx + b                                  # (T, H): every x_t @ Wx + b at once
    hs = np.empty((n + 1, hdim), dtype=xs.dtype)     # hs[0] = h_0 = 0, hs[t+1] = h_t
    hs[0] = 0
    for t in range(n):
        hs[t + 1] = np.tanh(xw[t] + hs[t] @ wh)
    h = hs[1:]
    y = h @ wy
    err = y - tgt
    loss = dt(0.5) * np.mean(err * err)
    # backward
    dy = err / dt(err.size)                          # dloss/dy
    dwy = h.T @ dy
    dh_out = dy @ wy.T                               # (T, H): dloss/dh_t through y_t
    dz = np.empty((n, hdim), dtype=xs.dtype)         # dloss/d(pre-activation at t)
    dh_next = np.zeros(hdim, dtype=xs.dtype)         # dloss/dh_t through h_{t+1}
    for t in range(n - 1, -1, -1):
        dz[t] = (dh_out[t] + dh_next) * (1 - h[t] * h[t])
        dh_next = dz[t] @ wh.T
    dwx = x.T @ dz
    dwh = hs[:-1].T @ dz
    db = dz.sum(0)
    lr = dt(LR)
    return loss, wx - lr * dwx, wh - lr * dwh, b - lr * db, wy - lr * dwy


# ---- lumen: lumen.scan + lumen.value_and_grad under lumen.jit ----------------------------------

def rnn_loss(params, xs, ts):
    """The model as plain NumPy with lumen.scan (shared by lumen's step)."""
    import lumen
    wx, wh, b, wy = params

    def cell(h, x):
        h = np.tanh(x @ wx + h @ wh + b)
        return h, h @ wy
    h0 = np.zeros((1, wh.shape[0]), dtype=xs.dtype)
    _, ys = lumen.scan(cell, h0, xs)
    return 0.5 * np.mean((ys - ts) ** 2)


def lumen_step(xs, ts, wx, wh, b, wy):
    import lumen
    params = (wx, wh, b, wy)
    loss, grads = lumen.value_and_grad(rnn_loss)(params, xs, ts)
    return (loss, *(p - LR * g for p, g in zip(params, grads)))


def _lumen(inputs):
    import lumen
    return lumen.jit(lumen_step)


# ---- jax: jax.lax.scan + jax.value_and_grad (the adapter applies jax.jit) ----------------------

def _jax(inputs):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, xs, ts):
        wx, wh, b, wy = params

        def cell(h, x):
            h = jnp.tanh(x @ wx + h @ wh + b)
            return h, h @ wy
        h0 = jnp.zeros((1, wh.shape[0]), dtype=xs.dtype)
        _, ys = jax.lax.scan(cell, h0, xs)
        return 0.5 * jnp.mean((ys - ts) ** 2)

    def step(xs, ts, wx, wh, b, wy):
        params = (wx, wh, b, wy)
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, ts)
        return (loss, *(p - LR * g for p, g in zip(params, grads)))
    return step


# ---- pytensor: pytensor.scan + pytensor.grad, compiled with pytensor.function --------------------

def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    dt = inputs[0].dtype
    xs, ts = (pt.tensor3(n, dtype=dt, shape=(None, 1, None)) for n in ("xs", "ts"))   # batch 1
    wx, wh, wy = (pt.matrix(n, dtype=dt) for n in ("wx", "wh", "wy"))
    b = pt.vector("b", dtype=dt)

    def cell(x, h, wx, wh, b, wy):
        h = pt.tanh(x @ wx + h @ wh + b)
        return h, h @ wy
    h0 = pt.zeros((1, wh.shape[0]), dtype=dt)
    (_, ys), _ = pytensor.scan(cell, sequences=[xs], outputs_info=[h0, None],
                               non_sequences=[wx, wh, b, wy], strict=True)
    loss = 0.5 * pt.mean((ys - ts) ** 2)
    params = [wx, wh, b, wy]
    grads = pytensor.grad(loss, params)
    return pytensor.function([xs, ts, wx, wh, b, wy],
                             [loss] + [p - LR * g for p, g in zip(params, grads)])


# ---- numba: the NumPy algorithm (hand-written BPTT) under @njit -------------------------------

def _numba(inputs):
    import numba

    @numba.njit(parallel=True, fastmath=False)
    def step(xs, ts, wx, wh, b, wy):
        n, _, hdim = xs.shape
        x = xs.reshape(n, hdim)
        tgt = ts.reshape(n, hdim)
        xw = x @ wx
        hs = np.zeros((n + 1, hdim), dtype=xs.dtype)
        for t in range(n):
            z = xw[t] + hs[t] @ wh
            for j in range(hdim):
                hs[t + 1, j] = np.tanh(z[j] + b[j])
        h = np.ascontiguousarray(hs[1:])
        err = h @ wy - tgt
        loss = 0.5 * np.mean(err * err)
        dy = err / err.size
        dwy = h.T @ dy
        dh_out = dy @ wy.T
        dz = np.empty((n, hdim), dtype=xs.dtype)
        dh_next = np.zeros(hdim, dtype=xs.dtype)
        wht = np.ascontiguousarray(wh.T)
        for t in range(n - 1, -1, -1):
            for j in range(hdim):
                dz[t, j] = (dh_out[t, j] + dh_next[j]) * (1 - h[t, j] * h[t, j])
            dh_next = dz[t] @ wht
        dwx = x.T @ dz
        dwh = np.ascontiguousarray(hs[:-1]).T @ dz
        db = dz.sum(0)
        return loss, wx - LR * dwx, wh - LR * dwh, b - LR * db, wy - LR * dwy
    return step


# ---- torch: eager autograd, a Python loop over time -------------------------------------------

def _torch(inputs):
    import torch

    def step(xs, ts, wx, wh, b, wy):
        params = [p.detach().requires_grad_() for p in (wx, wh, b, wy)]
        pwx, pwh, pb, pwy = params
        h = torch.zeros((1, wh.shape[0]), dtype=xs.dtype)
        ys = []
        for x in xs:
            h = torch.tanh(x @ pwx + h @ pwh + pb)
            ys.append(h @ pwy)
        loss = 0.5 * ((torch.stack(ys) - ts) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            return (loss.detach(), *(p - LR * g for p, g in zip(params, grads)))
    return step


# ---- the workloads ----------------------------------------------------------------------------

class RnnWorkload(Workload):
    """A Workload whose description names its actual inputs (several arrays of different shapes)."""

    def describe(self, quick: bool) -> str:
        t, h = self.quick_shape if quick else self.shape
        return (f"simple-RNN training step (forward, BPTT, SGD lr {LR}), batch 1, T = {t}, H = {h} — "
                f"{np.dtype(self.dtype).name}; xs, ts ({t} x 1 x {h}), Wx, Wh, Wy ({h} x {h}), b ({h}); "
                f"returns loss and the 4 updated parameters; sequence elements/s = {t} / time")


_NOTES = {
    "numpy": "(hand-written forward loop + BPTT; input products, outputs and weight gradients "
             "batched over time as one matmul each)",
    "lumen": "(lumen.jit of lumen.value_and_grad through lumen.scan)",
    "jax": "(jax.lax.scan + jax.value_and_grad)",
    "pytensor": "(pytensor.scan + pytensor.grad, returns new params)",
    "numba": "(here no prange — the recurrence is sequential: the NumPy BPTT compiled, @ via BLAS)",
    "torch": "(autograd, Python loop over time)",
}

WORKLOADS = [
    RnnWorkload(
        name=f"W4.H{h}", family="rnn",
        expr="h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b); y_t = h_t @ Wy; "
             "loss = 0.5*mean((y-t)**2); SGD step of Wx, Wh, b, Wy",
        dtype=DTYPE, shape=(T, h), quick_shape=(T_QUICK, min(h, QUICK_MAX_H)), n_inputs=6,
        chain_from=2,
        reference=numpy_step, make_inputs=make_inputs, bytes_moved=None,
        impls={"lumen": _lumen, "numba": _numba, "jax": _jax, "pytensor": _pytensor, "torch": _torch},
        notes=_NOTES, **TOL)
    for h in SIZES
]


# ---- checking the check -----------------------------------------------------------------------

def _sensitivity(h=50, t=T, seed=0):
    """How strongly the harness's check constrains the gradients, in float32 (rtol 1e-4, atol 1e-5)
    and in float64 (this workload's tolerance): the largest change lr*dW of each parameter over the
    tolerance, and whether the check fails when every gradient is off by a relative 1e-4, 1e-3,
    1e-2 or 1e-1; then central finite differences against the hand-written BPTT (float64).
    Run it with ``python -m bench.workloads.rnn [H]``."""
    from ..harness import _compare
    for dtype, rtol, atol in ((np.float32, 1e-4, 1e-5), (DTYPE, TOL["rtol"], TOL["atol"])):
        xs, ts, *params = make_inputs((t, h), dtype, np.random.default_rng(seed))
        loss, *new = numpy_step(xs, ts, *params)
        ratios = [float(np.max(np.abs(n - p) / (atol + rtol * np.abs(n)))) for p, n in zip(params, new)]
        caught = []
        for rel in (1e-4, 1e-3, 1e-2, 1e-1):
            off = [p + (n - p) * dtype(1 + rel) for p, n in zip(params, new)]   # every gradient * (1+rel)
            caught.append(f"{rel:g}: {'fails' if not _compare((loss, *off), (loss, *new), rtol, atol)[0] else 'PASSES'}")
        print(f"{np.dtype(dtype).name} (rtol {rtol:g}, atol {atol:g}), T={t}, H={h}: max |lr*dW| / tolerance "
              f"for Wx, Wh, b, Wy = " + ", ".join(f"{r:.3g}" for r in ratios)
              + "; gradients off by " + ", ".join(caught))
    xs, ts, *params = make_inputs((t, h), np.float64, np.random.default_rng(seed))
    _, *new = numpy_step(xs, ts, *params)
    grads = [(p - n) / LR for p, n in zip(params, new)]
    rng = np.random.default_rng(1)
    for k, name in enumerate(("Wx", "Wh", "b", "Wy")):     # along a random direction d
        d = rng.standard_normal(params[k].shape)
        eps = 1e-6
        plus = [p + eps * d if i == k else p for i, p in enumerate(params)]
        minus = [p - eps * d if i == k else p for i, p in enumerate(params)]
        fd = (numpy_step(xs, ts, *plus)[0] - numpy_step(xs, ts, *minus)[0]) / (2 * eps)
        an = float(np.sum(grads[k] * d))
        print(f"  finite differences, d{name}.d: {fd:.10g} vs BPTT {an:.10g} "
              f"(rel. diff {abs(fd - an) / abs(an):.1e})")


if __name__ == "__main__":
    import sys
    for arg in sys.argv[1:] or ["50"]:
        _sensitivity(int(arg))
