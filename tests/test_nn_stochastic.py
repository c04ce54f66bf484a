"""`lumen.nn.dropout` and `lumen.nn.straight_through`.

Dropout keeps exactly the elements whose uniform number (same key, same shape, x's dtype) is
at least ``rate`` and scales them by 1 / (1 - rate), eagerly and compiled; its gradient w.r.t.
x at a fixed key passes finite differences. The straight-through estimator's value is exactly
``hard`` and its derivatives (grad, rop, lop) are those of ``soft``.
"""
from __future__ import annotations

import numpy as np
import pytest

import lumen
from lumen import nn, random

from .oracle import assert_same


def numpy_dropout(key, x, rate):
    keep = np.asarray(random.uniform(key, x.shape, x.dtype)) >= rate
    return np.where(keep, x * (1 / (1 - rate)), 0).astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keeps_the_elements_its_uniforms_keep(dtype, shape, rate):
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    k = random.key(11)
    expected = numpy_dropout(k, x, rate)
    assert_same(nn.dropout(k, x, rate), expected)
    assert_same(lumen.jit(nn.dropout, static_argnums=2)(k, x, rate), expected)


def test_dropout_keeps_one_minus_rate_and_preserves_the_mean():
    x = np.ones(200_000, np.float32)
    out = lumen.jit(lambda k, x: nn.dropout(k, x, 0.3))(random.key(5), x)
    kept = np.count_nonzero(out) / x.size
    sd = np.sqrt(0.3 * 0.7 / x.size)
    assert abs(kept - 0.7) < 5 * sd
    assert set(np.unique(out)) == {np.float32(0), np.float32(1) / np.float32(0.7)}
    assert abs(out.mean() - 1.0) < 5 * sd / 0.7


def test_dropout_differs_by_key_and_repeats_with_the_same_key():
    x = np.ones(1000)
    f = lumen.jit(lambda k, x: nn.dropout(k, x, 0.5))
    a, b = random.split(random.key(0))
    np.testing.assert_array_equal(f(a, x), f(a, x))
    assert np.count_nonzero(f(a, x) != f(b, x)) > 300


def test_dropout_batch_size_does_not_recompile():
    f = lumen.jit(lambda k, x: nn.dropout(k, x, 0.25))
    k = random.key(3)
    for n in (4, 9, 33):
        x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
        np.testing.assert_array_equal(f(k, x), numpy_dropout(k, x, 0.25))
    assert f.cache_info()["compiles"] == 1


def test_dropout_rate_zero_is_the_identity():
    x = np.arange(5.0)
    assert nn.dropout(random.key(0), x, 0.0) is x
    np.testing.assert_array_equal(lumen.jit(lambda k, x: nn.dropout(k, x, 0))(random.key(0), x), x)


def test_dropout_gradient_with_a_fixed_key():
    k = random.key(7)
    x = np.linspace(-2.0, 2.0, 24).reshape(4, 6)
    lumen.check_grad(lambda x: nn.dropout(k, x, 0.4) ** 2, (x,))
    g = lumen.grad(lambda x: np.sum(nn.dropout(k, x, 0.4)))(x)
    np.testing.assert_allclose(g, (numpy_dropout(k, np.ones_like(x), 0.4)), rtol=1e-15)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None, float("nan")])
def test_dropout_rejects_a_bad_rate(rate):
    with pytest.raises(ValueError, match="dropout: rate must be a number in \\[0, 1\\)"):
        nn.dropout(random.key(0), np.ones(3), rate)


def test_dropout_rejects_integer_x():
    with pytest.raises(TypeError, match="dropout: x must be a floating-point array, got int64"):
        nn.dropout(random.key(0), np.arange(3), 0.5)


def test_dropout_rejects_a_bad_key():
    with pytest.raises(TypeError, match="key must be a uint32 array of shape \\(2,\\)"):
        nn.dropout(np.array([1, 2]), np.ones(3), 0.5)


# -- straight-through ---------------------------------------------------------------------------

def soft_unit(a):
    return nn.sigmoid(a)


def hard_unit(a):
    return (nn.sigmoid(a) > 0.5).astype(a.dtype)


def straight(a):
    return nn.straight_through(hard_unit(a), soft_unit(a))


A = np.array([[-1.5, 0.25, 2.0], [-0.2, 0.7, -3.0]])
WEIGHTS = np.array([[1.0, -2.0, 0.5], [3.0, 1.5, -1.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_straight_through_value_is_exactly_hard(dtype):
    a = A.astype(dtype)
    expected = (1 / (1 + np.exp(-a)) > 0.5).astype(dtype)
    for got in (straight(a), lumen.jit(straight)(a)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected, strict=True)


def test_straight_through_value_stays_hard_where_soft_is_infinite():
    hard = np.array([1.0, 0.0, 1.0])
    f = lumen.jit(lambda h, s: nn.straight_through(h, s))
    np.testing.assert_array_equal(f(hard, np.array([np.inf, -np.inf, np.nan])), hard)


def test_straight_through_derivatives_are_those_of_soft():
    loss_st = lambda a: np.sum(WEIGHTS * straight(a))
    loss_soft = lambda a: np.sum(WEIGHTS * soft_unit(a))
    s = 1 / (1 + np.exp(-A))
    np.testing.assert_allclose(lumen.grad(loss_st)(A), WEIGHTS * s * (1 - s), rtol=1e-14)
    np.testing.assert_allclose(lumen.grad(loss_st)(A), lumen.grad(loss_soft)(A), rtol=1e-15)
    v = np.random.default_rng(1).normal(size=A.shape)
    np.testing.assert_allclose(lumen.rop(straight, (A,), (v,)), lumen.rop(soft_unit, (A,), (v,)),
                               rtol=1e-15)
    np.testing.assert_allclose(lumen.lop(straight, (A,), v)[0], lumen.lop(soft_unit, (A,), v)[0],
                               rtol=1e-15)
    # and the soft path's derivative itself is right (finite differences)
    lumen.check_grad(soft_unit, (A,))


def test_straight_through_bernoulli_unit():
    """A sampled binary unit h ~ Bernoulli(sigmoid(a)): values in {0, 1}, gradient sigmoid'."""
    k = random.key(2)

    def unit(a):
        p = nn.sigmoid(a)
        return nn.straight_through(random.bernoulli(k, p), p)

    a = np.linspace(-3, 3, 50)
    h = lumen.jit(unit)(a)
    np.testing.assert_array_equal(h, np.asarray(random.bernoulli(k, 1 / (1 + np.exp(-a)))))
    s = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(lumen.grad(lambda a: np.sum(unit(a)))(a), s * (1 - s), rtol=1e-14)
