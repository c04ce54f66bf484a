"""`lumen.profile` (SPEC §8): the profiled function computes what the function does, its table
has a row per kernel, BLAS call and loop with the user's source lines, loops hold their bodies'
rows, and the profiled code is compiled and cached apart from the function's own.

Timings are never compared with each other beyond what holds by construction (a loop's time
contains its body's): the suite shares few cores, and speeds vary."""
from __future__ import annotations

import os

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm import profiling
from lumen.frontend.cache_key import cache_key

from .oracle import assert_same

HERE = os.path.basename(__file__)


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(x.shape[0]), y])


def mlp_step(params, x, y):
    grads = lumen.grad(mlp_loss)(params, x, y)
    return tuple(p - 0.01 * g for p, g in zip(params, grads))


def mlp_inputs():
    params = (rand(20, 16, dtype=np.float32), rand(16, dtype=np.float32, seed=1),
              rand(16, 4, dtype=np.float32, seed=2), rand(4, dtype=np.float32, seed=3))
    return params, rand(8, 20, dtype=np.float32, seed=4), np.arange(8) % 4


def rnn(h0, xs, wx, wh, b):
    def step(h, x):
        h = np.tanh(x @ wx + h @ wh + b)
        return h, h
    return lumen.scan(step, h0, xs)


def rnn_inputs(steps=10):
    return rand(3, 5), rand(steps, 3, 4, seed=1), rand(4, 5, seed=2), rand(5, 5, seed=3), rand(5, seed=4)


def test_mlp_step_results_and_rows():
    step = lumen.jit(mlp_step)
    p = lumen.profile(step)
    args = mlp_inputs()
    for _ in range(3):
        got = p(*args)
    for g, e in zip(got, step(*args)):
        assert_same(g, e)

    rows = p.stats()
    nodes = [r for r in rows if r["kind"] != "other"]
    assert {r["op"] for r in nodes} >= {"gemm", "kernel"}
    assert any(r["what"].startswith("gemm f32[") and r["kind"] == "linalg" for r in nodes)
    assert any(r["what"].startswith("kernel tanh") for r in nodes)
    assert all(r["loc"].startswith(f"{HERE}:") for r in nodes)
    assert all(r["depth"] == 0 and r["calls"] == 3 for r in rows)
    assert rows[-1]["kind"] == "other"
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["time"] >= 0 and r["mean"] >= 0 and r["share"] >= 0 for r in rows)

    table = str(p)
    assert table.startswith("lumen.profile(mlp_step): 3 calls")
    assert "gemm f32[" in table and f"{HERE}:" in table
    assert len(table.splitlines()) == len(rows) + 2     # the summary, the header, the rows


def test_scan_row_holds_its_body():
    p = lumen.profile(rnn)
    args = rnn_inputs()
    for _ in range(2):
        got = p(*args)
    for g, e in zip(got, lumen.jit(rnn)(*args)):
        assert_same(g, e)

    rows = p.stats()
    (k,) = [i for i, r in enumerate(rows) if r["op"] == "scan"]
    loop = rows[k]
    assert loop["what"] == "scan (10 steps)" and loop["steps"] == 10 and loop["calls"] == 2
    body = [r for r in rows[k + 1:] if r["depth"] == 1]
    assert body and rows[k + 1]["depth"] == 1
    assert all(r["calls"] == 20 and r["loc"].startswith(f"{HERE}:") for r in body)
    assert {r["op"] for r in body} & {"gemm", "matmul"} and "kernel" in {r["op"] for r in body}
    assert loop["time"] >= sum(r["time"] for r in body)
    assert sum(r["share"] for r in rows if r["depth"] == 0) == pytest.approx(1.0)
    assert "\n  " in str(p)                            # the body's rows are indented


