"""examples/digits_mlp.py: logistic regression and the MLP trained by SGD on scikit-learn's 8x8
digits reach their test accuracy, and a lumen training epoch equals NumPy's hand-written one."""
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

from digits import load, minibatches  # noqa: E402
from digits_mlp import MODELS, accuracy, train  # noqa: E402
from mlp_training import init, numpy_step, sgd_step  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return load(seed=0)


def test_split_is_fixed_and_disjoint(data):
    x, y, x_test, y_test = data
    assert x.shape == (1438, 64) and x_test.shape == (359, 64) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    again = load(seed=0)
    np.testing.assert_array_equal(again[0], x)
    np.testing.assert_array_equal(again[3], y_test)
    assert set(np.unique(y_test)) == set(range(10))
    rows = {r.tobytes() for r in x}
    assert not any(r.tobytes() in rows for r in x_test)      # no test image is a training image


def test_minibatches_cover_the_epoch_once():
    idx = minibatches(np.random.default_rng(0), 23, 10)
    assert [len(i) for i in idx] == [10, 10, 3]
    np.testing.assert_array_equal(np.sort(np.concatenate(idx)), np.arange(23))


def test_lumen_epoch_matches_numpy_backprop(data):
    """One epoch of the compiled step against examples/mlp_training.py's hand-written NumPy
    backward pass, minibatch by minibatch (float32)."""
    x, y = data[0][:300], data[1][:300]
    start = init(np.random.default_rng(1), (64, 32, 10))
    ours = theirs = start
    lr = np.float32(0.1)
    for idx in minibatches(np.random.default_rng(2), len(x), 10):
        loss_ours, ours = sgd_step(ours, x[idx], y[idx], lr)
        loss_theirs, theirs = numpy_step(theirs, x[idx], y[idx], lr)
        np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for (w, b), (w_ref, b_ref) in zip(ours, theirs):
        np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)
    for (w, _), (w0, _) in zip(ours, start):
        assert np.abs(w - w0).max() > 0.05                  # the epoch did move every layer


def test_mlp_reaches_95_percent_and_logistic_regression_is_far_above_chance(data):
    x, y, x_test, y_test = data
    (_, lr_sizes, lr_rate), (_, mlp_sizes, mlp_rate) = MODELS
    logreg, _, _ = train(init(np.random.default_rng(0), lr_sizes), x, y, epochs=5, lr=lr_rate)
    mlp, _, epoch_s = train(init(np.random.default_rng(0), mlp_sizes), x, y, epochs=10, lr=mlp_rate)
    assert len(epoch_s) == 10
    assert accuracy(mlp, x_test, y_test) >= 0.95
    assert accuracy(logreg, x_test, y_test) >= 0.90              # chance is 0.10
