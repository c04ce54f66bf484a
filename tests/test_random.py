"""`lumen.random`: Philox-4x32-10 keys and the distributions built on them.

The block function reproduces Random123's published known answers; derived keys are distinct
and their streams uncorrelated; the distributions pass moment bounds and Kolmogorov-Smirnov
tests at fixed seeds; results are bitwise the same eagerly and compiled, on 1 and 2 threads,
inside ``scan`` with per-step keys, and in the GPU kernels (PTX accepted by ptxas, run by the
emulator); ``np.random`` inside a traced function is refused with a pointer to lumen.random.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.stats as st

import lumen
from lumen import random
from lumen.codegen_llvm import symbols
from lumen.codegen_llvm.parallel import THRESHOLD

from .test_ptx import assemble, emulated_gpu  # noqa: F401  (emulated_gpu is a fixture)

# Random123 1.14, tests/kat_vectors (github.com/DEShawResearch/random123), the three
# "philox4x32 10" lines: counter (4 words), key (2 words), expected output (4 words).
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff),
     (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]
FLOATS = [np.float32, np.float64]
PHILOX = lumen.jit(random.philox4x32)


def u32(words):
    return np.array(words, np.uint32)


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers(counter, key, expected):
    np.testing.assert_array_equal(random.philox4x32(u32(counter), u32(key)), u32(expected))
    got = PHILOX(u32([counter, counter]), u32(key))
    np.testing.assert_array_equal(got, u32([expected, expected]), strict=True)


# -- keys ---------------------------------------------------------------------------------------

def test_key_words():
    np.testing.assert_array_equal(random.key(0), u32([0, 0]), strict=True)
    np.testing.assert_array_equal(random.key(2**40 + 7), u32([7, 256]))
    np.testing.assert_array_equal(random.key(-1), u32([0xffffffff, 0xffffffff]))
    np.testing.assert_array_equal(random.key(np.int32(5)), random.key(5))
    np.testing.assert_array_equal(lumen.jit(random.key)(np.int64(2**40 + 7)), random.key(2**40 + 7))


@pytest.mark.parametrize("seed, error, message", [
    (1.5, TypeError, "seed must be an int, got float"), (True, TypeError, "got bool"),
    (2**64, ValueError, "does not fit in 64 bits"), (-2**63 - 1, ValueError, "64 bits")])
def test_key_rejects_bad_seeds(seed, error, message):
    with pytest.raises(error, match=message):
        random.key(seed)


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.zeros(3, np.uint32), 7])
def test_functions_reject_what_is_not_a_key(bad):
    with pytest.raises(TypeError, match="key must be a uint32 array of shape \\(2,\\)"):
        random.uniform(bad, (3,))


def test_split_and_fold_in_make_distinct_independent_keys():
    k = random.key(123)
    children = random.split(k, 1000)
    assert children.shape == (1000, 2) and children.dtype == np.uint32
    folded = np.stack([random.fold_in(k, i) for i in range(1000)])
    every = np.concatenate([children, folded, k[None]])
    assert len({tuple(w) for w in every}) == len(every)
    np.testing.assert_array_equal(random.split(k, 3), random.split(k, 5)[:3])
    np.testing.assert_array_equal(random.split(k, 0), np.zeros((0, 2), np.uint32))
    # streams of the parent, two children and two folded keys are uncorrelated
    streams = np.stack([random.uniform(s, (20000,)) for s in
                        [k, children[0], children[1], folded[0], folded[1]]])
    corr = np.corrcoef(streams)
    assert np.abs(corr[np.triu_indices(5, 1)]).max() < 5 / np.sqrt(20000)


def test_fold_in_takes_negative_and_64_bit_data():
    k = random.key(9)
    np.testing.assert_array_equal(random.fold_in(k, -1), random.fold_in(k, 2**64 - 1))
    np.testing.assert_array_equal(random.fold_in(k, np.array(5)), random.fold_in(k, 5))
    assert not np.array_equal(random.fold_in(k, 2**32), random.fold_in(k, 0))
    with pytest.raises(TypeError, match="fold_in: data must be an int, got float"):
        random.fold_in(k, 1.0)


def test_split_rejects_a_negative_count():
    with pytest.raises(ValueError, match="split: num must be >= 0, got -1"):
        random.split(random.key(0), -1)


# -- distributions ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_uniform_distribution(dtype):
    x = random.uniform(random.key(1), (50_000,), dtype)
    assert x.dtype == dtype and x.shape == (50_000,)
    assert x.min() >= 0 and x.max() < 1
    sd = np.sqrt(1 / 12 / x.size)
    assert abs(x.mean() - 0.5) < 5 * sd
    assert abs(x.var() - 1 / 12) < 0.005
    assert st.kstest(x, "uniform").pvalue > 1e-3
    bits = 24 if dtype == np.float32 else 53
    scaled = x.astype(np.float64) * 2.0 ** bits
    np.testing.assert_array_equal(scaled, np.floor(scaled))     # multiples of 2**-bits
    if dtype == np.float64:                                      # and it uses all 53 of them
        assert np.any(scaled % 2 ** 29 != 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_uniform_bounds(dtype):
    x = random.uniform(random.key(2), (4000, 2), dtype, minval=-3.0, maxval=np.array([1.0, 5.0]))
    assert x.dtype == dtype and x.shape == (4000, 2)
    assert (x >= -3).all() and (x[:, 0] < 1).all() and (x[:, 1] < 5).all()
    assert st.kstest(x[:, 1], "uniform", args=(-3, 8)).pvalue > 1e-3
    # the open end holds when rounding would reach maxval
    tiny = random.uniform(random.key(3), (20000,), dtype, minval=1.0, maxval=1.0 + 4 * np.finfo(dtype).eps)
    assert tiny.max() < dtype(1.0 + 4 * np.finfo(dtype).eps)


def test_uniform_rejects_bad_arguments():
    k = random.key(0)
    with pytest.raises(ValueError, match="need minval < maxval"):
        random.uniform(k, (3,), minval=2.0, maxval=1.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        random.uniform(k, (3,), np.int32)
    with pytest.raises(ValueError, match="negative size"):
        random.uniform(k, (2, -1))
    with pytest.raises(TypeError, match="maxval must be a concrete number"):
        lumen.jit(lambda m: random.uniform(k, (3,), maxval=m))(np.float64(2))


@pytest.mark.parametrize("dtype", FLOATS)
def test_normal_distribution(dtype):
    x = random.normal(random.key(4), (50_000,), dtype)
    assert x.dtype == dtype and np.isfinite(x).all()
    assert abs(x.mean()) < 5 / np.sqrt(x.size)
    assert abs(x.var() - 1) < 0.03
    assert st.kstest(x, "norm").pvalue > 1e-3


def test_bernoulli_distribution():
    k = random.key(5)
    for p in (0.0, 0.1, 0.5, 0.93, 1.0):
        b = random.bernoulli(k, p, (20000,))
        assert b.dtype == np.bool_
        assert abs(b.mean() - p) <= 5 * np.sqrt(p * (1 - p) / b.size)
    p = np.array([[0.2], [0.8]], np.float32)
    b = random.bernoulli(k, p, (2, 20000))
    np.testing.assert_allclose(b.mean(1), [0.2, 0.8], atol=0.015)
    np.testing.assert_array_equal(random.bernoulli(k, p), random.uniform(k, (2, 1), np.float32) < p)
    for bad in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match="p must lie in \\[0, 1\\]"):
            random.bernoulli(k, bad)


def test_permutation_is_uniform():
    """Where index 0 lands over 3000 keys: each of 6 places about as often (chi-square)."""
    perm = lumen.jit(lambda k, x: random.permutation(k, x))
    x = np.arange(6)
    counts = np.zeros(6)
    for k in random.split(random.key(6), 3000):
        p = perm(k, x)
        np.testing.assert_array_equal(np.sort(p), x)
        counts[np.argmax(p == 0)] += 1
    assert st.chisquare(counts).pvalue > 1e-3
    assert perm.cache_info()["compiles"] == 1


def test_permutation_of_an_int_and_of_rows():
    k = random.key(7)
    p = random.permutation(k, 1000)
    assert p.dtype == np.int64
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    assert np.count_nonzero(p == np.arange(1000)) < 10
    rows = np.arange(30.0).reshape(10, 3)
    shuffled = random.permutation(k, rows)
    np.testing.assert_array_equal(shuffled, rows[random.permutation(k, 10)])
    np.testing.assert_array_equal(random.permutation(k, 0), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="at least one axis"):
        random.permutation(k, np.float64(3))
    with pytest.raises(ValueError, match="n must be >= 0"):
        random.permutation(k, -2)


def test_permutation_gradient_moves_with_the_rows():
    k = random.key(8)
    x = np.arange(12.0).reshape(4, 3)
    lumen.check_grad(lambda x: random.permutation(k, x) * np.arange(1.0, 5.0)[:, None], (x,))


# -- the same numbers everywhere ---------------------------------------------------------------

def all_streams(k, x):
    """Every generator, sized by a (possibly symbolic) shape."""
    a, b = random.split(k)
    return (random.uniform(a, x.shape, np.float32), random.uniform(b, x.shape),
            random.uniform(k, x.shape, minval=-2.0, maxval=3.0), random.bernoulli(a, 0.3, x.shape),
            random.permutation(b, x), random.split(k, 3), random.fold_in(k, x.shape[0]))


def test_eager_equals_jit_bitwise_without_recompiling():
    f = lumen.jit(all_streams)
    k = random.key(10)
    for n in (5, 17, 300):
        x = np.arange(n * 2.0).reshape(n, 2)
        for got, expected in zip(f(k, x), all_streams(k, x)):
            np.testing.assert_array_equal(got, expected, strict=True)
    assert f.cache_info()["compiles"] == 1


@pytest.mark.parametrize("dtype", FLOATS)
def test_normal_eager_and_jit_agree_to_a_few_ulp(dtype):
    """Box-Muller goes through log and cos, whose last bit is the math library's."""
    k = random.key(11)
    eager = random.normal(k, (5000,), dtype)
    compiled = lumen.jit(lambda k, x: random.normal(k, x.shape, dtype))(k, np.zeros(5000))
    ulps = np.abs(eager - compiled) / np.spacing(np.maximum(np.abs(eager), np.abs(compiled)))
    assert ulps.max() <= 8


