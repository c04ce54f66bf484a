"""A multilayer perceptron (tanh hidden layers, softmax output) trained by SGD with
`lumen.value_and_grad`, one compiled step per minibatch, next to the same step in NumPy with a
hand-written backward pass.

The parameters are a list of (W, b) layers, so the same `loss`, `sgd_step` and `predict` serve
any depth: one layer is logistic regression (examples/digits_mlp.py trains both)."""
import itertools
import time

import numpy as np

import lumen


def logits(layers, x):
    """tanh(x @ W + b) through every hidden layer, then the linear output layer."""
    *hidden, (w, b) = layers
    for wh, bh in hidden:
        x = np.tanh(x @ wh + bh)
    return x @ w + b


def loss(layers, x, y):
    return lumen.nn.crossentropy(logits(layers, x), y)


@lumen.jit
def sgd_step(layers, x, y, lr):
    value, grads = lumen.value_and_grad(loss)(layers, x, y)
    return value, [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(layers, grads)]


@lumen.jit
def predict(layers, x):
    return np.argmax(logits(layers, x), axis=1)


def numpy_step(layers, x, y, lr):
    """The same step for one hidden layer, with backpropagation written by hand."""
    (w1, b1), (w2, b2) = layers
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = x.shape[0]
    value = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    dh = (dz @ w2.T) * (1 - h * h)
    return value, [(w1 - lr * (x.T @ dh), b1 - lr * dh.sum(0)),
                   (w2 - lr * (h.T @ dz), b2 - lr * dz.sum(0))]


def init(rng, sizes, dtype=np.float32):
    """One (W, b) per pair of consecutive sizes: W normal with variance 1/fan_in, b zero."""
    return [((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype), np.zeros(n_out, dtype))
            for n_in, n_out in itertools.pairwise(sizes)]


def main(steps=200, batch=60, seed=0):
    rng = np.random.default_rng(seed)
    sizes = (784, 500, 10)
    centers = rng.standard_normal((10, 784)).astype(np.float32)
    y_all = rng.integers(0, 10, 6000)
    x_all = (centers[y_all] + 2.0 * rng.standard_normal((6000, 784))).astype(np.float32)
    results = {}
    for name, step in (("lumen", sgd_step), ("numpy", numpy_step)):
        params = init(np.random.default_rng(1), sizes)
        step(params, x_all[:batch], y_all[:batch], np.float32(0.01))       # compile / warm up
        start = time.perf_counter()
        for i in range(steps):
            j = (i * batch) % (len(x_all) - batch)
            value, params = step(params, x_all[j:j + batch], y_all[j:j + batch], np.float32(0.01))
        results[name] = (float(value), steps * batch / (time.perf_counter() - start))
    for name, (value, rate) in results.items():
        print(f"{name:6s} final loss {value:.4f}   {rate:10.0f} examples/s")
    print(f"lumen / NumPy speed: {results['lumen'][1] / results['numpy'][1]:.2f}x")
    return results


if __name__ == "__main__":
    main()
