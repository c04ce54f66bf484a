"""SPEC §3: scan, while_loop and cond — traced once, run as native loops and branches."""
import numpy as np
import pytest

import lumen

from .oracle import assert_same


def rnn_numpy(h0, xs, wx, wh, b):
    h, hs = h0, []
    for x in xs:
        h = np.tanh(x @ wx + h @ wh + b)
        hs.append(h)
    return h, np.stack(hs)


def rnn_lumen(h0, xs, wx, wh, b):
    return lumen.scan(lambda h, x: (np.tanh(x @ wx + h @ wh + b),) * 2, h0, xs)


@pytest.fixture
def rnn_args():
    rng = np.random.default_rng(0)
    n_in, n_h = 4, 6
    return (np.zeros(n_h), rng.standard_normal((7, n_in)), rng.standard_normal((n_in, n_h)) * 0.5,
            rng.standard_normal((n_h, n_h)) * 0.5, rng.standard_normal(n_h))


def _products(graph) -> int:
    """Matrix products at the top level of ``graph`` (plain, or BLAS gemm with a bias)."""
    return sum(n.op in ("matmul", "gemm") for n in graph.nodes)


def test_scan_cumsum_matches_numpy():
    f = lumen.jit(lambda xs: lumen.scan(lambda c, x: (c + x, c + x), 0.0, xs))
    xs = np.arange(1.0, 6.0)
    total, partial = f(xs)
    assert_same(total, np.float64(15.0))
    assert_same(partial, np.cumsum(xs))


def test_scan_rnn_forward(rnn_args):
    h, hs = lumen.jit(rnn_lumen)(*rnn_args)
    h_ref, hs_ref = rnn_numpy(*rnn_args)
    assert_same(h, h_ref)
    assert_same(hs, hs_ref)


def test_new_sequence_length_does_not_recompile(rnn_args):
    f = lumen.jit(rnn_lumen)
    h0, xs, wx, wh, b = rnn_args
    for n in (7, 3, 12):
        xs_n = np.resize(xs, (n, xs.shape[1]))
        h, hs = f(h0, xs_n, wx, wh, b)
        h_ref, hs_ref = rnn_numpy(h0, xs_n, wx, wh, b)
        assert_same(h, h_ref)
        assert_same(hs, hs_ref)
    h, hs = f(h0, xs[:0], wx, wh, b)                # no steps: the initial carry, no outputs
    assert_same(h, h0)
    assert hs.shape == (0, h0.shape[0])
    assert f.cache_info()["compiles"] == 1


def test_scan_reverse_and_tuple_carries():
    def f(xs):
        def step(carry, x):
            total, count = carry
            return (total + x, count + 1), total * x
        return lumen.scan(step, (0.0, 0), xs, reverse=True)
    xs = np.array([1.0, 2.0, 3.0, 4.0])
    (total, count), ys = lumen.jit(f)(xs)
    expected, t = [], 0.0
    for x in xs[::-1]:
        expected.append(t * x)
        t += x
    assert total == 10.0 and count == 4
    assert_same(ys, np.array(expected[::-1]))


def test_scan_with_length_and_no_sequences():
    f = lumen.jit(lambda a: lumen.scan(lambda c, _: (c * a, c), 1.0, length=5))
    final, ys = f(np.float64(2.0))
    assert final == 32.0
    assert_same(ys, np.array([1.0, 2.0, 4.0, 8.0, 16.0]))


def test_scan_pytree_sequences_and_dict_carry():
    def f(xs):
        def step(c, x):
            s = c["s"] + x["a"] * x["b"]
            return {"s": s}, {"s": s}
        return lumen.scan(step, {"s": 0.0}, xs)
    a, b = np.arange(4.0), np.arange(4.0) + 1
    final, ys = lumen.jit(f)({"a": a, "b": b})
    assert_same(ys["s"], np.cumsum(a * b))
    assert final["s"] == np.sum(a * b)


