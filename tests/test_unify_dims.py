"""Sizes the graph's checks prove equal are one `Dim` in every node, the nodes the rewrites
make after `unify_dims` included (a product of the graph's inputs takes their own sizes)."""
from __future__ import annotations

import re

import numpy as np

import lumen


def _hand_written_update(x, dh, w, b):
    """A layer's forward pass and its weight update written by hand: ``w - lr * x.T @ dh``
    checks that w's columns equal dh's, so the classes of equal sizes hold w's and dh's."""
    h = np.tanh(x @ w + b)
    return h, w - np.float32(0.01) * (x.T @ (dh * (1 - h * h)))


def _args(rng, batch=6, n_in=9, n_out=20):
    f32 = np.float32
    return (rng.random((batch, n_in)).astype(f32), rng.standard_normal((batch, n_out)).astype(f32),
            rng.standard_normal((n_in, n_out)).astype(f32), rng.standard_normal(n_out).astype(f32))


def test_product_of_inputs_takes_the_unified_sizes():
    args = _args(np.random.default_rng(0))
    graph = lumen.jit(_hand_written_update).lower(*args).optimized_graph()
    gemms = [n for n in graph.nodes if n.op == "gemm"]
    kernels = [n for n in graph.nodes if n.op == "kernel"]
    assert len(gemms) == 2 and kernels
    # the forward product's columns are w's, which the update proved equal to dh's: one Dim
    assert gemms[0].out.type.shape[1] == gemms[1].out.type.shape[1]
    for k in kernels:       # (the graph's inputs keep their sizes; codegen reads the aliases)
        for v in k.inputs:
            if v.type.ndim == len(k.params["space"]):
                dims = tuple(graph.dim_aliases.get(d, d) for d in v.type.shape)
                assert dims == tuple(k.params["space"]), (k, dims)


def test_kernel_after_a_product_of_inputs_is_one_dense_loop():
    """The tanh after ``x @ w + b`` reads the product as a dense array of its own shape, and
    b as a row of that shape: no stride is chosen at run time by testing a size for 1 (such a
    loop nest ran 10x slower than the dense loop, which vectorises)."""
    args = _args(np.random.default_rng(1))
    text = lumen.jit(_hand_written_update).lower(*args).llvm_ir()
    size_is_one = r'icmp eq i64 %"[.\w]+", 1\n\s+%"[.\w]+" = select\s+i1 %"[.\w]+", i64 0'
    assert not re.findall(size_is_one, text)


def test_hand_written_update_matches_numpy():
    rng = np.random.default_rng(2)
    for batch, n_in, n_out in ((6, 9, 20), (1, 5, 33), (17, 40, 3)):
        args = _args(rng, batch, n_in, n_out)
        got = lumen.jit(_hand_written_update)(*args)
        want = _hand_written_update(*(a.astype(np.float64) for a in args))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
