"""Binary stochastic neurons trained with the straight-through estimator (Bengio, Leonard and
Courville 2013, "Estimating or Propagating Gradients Through Stochastic Neurons for Conditional
Computation").

A classifier of scikit-learn's 8x8 digits whose hidden layer fires 0 or 1 at random: unit j is
on with probability p_j = sigmoid(a_j). The sample has no useful derivative (it is piecewise
constant), so the forward pass uses the sample and the backward pass the derivative of p_j:
``lumen.nn.straight_through(lumen.random.bernoulli(key, p), p)``. Each epoch is one compiled
call: the shuffle (``lumen.random.permutation``), the minibatches (a ``lumen.scan``), a fresh
key per step (``lumen.random.fold_in``) and the gradient all run in native code. For contrast
the same network is trained with the samples' true (zero) derivative, so that only the output
layer learns and the hidden layer stays a random projection.

Run: ``python examples/stochastic_neurons.py`` (scikit-learn provides the data; no download).
"""
import time

import numpy as np

import lumen
from lumen import nn, random


def load_digits(seed=0, test_fraction=0.2):
    """The 1797 8x8 digits scaled to [0, 1], split into train and test sets."""
    from sklearn.datasets import load_digits as sklearn_digits
    data = sklearn_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)
    order = random.permutation(random.key(seed), len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def init(seed, n_in=64, n_hidden=256, n_out=10):
    rng = np.random.default_rng(seed)
    return {"w1": (rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in)).astype(np.float32),
            "b1": np.zeros(n_hidden, np.float32),
            "w2": (rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden)).astype(np.float32),
            "b2": np.zeros(n_out, np.float32)}


def hidden(params, key, x, straight_through=True):
    """Sampled binary units; their derivative is sigmoid's (straight-through) or zero."""
    p = nn.sigmoid(x @ params["w1"] + params["b1"])
    h = random.bernoulli(key, p).astype(np.float32)
    return nn.straight_through(h, p) if straight_through else h


def loss(params, key, x, y, straight_through=True):
    h = hidden(params, key, x, straight_through)
    return nn.crossentropy(h @ params["w2"] + params["b2"], y)


def _epoch(params, key, x, y, lr, batch, straight_through):
    """One pass over (x, y) in a random order, minibatch SGD with momentum-free steps."""
    n_batches = x.shape[0] // batch
    order = random.permutation(random.fold_in(key, -1), x.shape[0])
    batches = np.reshape(order[:n_batches * batch], (n_batches, batch))

    def step(params, inputs):
        i, rows = inputs
        value, grads = lumen.value_and_grad(loss)(params, random.fold_in(key, i), x[rows], y[rows],
                                                  straight_through)
        return {k: params[k] - lr * grads[k] for k in params}, value

    params, losses = lumen.scan(step, params, (np.arange(n_batches), batches))
    return params, np.mean(losses)


train_epoch = lumen.jit(_epoch, static_argnums=(5, 6))


@lumen.jit
def predict(params, key, x, samples):
    """Class probabilities averaged over ``samples`` draws of the hidden units (a fresh key
    per draw; ``samples`` is an array whose length sets the count)."""
    def draw(total, i):
        h = hidden(params, random.fold_in(key, i), x)
        return total + nn.softmax(h @ params["w2"] + params["b2"]), None
    total, _ = lumen.scan(draw, np.zeros((x.shape[0], 10), np.float32), samples)
    return total / samples.shape[0]


def accuracy(params, key, x, y, samples=20):
    return float(np.mean(np.argmax(predict(params, key, x, np.arange(samples)), axis=1) == y))


def train(data, epochs=30, lr=1.0, batch=32, seed=0, straight_through=True):
    """-> (trained parameters, seconds per epoch after the first, which compiles)."""
    x_train, y_train, _, _ = data
    params, key = init(seed), random.key(seed)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        params, _ = train_epoch(params, random.fold_in(key, epoch), x_train, y_train,
                                np.float32(lr), batch, straight_through)
        times.append(time.perf_counter() - start)
    return params, float(np.mean(times[1:])) if epochs > 1 else times[0]


def main(epochs=30, seed=0):
    data = load_digits(seed)
    x_train, _, x_test, y_test = data
    results = {}
    for name, straight in (("straight-through", True), ("zero derivative", False)):
        params, per_epoch = train(data, epochs, seed=seed, straight_through=straight)
        acc = accuracy(params, random.key(seed + 1), x_test, y_test)
        results[name] = {"test_accuracy": acc, "seconds_per_epoch": per_epoch,
                         "examples_per_second": len(x_train) / per_epoch}
        print(f"{name:17s} test accuracy {acc:6.2%}   {per_epoch * 1e3:7.2f} ms/epoch   "
              f"{len(x_train) / per_epoch:9.0f} examples/s")
    return results


if __name__ == "__main__":
    main()
