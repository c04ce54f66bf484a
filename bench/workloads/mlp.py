"""W3: one SGD training step of a multi-layer perceptron — the benchmark of "Theano: new features
and speed improvements" (Bastien et al., 2012): MNIST-sized inputs, tanh hidden layers, softmax
output, mean cross-entropy over the minibatch.

    h_0 = x;  h_k = tanh(h_{k-1} @ W_k + b_k)      for the hidden layers
    z = h_L @ W_out + b_out;  loss = mean_n(logsumexp(z_n) - z_n[y_n])
    W <- W - lr * dloss/dW                           for every W_k, b_k; lr = 0.01

Architectures 784 -> 10 (logistic regression), 784 -> 500 tanh -> 10 and
784 -> 1000 -> 1000 -> 1000 tanh -> 10, each at batch 1, 10 and 60: workload
``W3.<layer sizes>.b<batch>``, e.g. ``W3.784-500-10.b60``. One call = one step; inputs
``(x, y, W_1, b_1, ..., W_out, b_out)`` (x: float32[batch, 784] in [0, 1), y: int64[batch]
labels), result ``(loss, W_1', b_1', ..., W_out', b_out')``, every one checked against NumPy's.
Throughput: examples/s = batch / time per call.

float32, as in the paper. The check sees the gradients through ``W - lr * dW``: the largest change
of every parameter is >= ~90 times the tolerance, so a gradient ~1% wrong at its largest entries
fails, while its small entries are checked loosely (``python -m bench.workloads.mlp`` prints the
ratios, and checks the hand-written backward pass against finite differences in float64);
bench/workloads/rnn.py (W4) explains the trade-off.
"""
import itertools

import numpy as np

from ..harness import Workload

ARCHS = ((784, 10), (784, 500, 10), (784, 1000, 1000, 1000, 10))   # layer sizes, input to output
BATCHES = (1, 10, 60)
QUICK_IN, QUICK_HIDDEN = 64, 32  # --quick: 64 inputs, every hidden layer 32 wide, 10 classes
LR = np.float32(0.01)
DTYPE = np.float32
TOL = dict(rtol=1e-4, atol=1e-6)


def make_inputs(shape, dtype, rng):
    """shape = (batch, n_in, hidden..., n_out). x uniform in [0, 1) like MNIST's pixels; W_k
    normal with variance 1/fan_in; biases small and nonzero (so their use is checked too)."""
    batch, *sizes = shape
    x = rng.random((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], batch)
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        params.append((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype))
        params.append((0.1 * rng.standard_normal(n_out)).astype(dtype))
    return (x, y, *params)


# ---- NumPy: forward pass and hand-written back-propagation (the reference) ----------------------

def numpy_step(x, y, *params, xp=np):
    """``xp``: the array module (CuPy runs the same code on a GPU, workload G3)."""
    n = x.shape[0]
    ws, bs = params[0::2], params[1::2]
    hs = [x]                                          # every layer's input
    for w, b in zip(ws[:-1], bs[:-1]):
        hs.append(xp.tanh(hs[-1] @ w + b))
    z = hs[-1] @ ws[-1] + bs[-1]
    z = z - z.max(axis=1, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = xp.arange(n)
    loss = -xp.mean(z[rows, y] - xp.log(s[:, 0]))
    dz = e / s                                        # dloss/dz: (softmax - onehot) / n
    dz[rows, y] -= 1
    dz /= n
    new = []
    for k in range(len(ws) - 1, -1, -1):
        h = hs[k]
        new = [ws[k] - LR * (h.T @ dz), bs[k] - LR * dz.sum(axis=0)] + new
        if k:
            dz = (dz @ ws[k].T) * (1 - h * h)
    return (loss, *new)


# ---- lumen: lumen.value_and_grad of the loss, written as plain NumPy, under lumen.jit -----------

def mlp_loss(params, x, y):
    """The model as plain NumPy (a numerically stable log-softmax)."""
    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k < n_layers - 1:
            h = np.tanh(h)
    z = h - h.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(x.shape[0]), y])


def lumen_step(x, y, *params):
    import lumen
    loss, grads = lumen.value_and_grad(mlp_loss)(params, x, y)
    return (loss, *(p - LR * g for p, g in zip(params, grads)))