def test_nested_scan():
    def f(m):
        def row(c, r):
            inner, _ = lumen.scan(lambda acc, v: (acc + v * v, acc), 0.0, r)
            return c + inner, inner
        return lumen.scan(row, 0.0, m)
    m = np.arange(12.0).reshape(3, 4)
    total, per_row = lumen.jit(f)(m)
    assert_same(per_row, (m * m).sum(axis=1))
    assert total == (m * m).sum()


def test_scan_carry_swap_is_simultaneous():
    f = lumen.jit(lambda a, b: lumen.scan(lambda c, _: ((c[1], c[0]), c[0]), (a, b), length=3))
    (x, y), ys = f(np.ones(2), np.zeros(2))
    assert_same(x, np.zeros(2))
    assert_same(y, np.ones(2))
    assert_same(ys, np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]))


def test_scan_eager_call_compiles():
    final, ys = lumen.scan(lambda c, x: (c + x, c), 0.0, np.arange(3.0))
    assert final == 3.0
    assert_same(ys, np.array([0.0, 0.0, 1.0]))


def test_scan_carry_dtype_change_is_a_clear_error():
    with pytest.raises(TypeError, match="changes dtype"):
        lumen.jit(lambda xs: lumen.scan(lambda c, x: (c + x, c), np.float32(0), xs))(np.ones(3))


def test_while_loop_newton_square_root():
    def sqrt(a):
        return lumen.while_loop(lambda x: np.abs(x * x - a) > 1e-12 * a,
                                lambda x: 0.5 * (x + a / x), a)
    f = lumen.jit(sqrt)
    for a in (2.0, 10.0, 1e6):
        assert f(np.float64(a)) == pytest.approx(np.sqrt(a), rel=1e-12)