def test_bitwise_the_same_on_one_and_two_threads():
    n = 2 * THRESHOLD + 3
    f = lumen.jit(lambda k, x: (random.uniform(k, x.shape, np.float32),
                                random.uniform(k, x.shape), random.bernoulli(k, 0.5, x.shape)))
    k, x = random.key(12), np.zeros(n)
    assert 'call void @"lumen_GOMP_parallel"' in f.lower(k, x).llvm_ir()
    f(k, x)                 # compiled, and the runtime registered (which sets the threshold)
    results = []
    calibrated = symbols.fork_work.value, symbols.fork_bytes.value
    symbols.fork_work.value, symbols.fork_bytes.value = THRESHOLD, 0               # n forks
    try:
        for threads in (1, 2):
            previous = symbols.set_num_threads(threads)
            try:
                results.append(f(k, x))
            finally:
                symbols.set_num_threads(previous)
    finally:
        symbols.fork_work.value, symbols.fork_bytes.value = calibrated
    for one, two, eager in zip(*results, (random.uniform(k, (n,), np.float32),
                                          random.uniform(k, (n,)), random.bernoulli(k, 0.5, (n,)))):
        np.testing.assert_array_equal(one, two, strict=True)
        np.testing.assert_array_equal(one, eager, strict=True)


