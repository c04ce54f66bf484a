"""Logistic regression trained by SGD — the example of "Deep Learning on GPUs with Theano"
(2011), in plain NumPy:

    prediction = argmax(softmax(dot(x, w) + b))
    loss = -mean(log(softmax(dot(x, w) + b))[arange(y.shape[0]), y])

One compiled step returns the prediction and the loss and applies the SGD update. lumen
computes dot(x, w) once, stabilises log(softmax) into a max-shifted log-softmax, and removes
the softmax under argmax altogether (see the printed optimised IR).
"""
import time

import numpy as np

import lumen


def softmax(z):
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def loss(w, b, x, y):
    p = softmax(np.dot(x, w) + b)
    return -np.mean(np.log(p)[np.arange(y.shape[0]), y])


def predict(w, b, x):
    return np.argmax(softmax(np.dot(x, w) + b), axis=1)


@lumen.jit
def train_step(w, b, x, y, lr):
    value, (gw, gb) = lumen.value_and_grad(loss, argnums=(0, 1))(w, b, x, y)
    return predict(w, b, x), value, w - lr * gw, b - lr * gb


def synthetic_data(rng, n, n_in, n_classes):
    """Gaussian clusters, one per class, in n_in dimensions."""
    centers = rng.standard_normal((n_classes, n_in)) * 2.0
    y = rng.integers(0, n_classes, n)
    x = centers[y] + rng.standard_normal((n, n_in))
    return x, y


def main(epochs=30, batch=100, seed=0):
    rng = np.random.default_rng(seed)
    n_in, n_classes = 64, 10
    x, y = synthetic_data(rng, 5000, n_in, n_classes)
    x_test, y_test = x[4000:], y[4000:]
    x, y = x[:4000], y[:4000]
    w, b = np.zeros((n_in, n_classes)), np.zeros(n_classes)
    start = time.perf_counter()
    for epoch in range(epochs):
        for i in range(0, len(x), batch):
            _, value, w, b = train_step(w, b, x[i:i + batch], y[i:i + batch], 0.1)
    elapsed = time.perf_counter() - start
    accuracy = float(np.mean(lumen.jit(predict)(w, b, x_test) == y_test))
    steps = epochs * (len(x) // batch)
    print(f"logistic regression: final loss {float(value):.4f}, test accuracy {accuracy:.3f}, "
          f"{steps / elapsed:.0f} SGD steps/s")
    print(lumen.jit(predict).lower(w, b, x_test).optimized_ir())
    return accuracy


if __name__ == "__main__":
    main()