def test_while_loop_collatz_count():
    def collatz(n):
        def body(s):
            k, steps = s
            return np.where(k % 2 == 0, k // 2, 3 * k + 1), steps + 1
        return lumen.while_loop(lambda s: s[0] != 1, body, (n, np.int64(0)))[1]
    f = lumen.jit(collatz)
    for n, steps in ((1, 0), (6, 8), (27, 111)):
        assert int(f(np.int64(n))) == steps
    assert f.cache_info()["compiles"] == 1


def test_cond_is_lazy():
    def f(i, x):
        # the true branch would raise IndexError if it ran with i out of range
        return lumen.cond(i < x.shape[0], lambda x: x[i] * 2.0, lambda x: -1.0 + 0 * x[0], x)
    g = lumen.jit(f)
    assert g(np.int64(1), np.arange(3.0)) == 2.0
    assert g(np.int64(7), np.arange(3.0)) == -1.0


def test_cond_inside_scan_and_with_pytrees():
    def f(xs):
        def step(c, x):
            new = lumen.cond(x > 0, lambda a, b: (a + b, b), lambda a, b: (a - b, b), c, x)[0]
            return new, new
        return lumen.scan(step, 0.0, xs)
    xs = np.array([1.0, -2.0, 3.0, -4.0])
    final, ys = lumen.jit(f)(xs)
    assert_same(ys, np.array([1.0, 3.0, 6.0, 10.0]))


def test_cond_branches_must_agree():
    with pytest.raises(TypeError, match="structure"):
        lumen.jit(lambda p, x: lumen.cond(p, lambda x: (x, x), lambda x: x, x))(True, np.ones(2))


def test_loop_bodies_are_printed_nested_and_optimised(rnn_args):
    lowered = lumen.jit(rnn_lumen).lower(*rnn_args)
    text = lowered.optimized_ir()
    assert "scan " in text and "body:" in text and "func @scan_body(" in text
    assert "kernel" in text.split("body:")[1]      # the body went through kernelize / fusion


def _scan_node(graph):
    return next(n for n in graph.nodes if n.op == "scan")


def test_per_step_input_products_are_batched_into_one_matmul(rnn_args):
    graph = lumen.jit(rnn_lumen).lower(*rnn_args).optimized_graph()
    outside = [n.op for n in graph.nodes]
    inside = [n.op for n in _scan_node(graph).params["body"].nodes]
    assert outside.count("matmul") == 1            # xs @ wx, once, before the loop
    assert inside.count("matmul") == 1             # only h @ wh stays in the loop
    h, hs = lumen.jit(rnn_lumen)(*rnn_args)
    assert_same(hs, rnn_numpy(*rnn_args)[1])


def test_loop_invariant_work_is_hoisted():
    def f(xs, w):
        return lumen.scan(lambda c, x: (c @ (w.T * 2.0) + x, c), np.zeros(3), xs)[0]
    xs, w = np.random.default_rng(1).standard_normal((4, 3)), np.eye(3) * 0.5
    graph = lumen.jit(f).lower(xs, w).optimized_graph()
    body_ops = {n.op for n in _scan_node(graph).params["body"].nodes}
    assert "transpose" not in body_ops
    assert not any(n.op == "kernel" and any(s.op == "multiply" for s in n.params["body"].ops)
                   and len(n.inputs) == 1 for n in _scan_node(graph).params["body"].nodes)
    c = np.zeros(3)
    for x in xs:
        c = c @ (w.T * 2.0) + x
    assert_same(lumen.jit(f)(xs, w), c)


def test_batched_elementwise_with_broadcasting_is_exact():
    def f(xs, w):
        return lumen.scan(lambda c, x: (c + np.tanh(x[:, None] * w).sum(0), c), np.zeros(2), xs)[0]
    rng = np.random.default_rng(2)
    xs, w = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    c = np.zeros(2)
    for x in xs:
        c = c + np.tanh(x[:, None] * w).sum(0)
    assert_same(lumen.jit(f)(xs, w), c)


def _count_scans(graph):
    return sum(1 + _count_scans(n.params["body"]) for n in graph.nodes if n.op == "scan")


def test_independent_scans_merge_and_dead_outputs_go():
    def f(xs):
        a = lumen.scan(lambda c, x: (c + x, c * 2), 0.0, xs)
        b = lumen.scan(lambda c, x: (c * x, c - 1), 1.0, xs)
        return a[0], b[1]
    xs = np.arange(1.0, 5.0)
    graph = lumen.jit(f).lower(xs).optimized_graph()
    assert _count_scans(graph) == 1
    scan = _scan_node(graph)
    assert len(scan.outputs) == 3                   # a's unused per-step output is gone
    total, ys = lumen.jit(f)(xs)
    assert total == 10.0
    assert_same(ys, np.array([0.0, 0.0, 1.0, 5.0]))


def test_merged_scans_read_a_shared_input_once():
    """Two loops over the same sequence with the same weights: the merged loop takes each
    outer value once, so the bodies' common work can be computed once."""
    def f(xs, w):
        a = lumen.scan(lambda c, x: (np.tanh(c @ w + x), c), np.zeros(3), xs)
        b = lumen.scan(lambda c, x: (np.tanh(c @ w) * x, c), np.ones(3), xs)
        return a[0], b[0]
    xs, w = np.random.default_rng(0).standard_normal((5, 3)), np.eye(3) * 0.5
    graph = lumen.jit(f).lower(xs, w).optimized_graph()
    scan = _scan_node(graph)
    assert len(set(scan.inputs)) == len(scan.inputs)
    ca, cb = np.zeros(3), np.ones(3)
    for x in xs:
        ca, cb = np.tanh(ca @ w + x), np.tanh(cb @ w) * x
    got = lumen.jit(f)(xs, w)
    assert_same(got[0], ca)
    assert_same(got[1], cb)


def test_gauss_newton_product_is_two_loops():
    """SPEC §2: lop(f, θ, rop(f, θ, v)) of a recurrent model: the forward and R-op loops
    merged, then one backward loop."""
    def f(wh, xs):
        return lumen.scan(lambda h, x: (np.tanh(x + h @ wh),) * 2, np.zeros(3), xs)[1]

    def gauss_newton(wh, xs, v):
        jv = lumen.rop(lambda w: f(w, xs), (wh,), (v,))
        return lumen.lop(lambda w: f(w, xs), (wh,), jv)[0]

    rng = np.random.default_rng(0)
    wh, xs, v = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((6, 3)), rng.standard_normal((3, 3))
    assert _count_scans(lumen.jit(gauss_newton).lower(wh, xs, v).optimized_graph()) == 2
    got = lumen.jit(gauss_newton)(wh, xs, v)
    fw = lumen.jit(lambda w: f(w, xs))
    eps, jac = 1e-6, np.zeros((18, 9))
    for k in range(9):
        e = np.zeros(9)
        e[k] = eps
        jac[:, k] = ((fw(wh + e.reshape(3, 3)) - fw(wh - e.reshape(3, 3))) / (2 * eps)).ravel()
    np.testing.assert_allclose(got.ravel(), jac.T @ (jac @ v.ravel()), rtol=1e-6, atol=1e-8)


def test_bptt_matches_hand_written_numpy(rnn_args):
    h0, xs, wx, wh, b = rnn_args

    def loss(wx, wh, b):
        return np.sum(rnn_lumen(h0, xs, wx, wh, b)[1] ** 2) * 0.5

    gwx, gwh, gb = lumen.grad(loss, argnums=(0, 1, 2))(wx, wh, b)
    hs = rnn_numpy(h0, xs, wx, wh, b)[1]
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in range(len(xs) - 1, -1, -1):
        dh = hs[t] + dh_next
        dz = dh * (1 - hs[t] ** 2)
        h_prev = hs[t - 1] if t else h0
        dwx += np.outer(xs[t], dz)
        dwh += np.outer(h_prev, dz)
        db += dz
        dh_next = dz @ wh.T
    assert_same(gwx, dwx)
    assert_same(gwh, dwh)
    assert_same(gb, db)


def test_bptt_structure_one_product_per_step(rnn_args):
    """Back-propagation through time compiles to: the input products batched before the
    loops, one matmul per step in the forward loop (the primal and the recorded pass share
    it), one per step in the backward loop, and the weight gradients as one matmul each."""
    h0, xs, wx, wh, b = rnn_args

    def loss(wx, wh, b):
        return np.sum(rnn_lumen(h0, xs, wx, wh, b)[1] ** 2) * 0.5
    graph = lumen.jit(lumen.grad(loss, argnums=(0, 1, 2))).lower(wx, wh, b).optimized_graph()
    scans = [n for n in graph.nodes if n.op == "scan"]
    assert len(scans) == 2
    for scan in scans:
        assert _products(scan.params["body"]) == 1
    assert _products(graph) >= 3                  # xs@wx, dWx, dWh outside
    # the backward loop reads the recorded tanh outputs: the step is not computed again
    ir = lumen.jit(lumen.grad(loss, argnums=(0, 1, 2))).lower(wx, wh, b).optimized_ir()
    assert ir.count("tanh(") == 1


def test_scan_of_length_one_is_unrolled():
    f = lumen.jit(lambda xs: lumen.scan(lambda c, x: (c + x, c * x), np.ones(2), xs))
    xs = np.array([[2.0, 3.0]])                       # a length-1 axis: specialised as such
    assert _count_scans(f.lower(xs).optimized_graph()) == 0
    c, ys = f(xs)
    assert_same(c, np.array([3.0, 4.0]))
    assert_same(ys, np.array([[2.0, 3.0]]))
    c, ys = f(np.array([[2.0, 3.0], [1.0, 1.0]]))    # longer: a real loop again
    assert_same(c, np.array([4.0, 5.0]))


def test_per_step_outputs_of_carries_are_computed_after_the_loop():
    def fwd(xs, wh, wy):
        def cell(h, x):
            h = np.tanh(x + h @ wh)
            return h, h @ wy
        return lumen.scan(cell, np.zeros((1, wh.shape[0])), xs)[1]
    rng = np.random.default_rng(0)
    xs, wh, wy = rng.standard_normal((5, 1, 4)), rng.standard_normal((4, 4)) * 0.3, \
        rng.standard_normal((4, 3))
    graph = lumen.jit(fwd).lower(xs, wh, wy).optimized_graph()
    assert _products(_scan_node(graph).params["body"]) == 1
    assert _products(graph) == 1                  # all y_t in one product
    h, ref = np.zeros((1, 4)), []
    for x in xs:
        h = np.tanh(x + h @ wh)
        ref.append(h @ wy)
    assert_same(lumen.jit(fwd)(xs, wh, wy), np.stack(ref))


def test_gradient_when_a_step_returns_its_carry_as_output():
    """``return h, h``: the carry's and the output's cotangents add up (they used to overwrite
    each other)."""
    w, xs = np.array([0.5, -0.3]), np.array([[0.1, 0.2], [0.3, -0.4]])

    def loss(w, xs):
        def cell(h, x):
            h = np.tanh(h * w + x)
            return h, h
        return lumen.scan(cell, np.ones(2), xs)[1].sum()
    # hand-written BPTT
    hs, h = [], np.ones(2)
    for x in xs:
        hs.append((h, np.tanh(h * w + x)))
        h = hs[-1][1]
    gw, gh = np.zeros(2), np.zeros(2)
    for h_prev, h in reversed(hs):
        dz = (gh + 1.0) * (1 - h * h)
        gw += dz * h_prev
        gh = dz * w
    assert_same(lumen.jit(lumen.grad(loss))(w, xs), gw, rtol=1e-12)
    lumen.check_grad(loss, (w, xs))


def test_gradient_when_a_branch_returns_one_value_twice():
    def f(x):
        a, b = lumen.cond(x > 0, lambda x: (np.sin(x), np.sin(x)), lambda x: (x, x), x)
        return a + 3 * b
    assert_same(lumen.grad(f)(0.5), 4 * np.cos(0.5), rtol=1e-12)
    assert_same(lumen.grad(f)(-0.5), 4.0)


def test_coupled_carries_of_the_primal_and_the_recorded_pass_are_carried_once():
    """An LSTM's h is updated from its c: the two passes' (h, c) are matched together, so the
    forward loop carries them once and computes ``h @ wh`` once per step."""
    def loss(wh, xs):
        n = wh.shape[0]

        def cell(carry, x):
            h, c = carry
            z = x + h @ wh
            c = lumen.nn.sigmoid(z[n:]) * c + lumen.nn.sigmoid(z[:n])
            h = np.tanh(c)
            return (h, c), h
        h0 = np.zeros(n)
        return lumen.scan(cell, (h0, h0), xs)[1].sum()
    rng = np.random.default_rng(3)
    wh, xs = rng.standard_normal((3, 6)) * 0.5, rng.standard_normal((4, 6))
    graph = lumen.jit(lumen.value_and_grad(loss)).lower(wh, xs).optimized_graph()
    forward = [n for n in graph.nodes if n.op == "scan" and not n.params["reverse"]]
    assert len(forward) == 1 and forward[0].params["n_carry"] == 2
    assert _products(forward[0].params["body"]) == 1
    lumen.check_grad(loss, (wh, xs))


def test_transforms_inside_loop_and_branch_bodies_of_captured_values():
    """grad / lop / rop called inside a scan, while_loop or cond body, differentiating with
    respect to a value captured from outside the body: the derivative's values belong to the
    body (they were once mistaken for outer values and captured, giving an invalid graph)."""
    w, xs = np.array([0.3, -0.2, 0.5]), np.array([1.0, 2.0, -1.0])

    def in_scan(w, xs):
        def body(c, x):
            (g,) = lumen.lop(lambda t: np.tanh(t * x), (w,), np.ones_like(w) * c)
            return c + g.sum(), g
        return lumen.scan(body, np.float64(1), xs)

    c, gs = 1.0, []
    for x in xs:
        gs.append(c * x * (1 - np.tanh(w * x) ** 2))
        c += gs[-1].sum()
    got_c, got_gs = lumen.jit(in_scan)(w, xs)
    np.testing.assert_allclose(got_c, c, rtol=1e-12)
    np.testing.assert_allclose(got_gs, np.stack(gs), rtol=1e-12)

    def in_cond(w, p):
        return lumen.cond(p > 0, lambda: lumen.grad(lambda t: np.sum(np.sin(t) * t))(w), lambda: w)
    np.testing.assert_allclose(lumen.jit(in_cond)(w, 1.0), np.cos(w) * w + np.sin(w), rtol=1e-12)
    np.testing.assert_array_equal(lumen.jit(in_cond)(w, -1.0), w)


def test_gauss_newton_power_iteration_in_while_loop():
    """v <- Jᵀ J v / |Jᵀ J v| three times inside while_loop, J the Jacobian of an RNN's outputs
    with respect to captured weights (rop and lop of a scan in the loop body): right, and two
    loops over the sequence per product, as at the top level (the loop rewrites reach scans
    in while bodies)."""
    def f(wh, xs):
        return lumen.scan(lambda h, x: (np.tanh(x + h @ wh),) * 2, np.zeros(3), xs)[1]

    def power(wh, xs, v):
        def body(s):
            u, k = s
            g = lambda t: f(t, xs)  # noqa: E731
            (gu,) = lumen.lop(g, (wh,), lumen.rop(g, (wh,), (u,)))
            return gu / np.sqrt(np.sum(gu * gu)), k + 1
        return lumen.while_loop(lambda s: s[1] < 3, body, (v, np.int64(0)))[0]

    rng = np.random.default_rng(1)
    wh, xs, v = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((5, 3)), rng.standard_normal((3, 3))
    graph = lumen.jit(power).lower(wh, xs, v).optimized_graph()
    (loop,) = [n for n in graph.nodes if n.op == "while"]
    assert _count_scans(loop.params["body"]) == 2       # SPEC §2's two passes, in a loop body too
    j = lumen.jacobian(lambda t: f(t, xs))(wh).reshape(15, 9)
    u = v.ravel()
    for _ in range(3):
        u = j.T @ (j @ u)
        u /= np.linalg.norm(u)
    np.testing.assert_allclose(lumen.jit(power)(wh, xs, v).ravel(), u, rtol=1e-10, atol=1e-12)


def test_scan_in_a_while_body_after_backward_passes():
    """Two backward passes at the top level leave dead buffers of the sizes a scan in the
    while body needs; the scan's buffers (allocated before it, freed after it) must be its
    own: sharing one freed it under the function and read it as null (MemoryError) on the
    loop's second step."""
    def f(theta, xs):
        w, b = theta[:9].reshape(3, 3), theta[9:12]
        return lumen.scan(lambda h, x: (np.tanh(x + h @ w + b),) * 2, np.zeros((xs.shape[1], 3)), xs)[1]

    def two_lops_then_a_loop(theta, xs, ys):
        (a,) = lumen.lop(lambda t: f(t, xs), (theta,), ys)
        (b,) = lumen.lop(lambda t: f(t, xs), (theta,), 2 * ys)
        body = lambda s: (lumen.lop(lambda t: f(t, xs), (theta,), f(theta, xs) * s[0].sum())[0],  # noqa: E731
                          s[1] + 1)
        return b, lumen.while_loop(lambda s: s[1] < 3, body, (a, np.int64(0)))[0]

    from lumen.ir.interpret import interpret
    rng = np.random.default_rng(0)
    args = rng.standard_normal(12) * 0.5, rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    jitted = lumen.jit(two_lops_then_a_loop)
    expected = interpret(jitted.lower(*args).graph, list(args))      # NumPy, primitive by primitive
    for got, ref in zip(jitted(*args), expected):
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_grad_inside_a_scan_body():
    """SGD steps as a scan: the gradient's nodes are the body's own values, and the body reads
    ``x`` from outside; the result equals the same steps unrolled."""
    rng = np.random.default_rng(4)
    w0, x = rng.standard_normal((4, 5)), rng.standard_normal((6, 4))

    def loss(w, scale):
        return np.sum(np.tanh(x @ w) * scale)

    def sgd(w):
        return lumen.scan(lambda w, s: (w - 0.1 * lumen.grad(loss)(w, s), loss(w, s)), w,
                          np.arange(1.0, 4.0))

    w, losses = lumen.jit(sgd)(w0)
    expected = w0
    for s in (1.0, 2.0, 3.0):
        expected = expected - 0.1 * (x.T @ ((1 - np.tanh(x @ expected) ** 2) * s))
    assert_same(w, expected, rtol=1e-12)
    assert losses.shape == (3,)
