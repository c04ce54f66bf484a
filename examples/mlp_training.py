"""A multilayer perceptron (tanh hidden layer, softmax output) trained by SGD with
`lumen.value_and_grad`, one compiled step per minibatch, next to the same step in NumPy with a
hand-written backward pass."""
import time

import numpy as np

import lumen


def loss(params, x, y):
    h = np.tanh(x @ params["w1"] + params["b1"])
    return lumen.nn.crossentropy(h @ params["w2"] + params["b2"], y)


@lumen.jit
def sgd_step(params, x, y, lr):
    value, grads = lumen.value_and_grad(loss)(params, x, y)
    return value, {k: params[k] - lr * grads[k] for k in params}


def numpy_step(params, x, y, lr):
    """The same step with backpropagation written by hand."""
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
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
    grads = {"w2": h.T @ dz, "b2": dz.sum(0), "w1": x.T @ dh, "b1": dh.sum(0)}
    return value, {k: params[k] - lr * grads[k] for k in params}


def init(rng, sizes, dtype=np.float32):
    (n_in, n_hidden, n_out) = sizes
    return {"w1": (rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in)).astype(dtype),
            "b1": np.zeros(n_hidden, dtype),
            "w2": (rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden)).astype(dtype),
            "b2": np.zeros(n_out, dtype)}


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
