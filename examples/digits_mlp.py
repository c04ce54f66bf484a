"""Logistic regression and the multilayer perceptron of "Theano: new features and speed
improvements" (Bastien et al., 2012), there 784 -> 10 and 784 -> 500 tanh -> 10 on MNIST, here
64 -> 10 and 64 -> 500 tanh -> 10 on scikit-learn's bundled 8x8 digits (examples/digits.py: a
fixed 80/20 split, 1438 training and 359 test images). Both are trained by minibatch SGD on the mean
softmax cross-entropy, one compiled `lumen.value_and_grad` step per minibatch of 10 (the paper's
minibatch size) — examples/mlp_training.py's `sgd_step`; logistic regression is the same model
without a hidden layer.

    python examples/digits_mlp.py      # test accuracy, time per epoch, examples/s of each model
"""
import time

import numpy as np

from digits import load, minibatches
from mlp_training import init, predict, sgd_step

#: (name, layer sizes, learning rate); both at minibatch size BATCH for EPOCHS epochs
MODELS = (("logistic regression", (64, 10), 0.3),
          ("MLP", (64, 500, 10), 0.1))
BATCH, EPOCHS = 10, 20


def train(layers, x, y, epochs=EPOCHS, batch=BATCH, lr=0.1, seed=0):
    """SGD over freshly shuffled minibatches each epoch. Returns the trained layers, the seconds
    of the first call (tracing and compiling) and the seconds of each epoch."""
    rng = np.random.default_rng(seed)
    lr = np.float32(lr)
    start = time.perf_counter()
    sgd_step(layers, x[:batch], y[:batch], lr)          # compiles; its result is not used
    compile_s = time.perf_counter() - start
    epoch_s = []
    for _ in range(epochs):
        start = time.perf_counter()
        for idx in minibatches(rng, len(x), batch):
            _, layers = sgd_step(layers, x[idx], y[idx], lr)
        epoch_s.append(time.perf_counter() - start)
    return layers, compile_s, epoch_s


def accuracy(layers, x, y):
    return float(np.mean(predict(layers, x) == y))


def main(epochs=EPOCHS, batch=BATCH, seed=0):
    x, y, x_test, y_test = load(seed)
    results = {}
    for name, sizes, lr in MODELS:
        layers = init(np.random.default_rng(seed), sizes)
        layers, compile_s, epoch_s = train(layers, x, y, epochs, batch, lr, seed)
        acc = accuracy(layers, x_test, y_test)
        per_epoch = float(np.median(epoch_s))
        print(f"{name:20s} {' -> '.join(map(str, sizes)):14s} test accuracy {acc:.3f}   "
              f"{per_epoch * 1e3:6.1f} ms/epoch   {len(x) / per_epoch:8.0f} examples/s   "
              f"(compile {compile_s:.2f} s; {epochs} epochs, minibatch {batch}, lr {lr})")
        results[name] = acc
    return results


if __name__ == "__main__":
    main()
