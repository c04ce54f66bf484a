"""scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with the package: no
download), split once into fixed training and test sets, and the shuffled minibatches of an SGD
epoch — the data of examples/digits_mlp.py, for any example that trains on the digits."""
import numpy as np


def load(seed=0, test_fraction=0.2, dtype=np.float32):
    """(x_train, y_train, x_test, y_test): x rows of 64 pixels scaled from 0..16 to [0, 1], y
    labels 0..9. The rows are shuffled by ``seed`` before the split, so the split is fixed for a
    seed and both sets mix every class and writer (the split of examples/digits_cnn.py)."""
    from sklearn.datasets import load_digits      # scikit-learn: the `examples` extra
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    n_test = int(len(order) * test_fraction)
    x, y = (digits.data[order] / 16.0).astype(dtype), digits.target[order]
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def minibatches(rng, n, batch):
    """The index arrays of one epoch: a fresh permutation of range(n) cut into pieces of
    ``batch`` (the last one shorter when batch does not divide n)."""
    order = rng.permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]
