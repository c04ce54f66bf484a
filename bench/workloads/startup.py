"""W7: time to first result of an MLP training step in a fresh process, with each
implementation's persistent compilation cache empty (cold) and filled by the cold run (warm).

The step: 784 -> 500 tanh -> 10, batch 60, float32, softmax cross-entropy, SGD (lr 0.1); it
returns ``(loss, w1', b1', w2', b2')``. lumen and jax differentiate the loss
(``value_and_grad``), pytensor with ``pytensor.grad``, torch with ``torch.func.grad_and_value``;
NumPy and numba run a backward pass written by hand. The number that matters is the "first call" column: seconds from defining the
function (the library already imported) to having the first result. The harness runs each
implementation twice, in fresh processes sharing one cache folder (``Workload.cache_starts``).
"""
import numpy as np

from ..harness import Workload

SHAPE = (60, 784, 500, 10)           # batch, inputs, hidden units, classes
QUICK_SHAPE = (16, 64, 32, 10)
LR = np.float32(0.1)
#: float32: the check catches wrong code (a step that is not this step), not a slightly wrong
#: gradient (lr * dW is near float32's resolution of the weights; see bench/workloads/rnn.py).
TOL = dict(rtol=1e-4, atol=1e-6)


def make_inputs(shape, dtype, rng):
    batch, n_in, n_hidden, n_out = shape
    w1 = (rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in)).astype(dtype)
    w2 = (rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden)).astype(dtype)
    b1, b2 = np.zeros(n_hidden, dtype), np.zeros(n_out, dtype)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    y = rng.integers(0, n_out, batch)
    return w1, b1, w2, b2, x, y


def numpy_step(w1, b1, w2, b2, x, y):
    """The step with back-propagation written by hand (NumPy's row)."""
    n = x.shape[0]
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -np.mean(z[rows, y] - np.log(s[:, 0]))
    dz = e / s
    dz[rows, y] -= 1
    dz /= n
    dh = (dz @ w2.T) * (1 - h * h)
    return (loss, w1 - LR * (x.T @ dh), b1 - LR * dh.sum(axis=0),
            w2 - LR * (h.T @ dz), b2 - LR * dz.sum(axis=0))


def numba_step(w1, b1, w2, b2, x, y):
    """The same, with the per-row softmax as a loop (numba takes one advanced index only).
    At module level: numba's cache finds a function by its file and name."""
    n = x.shape[0]
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    dz = np.empty_like(z)
    loss = 0.0
    for i in range(n):
        zi = z[i] - z[i].max()
        e = np.exp(zi)
        s = e.sum()
        loss -= zi[y[i]] - np.log(s)
        dz[i] = e / s
        dz[i, y[i]] -= 1
    dz /= n
    dh = (dz @ w2.T) * (1 - h * h)
    return (np.float32(loss / n), w1 - LR * (x.T @ dh), b1 - LR * dh.sum(axis=0),
            w2 - LR * (h.T @ dz), b2 - LR * dz.sum(axis=0))


def _lumen(inputs):
    import lumen

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        h = np.tanh(x @ w1 + b1)
        return lumen.nn.crossentropy(h @ w2 + b2, y)

    @lumen.jit
    def step(w1, b1, w2, b2, x, y):
        params = (w1, b1, w2, b2)
        value, grads = lumen.value_and_grad(loss)(params, x, y)
        return (value, *(p - LR * g for p, g in zip(params, grads)))
    return step


def _numba(inputs):
    import numba
    return numba.njit(cache=True)(numba_step)


def _jax(inputs):
    import jax
    import jax.numpy as jnp

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        z = jnp.tanh(x @ w1 + b1) @ w2 + b2
        logp = z - jax.nn.logsumexp(z, axis=1, keepdims=True)
        return -jnp.mean(logp[jnp.arange(x.shape[0]), y])

    def step(w1, b1, w2, b2, x, y):
        params = (w1, b1, w2, b2)
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return (value, *(p - LR * g for p, g in zip(params, grads)))
    return step


def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    w1, w2, x = (pt.matrix(dtype="float32") for _ in range(3))
    b1, b2 = (pt.vector(dtype="float32") for _ in range(2))
    y = pt.vector(dtype="int64")
    z = pt.tanh(x @ w1 + b1) @ w2 + b2
    logp = z - pt.logsumexp(z, axis=1, keepdims=True)
    loss = -logp[pt.arange(y.shape[0]), y].mean()
    params = [w1, b1, w2, b2]
    grads = pytensor.grad(loss, params)
    return pytensor.function(params + [x, y], [loss] + [p - LR * g for p, g in zip(params, grads)])


def _torch(inputs):
    import torch

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        return torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
    value_and_grad = torch.func.grad_and_value(loss)

    def step(w1, b1, w2, b2, x, y):
        params = (w1, b1, w2, b2)
        grads, value = value_and_grad(params, x, y)
        return (value, *(p - float(LR) * g for p, g in zip(params, grads)))
    return step


class StartupWorkload(Workload):
    """A Workload whose description names its actual inputs and what is timed."""

    def describe(self, quick: bool) -> str:
        batch, n_in, n_hidden, n_out = self.quick_shape if quick else self.shape
        return (f"MLP training step {n_in} -> {n_hidden} tanh -> {n_out}, batch {batch}, float32, "
                f"softmax cross-entropy, SGD lr {float(LR):g}; returns loss and the 4 updated "
                "parameters. "
                "**first call** = seconds from definition to first result in a fresh process, "
                "cold (empty compilation caches) and warm (caches the cold run filled)")


WORKLOADS = [
    StartupWorkload(
        name="W7", family="startup", expr="MLP training step: time to first result",
        dtype=np.float32, shape=SHAPE, quick_shape=QUICK_SHAPE, n_inputs=6, reference=numpy_step,
        make_inputs=make_inputs, cache_starts=True,
        impls={"lumen": _lumen, "numba": _numba, "jax": _jax, "pytensor": _pytensor,
               "torch": _torch},
        notes={"numpy": "(hand-written backprop)",
               "lumen": "(lumen.jit of lumen.value_and_grad)",
               "numba": "(here: njit(cache=True), no prange; hand-written backprop)",
               "jax": "(persistent compilation cache, no minimum compile time or size)",
               "pytensor": "(pytensor.grad; its base_compiledir is the cache)",
               "torch": "(torch.func.grad_and_value)"},
        **TOL),
]
