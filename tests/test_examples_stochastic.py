"""examples/stochastic_neurons.py, shortened: binary stochastic hidden units trained with the
straight-through estimator classify the digits; with the samples' own (zero) derivative the
hidden layer gets no gradient at all."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import lumen
from lumen import random

pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "stochastic_neurons", os.path.join(ROOT, "examples", "stochastic_neurons.py"))
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def test_straight_through_trains_the_binary_hidden_layer():
    data = example.load_digits(seed=0)
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
    params, seconds_per_epoch = example.train(data, epochs=10, seed=0)
    assert seconds_per_epoch > 0
    assert example.accuracy(params, random.key(1), x_test, y_test) >= 0.9
    h = np.asarray(example.hidden(params, random.key(2), x_test))
    assert set(np.unique(h)) == {0.0, 1.0}


def test_only_the_estimator_gives_the_hidden_layer_a_gradient():
    params, k = example.init(0), random.key(3)
    x, y = np.random.default_rng(0).random((16, 64), np.float32), np.arange(16) % 10

    def grads(straight):
        return lumen.grad(lambda p: example.loss(p, k, x, y, straight))(params)

    st, zero = grads(True), grads(False)
    assert np.abs(st["w1"]).max() > 1e-4
    np.testing.assert_array_equal(zero["w1"], 0)
    np.testing.assert_array_equal(zero["w2"], st["w2"])     # the same samples either way