def _lumen(inputs):
    import lumen
    return lumen.jit(lumen_step)


# ---- jax: jax.value_and_grad (the adapter applies jax.jit) --------------------------------------

def _jax(inputs):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        h = x
        n_layers = len(params) // 2
        for k in range(n_layers):
            h = h @ params[2 * k] + params[2 * k + 1]
            if k < n_layers - 1:
                h = jnp.tanh(h)
        logp = h - jax.nn.logsumexp(h, axis=1, keepdims=True)
        return -jnp.mean(logp[jnp.arange(x.shape[0]), y])

    def step(x, y, *params):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return (loss, *(p - LR * g for p, g in zip(params, grads)))
    return step


# ---- pytensor: pytensor.grad, a function returning the new parameters -------------------------

def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    x = pt.matrix("x", dtype=DTYPE)
    y = pt.vector("y", dtype=inputs[1].dtype)
    params = [(pt.matrix if p.ndim == 2 else pt.vector)(f"p{k}", dtype=DTYPE)
              for k, p in enumerate(inputs[2:])]
    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k < n_layers - 1:
            h = pt.tanh(h)
    logp = h - pt.logsumexp(h, axis=1, keepdims=True)
    loss = -logp[pt.arange(y.shape[0]), y].mean()
    grads = pytensor.grad(loss, params)
    return pytensor.function([x, y, *params], [loss] + [p - LR * g for p, g in zip(params, grads)])


# ---- numba: the hand-written backward pass under @njit ------------------------------------------

def _numba(inputs):
    import numba

    # no parallel=True: its array analysis wrongly asserts at run time that dz keeps its shape
    # from one layer to the next ("Sizes of ... do not match")
    @numba.njit(fastmath=False)
    def kernel(x, y, ws, bs):
        """ws, bs: tuples of the weights and the biases (each tuple homogeneous, so it can be
        indexed with a loop variable). Returns the loss and the new parameters, last layer first."""
        n = x.shape[0]
        n_layers = len(ws)
        hs = [x]
        for k in range(n_layers - 1):
            hs.append(np.tanh(hs[k] @ ws[k] + bs[k]))
        z = hs[n_layers - 1] @ ws[n_layers - 1] + bs[n_layers - 1]
        dz = np.empty_like(z)
        loss = 0.0
        for i in range(n):                            # numba takes one advanced index only
            zi = z[i] - z[i].max()
            e = np.exp(zi)
            s = e.sum()
            loss -= zi[y[i]] - np.log(s)
            dz[i] = e / s
            dz[i, y[i]] -= 1
        dz /= n
        new_ws, new_bs = [], []
        for k in range(n_layers - 1, -1, -1):
            h = hs[k]
            new_ws.append(ws[k] - LR * (h.T @ dz))
            new_bs.append(bs[k] - LR * dz.sum(axis=0))
            if k:
                dz = (dz @ ws[k].T) * (1 - h * h)
        return np.float32(loss / n), new_ws, new_bs

    def step(x, y, *params):
        loss, new_ws, new_bs = kernel(x, y, params[0::2], params[1::2])
        out = [loss]
        for w, b in zip(new_ws[::-1], new_bs[::-1]):
            out += (w, b)
        return tuple(out)
    return step


# ---- torch: eager autograd --------------------------------------------------------------------