def test_while_and_cond_bodies():
    def countdown(x, n):
        return lumen.while_loop(lambda s: s[1] > 0, lambda s: (np.sin(s[0]) * 2, s[1] - 1), (x, n))

    def branch(x):
        return lumen.cond(x.sum() > 0, lambda v: np.exp(v), lambda v: v @ v.T, x)

    p = lumen.profile(countdown)
    p(rand(4, 4), 5)
    p(rand(4, 4), 7)
    rows = {r["what"]: r for r in p.stats()}
    assert rows["while (6 steps)"]["calls"] == 2
    assert rows["condition"]["calls"] == 14 and rows["body"]["calls"] == 12

    q = lumen.profile(branch)
    for sign in (1, -1, 1):
        assert_same(q(sign * np.ones((3, 3))), lumen.jit(branch)(sign * np.ones((3, 3))))
    rows = {r["what"]: r for r in q.stats()}
    assert rows["true branch"]["calls"] == 2 and rows["false branch"]["calls"] == 1
    assert rows["true branch"]["depth"] == 1


def test_counts_add_up_over_specialisations_and_reset():
    p = lumen.profile(lambda x: np.exp(x) + 1)
    p(rand(3))
    p(rand(6)[::2])                                    # strided: another specialisation
    p(rand(5))
    assert p.cache_info()["compiles"] == 2
    (kernel, outside) = p.stats()
    assert kernel["calls"] == outside["calls"] == 3
    p.reset()
    assert all(r["calls"] == 0 and r["time"] == 0 for r in p.stats())
    assert p.table().endswith("no calls yet")


def test_options_carry_over():
    f = lumen.jit(lambda x, n: x * n, static_argnums=1, parallel=False)
    p = lumen.profile(f)
    assert_same(p(rand(3), 4), rand(3) * 4)
    assert p._jitted.static_argnums == {1} and p._jitted.options["parallel"] is False
    with pytest.raises(lumen.UnsupportedError):
        lumen.profile(lambda x: x, device="gpu")


def test_profiled_code_is_cached_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMEN_CACHE", "1")
    monkeypatch.setenv("LUMEN_CACHE_DIR", str(tmp_path / "cache"))

    def fn(x):
        return np.tanh(x) @ x.T

    x = rand(6, 6)
    f = lumen.jit(fn)
    p = lumen.profile(f)
    assert_same(p(x), fn(x))
    assert_same(f(x), fn(x))                           # compiled anew, not the profiled code
    assert f.cache_info()["compiles"] == 1 and p.cache_info()["compiles"] == 1
    (entry,) = [e for entries in f._cache.values() for e in entries]
    assert profiling.read(entry.executable.loaded) is None
    assert profiling.COUNTERS not in f.lower(x).llvm_ir()
    assert profiling.COUNTERS in p.lower(x).llvm_ir()

    graph = f.lower(x).graph
    assert cache_key(graph, f.options) != cache_key(graph, p._jitted.options)
    again = lumen.profile(fn)                          # a new process would do the same
    again(x)
    assert again.cache_info()["disk_hits"] == 1
    assert [r["what"] for r in again.stats()] == [r["what"] for r in p.stats()]


def test_lstm_crf_gradient_profiled():
    """Consecutive nodes lowered into one block (small kernels of known size, their loops
    regions the entry calls, in buffers reused inside a scan's body): each clock read is
    inserted where its node began, and the code after it still goes to the end of the
    block (the last node's call once landed after the block's branch)."""
    from examples import neurocrf
    rng = np.random.default_rng(0)
    n, d, h, k = 6, 5, 4, 3
    xs, y = rng.standard_normal((n, d)), rng.integers(0, k, n)
    params = [rng.standard_normal((d, 4 * h)), rng.standard_normal((h, 4 * h)),
              rng.standard_normal(4 * h), rng.standard_normal((h, k * k)),
              rng.standard_normal(k * k)]

    def loss(params, xs, y):
        wx, wh, b, wo, bo = params
        return neurocrf.crf_loss(neurocrf.transitions(neurocrf.lstm(xs, wx, wh, b), wo, bo, k), y)
    f = lumen.value_and_grad(loss)
    p = lumen.profile(f)
    got = p(params, xs, y)
    want = lumen.jit(f)(params, xs, y)
    assert_same(got[0], want[0], rtol=1e-12)
    for g, w in zip(got[1], want[1]):
        assert_same(g, w, rtol=1e-12)
    assert {row["what"].split()[0] for row in p.stats()} >= {"scan", "kernel", "matmul"}