def test_per_step_keys_in_scan_and_the_gradient_through_noise():
    k = random.key(13)

    def noisy_walk(x0, steps):
        def step(x, i):
            x = x + random.normal(random.fold_in(k, i), x.shape)
            return x, x
        return lumen.scan(step, x0, steps)[1]

    steps = np.arange(6)
    got = lumen.jit(noisy_walk)(np.zeros(3), steps)
    expected = np.cumsum([random.normal(random.fold_in(k, i), (3,)) for i in steps], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)
    # a noisy loss: the derivative of sum(x * u) with u fixed by the key is u, bitwise
    u = random.uniform(k, (4, 3))
    g = lumen.grad(lambda x: np.sum(x * random.uniform(k, x.shape)))(np.ones((4, 3)))
    np.testing.assert_array_equal(g, u)


def gpu_streams(k, x):
    return (random.uniform(k, x.shape, np.float32), random.uniform(k, x.shape, np.float64),
            random.uniform(k, x.shape, minval=-1.0, maxval=2.0), random.bernoulli(k, 0.25, x.shape),
            random.fold_in(k, 3))


def test_ptx_of_random_numbers_assembles():
    ptx = lumen.jit(gpu_streams, device="gpu").lower(random.key(0), np.zeros((3, 4))).ptx()
    assert "mul.wide.u32" in ptx or "mul.lo.s64" in ptx or "mul.hi.u32" in ptx
    assemble(ptx, "sm_80")