def _torch(inputs):
    import torch
    lr = float(LR)

    def step(x, y, *params):
        params = [p.detach().requires_grad_() for p in params]
        h = x
        n_layers = len(params) // 2
        for k in range(n_layers):
            h = h @ params[2 * k] + params[2 * k + 1]
            if k < n_layers - 1:
                h = torch.tanh(h)
        loss = torch.nn.functional.cross_entropy(h, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            return (loss.detach(), *(p - lr * g for p, g in zip(params, grads)))
    return step


# ---- the workloads ----------------------------------------------------------------------------

class MlpWorkload(Workload):
    """A Workload whose description names its actual inputs (several arrays of different shapes)."""

    def describe(self, quick: bool) -> str:
        batch, *sizes = self.quick_shape if quick else self.shape
        arch = " -> ".join(map(str, sizes[:-1])) + f" tanh -> {sizes[-1]}" if len(sizes) > 2 \
            else f"{sizes[0]} -> {sizes[1]} (logistic regression)"
        return (f"MLP training step {arch}, batch {batch}, {np.dtype(self.dtype).name}, softmax "
                f"cross-entropy (mean), SGD lr {float(LR):g}; x ({batch} x {sizes[0]}), y (int64, {batch}), "
                f"W, b for each of {len(sizes) - 1} layer(s); returns loss and the "
                f"{2 * (len(sizes) - 1)} updated parameters; examples/s = {batch} / time")


NOTES = {
    "numpy": "(hand-written backprop)",
    "lumen": "(lumen.jit of lumen.value_and_grad; the loss in plain NumPy)",
    "numba": "(here: plain njit, no parallel=True — its array analysis rejects the backward "
             "loop; the hand-written backprop, @ via BLAS)",
    "jax": "(jax.value_and_grad)",
    "pytensor": "(pytensor.grad, returns new params)",
    "torch": "(autograd)",
}


def _name(sizes, batch):
    return f"W3.{'-'.join(map(str, sizes))}.b{batch}"


def _quick(sizes, batch):
    return (batch, QUICK_IN, *[QUICK_HIDDEN] * (len(sizes) - 2), sizes[-1])


WORKLOADS = [
    MlpWorkload(
        name=_name(sizes, batch), family="mlp",
        expr="h = tanh(h @ W + b) per hidden layer; loss = mean softmax cross-entropy; SGD step",
        dtype=DTYPE, shape=(batch, *sizes), quick_shape=_quick(sizes, batch),
        n_inputs=2 + 2 * (len(sizes) - 1), reference=numpy_step, make_inputs=make_inputs,
        chain_from=2,
        bytes_moved=None,
        impls={"lumen": _lumen, "numba": _numba, "jax": _jax, "pytensor": _pytensor, "torch": _torch},
        notes=NOTES, **TOL)
    for sizes in ARCHS for batch in BATCHES
]


# ---- checking the check -----------------------------------------------------------------------

def _check(sizes=(784, 500, 10), batch=10, seed=0):
    """The hand-written backward pass against central finite differences (float64), and how much
    the float32 check constrains each gradient: max |lr*dW| / tolerance per parameter (a gradient
    relatively off by e changes the result by e times that, so e.g. 100 means that a gradient
    1% wrong at its largest entries still just passes). ``python -m bench.workloads.mlp``."""
    x, y, *params = make_inputs((batch, *sizes), np.float64, np.random.default_rng(seed))
    _, *new = numpy_step(x, y, *params)
    grads = [(p - n) / float(LR) for p, n in zip(params, new)]
    rng = np.random.default_rng(1)
    for k, g in enumerate(grads):
        d = rng.standard_normal(g.shape)
        eps = 1e-6
        plus = [p + eps * d if i == k else p for i, p in enumerate(params)]
        minus = [p - eps * d if i == k else p for i, p in enumerate(params)]
        fd = (numpy_step(x, y, *plus)[0] - numpy_step(x, y, *minus)[0]) / (2 * eps)
        an = float(np.sum(g * d))
        print(f"  {'Wb'[k % 2]}{k // 2 + 1}: finite differences {fd:.10g}, backprop {an:.10g} "
              f"(rel. diff {abs(fd - an) / abs(an):.1e})")
    x, y, *params = make_inputs((batch, *sizes), DTYPE, np.random.default_rng(seed))
    _, *new = numpy_step(x, y, *params)
    ratios = [float(np.max(np.abs(n - p) / (TOL["atol"] + TOL["rtol"] * np.abs(n))))
              for p, n in zip(params, new)]
    print(f"  float32, rtol {TOL['rtol']:g}, atol {TOL['atol']:g}: max |lr*dW| / tolerance = "
          + ", ".join(f"{'Wb'[k % 2]}{k // 2 + 1} {r:.3g}" for k, r in enumerate(ratios)))


if __name__ == "__main__":
    for sizes in ARCHS:
        for batch in BATCHES:
            print(_name(sizes, batch))
            _check(sizes, batch)
