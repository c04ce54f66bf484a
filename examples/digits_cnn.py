"""A small convolutional network on scikit-learn's bundled 8x8 digits (no download):
conv 3x3, 8 channels, padding 1 -> relu -> 2x2 max-pool -> dense -> softmax, trained by
minibatch SGD with `lumen.value_and_grad` inside one jitted step. Prints the test accuracy
and the training speed (examples/s, seconds per epoch).

    python examples/digits_cnn.py [--epochs N]
"""
import argparse
import time

import numpy as np

import lumen
from digits import load as load_rows


def predict(params, x):
    """Class scores for images ``x`` (N, 1, 8, 8)."""
    h = lumen.nn.relu(lumen.nn.conv2d(x, params["conv_w"], params["conv_b"], padding=1))
    h = lumen.nn.max_pool2d(h, 2)                                  # (N, 8, 4, 4)
    return np.reshape(h, (h.shape[0], -1)) @ params["w"] + params["b"]


def loss(params, x, y):
    return lumen.nn.crossentropy(predict(params, x), y)


@lumen.jit
def sgd_step(params, x, y, lr):
    value, grads = lumen.value_and_grad(loss)(params, x, y)
    return value, {k: params[k] - lr * grads[k] for k in params}


@lumen.jit
def accuracy(params, x, y):
    return np.mean(np.argmax(predict(params, x), axis=1) == y)


def init(rng, channels=8, classes=10, dtype=np.float32):
    fan_in = 9
    return {"conv_w": (rng.standard_normal((channels, 1, 3, 3)) * np.sqrt(2 / fan_in)).astype(dtype),
            "conv_b": np.zeros(channels, dtype),
            "w": (rng.standard_normal((channels * 16, classes)) / np.sqrt(channels * 16)).astype(dtype),
            "b": np.zeros(classes, dtype)}


def load(seed=0, test_fraction=0.2, dtype=np.float32):
    """The digits and split of examples/digits.py, as (N, 1, 8, 8) images."""
    x_train, y_train, x_test, y_test = load_rows(seed, test_fraction, dtype)
    return ((x_train.reshape(-1, 1, 8, 8), y_train.astype(np.int64)),
            (x_test.reshape(-1, 1, 8, 8), y_test.astype(np.int64)))


def train(epochs=30, batch=32, lr=0.1, seed=0, verbose=True):
    """Trains from scratch; returns (test accuracy, examples/s, seconds per epoch)."""
    (x_train, y_train), (x_test, y_test) = load(seed)
    rng = np.random.default_rng(seed)
    params = init(rng)
    lr = np.float32(lr)
    start = time.perf_counter()
    sgd_step(params, x_train[:batch], y_train[:batch], lr)                # compile
    compile_s = time.perf_counter() - start
    steps = len(y_train) // batch
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            value, params = sgd_step(params, x_train[idx], y_train[idx], lr)
        if verbose and (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {float(value):.4f}  "
                  f"test accuracy {float(accuracy(params, x_test, y_test)):.4f}")
    elapsed = time.perf_counter() - start
    acc = float(accuracy(params, x_test, y_test))
    rate = epochs * steps * batch / elapsed
    if verbose:
        print(f"test accuracy {acc:.4f} ({len(y_test)} held-out digits)")
        print(f"{rate:.0f} examples/s, {elapsed / epochs:.3f} s per epoch "
              f"(compile {compile_s:.1f} s)")
    return acc, rate, elapsed / epochs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    train(parser.parse_args().epochs)
