"""``donate_argnums`` (SPEC §1): results computed elementwise from a donated argument are
written over it and returned as that array; the values always equal NumPy's on copies of the
arguments, whether the memory could be reused (writeable, shared with no other argument, no view
of it still to be read) or not."""
from __future__ import annotations

import numpy as np
import pytest

import lumen

from .oracle import assert_same

LR = 0.1


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def sgd(w, g):
    return w - LR * g, (g * g).sum()


def expected(fn, *args):
    return fn(*[np.array(a, copy=True) for a in args])


def test_a_donated_parameter_is_updated_in_place():
    w, g = rand(30, 20), rand(30, 20, seed=1)
    want = expected(sgd, w, g)
    g_before = g.copy()
    new, norm = lumen.jit(sgd, donate_argnums=0)(w, g)
    assert new is w
    assert_same(new, want[0])
    assert_same(norm, want[1])
    np.testing.assert_array_equal(g, g_before)      # not donated: untouched


def test_without_donation_arguments_are_untouched():
    w, g = rand(30, 20), rand(30, 20, seed=1)
    before = w.copy()
    new, _ = lumen.jit(sgd)(w, g)
    assert new is not w and not np.shares_memory(new, w)
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("case", ["read-only", "same array twice", "overlapping view"])
def test_memory_that_may_not_be_reused_keeps_its_values(case):
    w = rand(16, 16)
    before = w.copy()
    if case == "read-only":
        w.flags.writeable = False
        g = rand(16, 16, seed=1)
    elif case == "same array twice":
        g = w
    else:
        g = w[::-1]                                  # the same memory, read in another order
    want = expected(sgd, w, g)
    new, norm = lumen.jit(sgd, donate_argnums=0)(w, g)
    assert new is not w and not np.shares_memory(new, w)
    np.testing.assert_array_equal(w, before)
    assert_same(new, want[0])
    assert_same(norm, want[1])


def test_a_view_still_to_be_read_keeps_the_update_out_of_place():
    """``w - w.T``: the kernel reads w through its transpose, so writing over w as it goes
    would read updated elements."""
    def fn(w):
        return w - LR * w.T
    w = rand(12, 12)
    want = expected(fn, w)
    assert_same(lumen.jit(fn, donate_argnums=0)(w), want)


def test_an_argument_read_after_its_update_is_not_overwritten_early():
    def fn(w, g):
        new = w - LR * g
        return new, (w * new).sum()                 # w is read after new is made
    w, g = rand(40, 30), rand(40, 30, seed=1)
    want = expected(fn, w, g)
    got = lumen.jit(fn, donate_argnums=0)(w, g)
    for a, b in zip(got, want):
        assert_same(a, b)


@pytest.mark.parametrize("batch", [1, 10])
def test_mlp_step_updates_every_parameter_in_place(batch):
    """At batch 1 the weight updates are elementwise kernels (and `kernel_matvec`), the bias
    updates reductions whose epilogue reads the bias; at batch 10 the weight updates are gemms
    adding to the weights (``W - lr * x.T @ d``)."""
    def loss(params, x, y):
        w1, b1, w2, b2 = params
        z = np.tanh(x @ w1 + b1) @ w2 + b2
        z = z - z.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(x.shape[0]), y])

    def step(params, x, y):
        grads = lumen.grad(loss)(params, x, y)
        return tuple(p - np.float32(LR) * g for p, g in zip(params, grads))
    params = (rand(20, 16, dtype=np.float32), rand(16, dtype=np.float32, seed=1),
              rand(16, 4, dtype=np.float32, seed=2), rand(4, dtype=np.float32, seed=3))
    x, y = rand(batch, 20, dtype=np.float32, seed=4), np.arange(batch) % 4
    want = lumen.jit(step)(params, x, y)
    got = lumen.jit(step, donate_argnums=0)(params, x, y)
    assert all(g is p for g, p in zip(got, params))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_negative_indices_count_from_the_last_argument():
    def fn(*arrays):
        return tuple(a + 1.0 for a in arrays)
    a, b = rand(5), rand(5, seed=1)
    got = lumen.jit(fn, donate_argnums=-1)(a, b)
    assert got[1] is b and got[0] is not a


def test_python_scalars_and_debug_mode_are_left_alone():
    w = rand(8)
    assert lumen.jit(lambda w, s: (w * s, s + 1.0), donate_argnums=(0, 1))(w, 2.0)[0] is w
    v = rand(8)
    before = v.copy()
    new = lumen.jit(lambda v: v * 2.0, donate_argnums=0, debug=True)(v)
    assert new is not v
    np.testing.assert_array_equal(v, before)