def test_gpu_kernels_give_the_cpu_numbers_bit_for_bit(emulated_gpu):
    k, x = random.key(14), np.zeros((70, 3))
    expected = lumen.jit(gpu_streams)(k, x)
    for got, e in zip(lumen.jit(gpu_streams, device="gpu")(k, x), expected):
        np.testing.assert_array_equal(np.asarray(got), e, strict=True)


# -- np.random inside a traced function --------------------------------------------------------

def test_np_random_in_a_traced_function_is_refused_with_a_pointer():
    def noisy(x):
        return x + np.random.normal(size=x.shape)    # the line the message names

    line = noisy.__code__.co_firstlineno + 1
    original = np.random.normal
    with pytest.raises(lumen.UnsupportedError) as e:
        lumen.jit(noisy)(np.zeros(3))
    message = str(e.value)
    assert "np.random.normal" in message and f"test_random.py:{line}" in message
    assert "lumen.random" in message
    assert np.random.normal is original              # restored after the failed trace


@pytest.mark.parametrize("make", [lambda: np.random.default_rng(0), lambda: np.random.RandomState(0),
                                  lambda: np.random.rand(2)])
def test_generators_made_while_tracing_are_refused(make):
    with pytest.raises(lumen.UnsupportedError, match="inside a traced function.*lumen.random"):
        lumen.grad(lambda x: np.sum(x * make()))(np.ones(2))


def test_np_random_works_outside_traces_and_on_other_threads():
    originals = (np.random.normal, np.random.default_rng, np.random.RandomState)
    seen = []

    def traced(x):
        worker = threading.Thread(target=lambda: seen.append(
            (np.random.default_rng(0).normal(), isinstance(np.random.RandomState(1),
                                                            np.random.RandomState))))
        worker.start()
        worker.join()
        assert isinstance(np.random.mtrand._rand, np.random.RandomState)
        return lumen.jit(lambda y: y * 2)(x) + 1     # a nested trace inside this one

    np.testing.assert_array_equal(lumen.jit(traced)(np.ones(2)), [3.0, 3.0])
    assert seen == [(np.random.default_rng(0).normal(), True)]
    assert (np.random.normal, np.random.default_rng, np.random.RandomState) == originals
