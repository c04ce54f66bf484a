"""SPEC §3: reverse mode through `lumen.while_loop` (JAX refuses it). The forward pass records
the trip count and each step's state on a growing stack; the backward pass runs the step's VJP
from the last step back. Checked against hand-written NumPy back-propagation, finite
differences (`lumen.check_grad`) and the NumPy reference interpreter."""
import numpy as np
import pytest

import lumen
from lumen.ir.interpret import interpret

from .oracle import assert_same


# -- x = sin(x) * w, n times (n a run-time value) ---------------------------------------------

def sin_loop(x, w, n):
    def body(s):
        x, k = s
        return np.sin(x) * w, k + 1
    return lumen.while_loop(lambda s: s[1] < n, body, (x, np.int64(0)))[0]


def sin_loss(x, w, n):
    return np.sum(sin_loop(x, w, n) ** 2)


def sin_numpy(x, w, n):
    for _ in range(n):
        x = np.sin(x) * w
    return x


def sin_lop_numpy(x, w, n, u):
    """Back-propagation by hand of ``u`` from sin_loop's result: the states forward, then the
    chain rule backward."""
    states = []
    for _ in range(n):
        states.append(x)
        x = np.sin(x) * w
    gx, gw = u, np.zeros_like(w)
    for s in reversed(states):
        gw = gw + gx * np.sin(s)
        gx = gx * np.cos(s) * w
    return gx, gw


def sin_loss_grads_numpy(x, w, n):
    return sin_lop_numpy(x, w, n, 2 * sin_numpy(x, w, n))


@pytest.fixture
def sin_args():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, 4), rng.uniform(0.5, 1.5, 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_matches_hand_written_backprop(sin_args, dtype):
    x, w = (a.astype(dtype) for a in sin_args)
    gx, gw = lumen.jit(lumen.grad(sin_loss, argnums=(0, 1)))(x, w, np.int64(6))
    ref_x, ref_w = sin_loss_grads_numpy(x, w, 6)
    assert_same(gx, ref_x.astype(dtype))
    assert_same(gw, ref_w.astype(dtype))


def test_grad_matches_finite_differences(sin_args):
    x, w = sin_args
    lumen.check_grad(lambda x, w: sin_loop(x, w, np.int64(5)), (x, w))


def test_new_trip_count_does_not_recompile(sin_args):
    x, w = sin_args
    f = lumen.jit(lumen.grad(sin_loss, argnums=(0, 1)))
    for n in (3, 0, 11, 1):
        gx, gw = f(x, w, np.int64(n))
        ref_x, ref_w = sin_loss_grads_numpy(x, w, n)
        assert_same(gx, ref_x)
        assert_same(gw, ref_w)
    assert f.cache_info()["compiles"] == 1


def test_zero_trips_pass_the_cotangent_through(sin_args):
    x, w = sin_args
    gx, gw = lumen.jit(lumen.grad(sin_loss, argnums=(0, 1)))(x, w, np.int64(0))
    assert_same(gx, 2 * x)
    assert_same(gw, np.zeros_like(w))


def test_lop_and_value_and_grad(sin_args):
    x, w = sin_args
    u = np.linspace(-1.0, 1.0, 4)
    n = np.int64(4)
    lop = lumen.jit(lambda x, w, u: lumen.lop(lambda x, w: sin_loop(x, w, n), (x, w), u))
    for got, expected in zip(lop(x, w, u), sin_lop_numpy(x, w, 4, u)):
        assert_same(got, expected)
    value, grads = lumen.jit(lumen.value_and_grad(sin_loss, argnums=(0, 1)))(x, w, n)
    assert_same(value, np.sum(sin_numpy(x, w, 4) ** 2))
    for got, expected in zip(grads, sin_loss_grads_numpy(x, w, 4)):
        assert_same(got, expected)


def test_interpreter_agrees_with_compiled_code(sin_args):
    x, w = sin_args
    f = lumen.jit(lumen.grad(sin_loss, argnums=(0, 1)))
    n = np.int64(7)
    graph = f.lower(x, w, n).graph
    assert any(node.op == "while_grad" for node in graph.nodes)
    for got, expected in zip(f(x, w, n), interpret(graph, [x, w, n])):
        assert_same(got, expected)


# -- trip counts that depend on the data --------------------------------------------------------

def test_newton_square_root_derivative():
    """Newton's iteration converges quadratically, and so does its derivative: d sqrt(a) / da
    = 1 / (2 sqrt(a)), for a trip count that grows with a."""
    def sqrt(a):
        return lumen.while_loop(lambda x: np.abs(x * x - a) > 1e-12 * a,
                                lambda x: 0.5 * (x + a / x), a)
    f = lumen.jit(lumen.grad(sqrt))
    for a in (2.0, 10.0, 1e6):
        assert f(np.float64(a)) == pytest.approx(0.5 / np.sqrt(a), rel=1e-9)
    assert f.cache_info()["compiles"] == 1


def grow(x, c):
    """Grow x until it passes 10: an int counter and a float in the state, the condition on
    the float, so the trip count depends on x and c."""
    def body(s):
        k, y = s
        return k + 1, y * 1.5 + c
    k, y = lumen.while_loop(lambda s: s[1] < 10.0, body, (np.int64(0), x))
    return y * k


def grow_numpy(x, c):
    k, gx, gc = 0, 1.0, 0.0
    while x < 10.0:
        x, gx, gc, k = x * 1.5 + c, gx * 1.5, gc * 1.5 + 1.0, k + 1
    return x * k, gx * k, gc * k


def test_data_dependent_trip_count():
    f = lumen.jit(lumen.value_and_grad(grow, argnums=(0, 1)))
    for x, c in ((0.7, 0.3), (9.0, 0.5), (2.0, 1.0), (12.0, 1.0)):
        value, (gx, gc) = f(np.float64(x), np.float64(c))
        ref, ref_x, ref_c = grow_numpy(x, c)
        assert (value, gx, gc) == pytest.approx((ref, ref_x, ref_c), rel=1e-12)
    assert f.cache_info()["compiles"] == 1
    lumen.check_grad(grow, (np.float64(0.7), np.float64(0.3)))


# -- captured values, pytrees, long loops -----------------------------------------------------

def rnn_until(h, w, b, n):
    """h = tanh(w @ h + b) while the counter is below n; w and b are closed over."""
    def body(s):
        return {"h": np.tanh(w @ s["h"] + b), "k": s["k"] + 1}
    return lumen.while_loop(lambda s: s["k"] < n, body, {"h": h, "k": np.int64(0)})["h"]


def rnn_grads_numpy(h, w, b, n, u):
    states = []
    for _ in range(n):
        states.append(h)
        h = np.tanh(w @ h + b)
    gh, gw, gb = u, np.zeros_like(w), np.zeros_like(b)
    for s in reversed(states):
        ga = gh * (1 - np.tanh(w @ s + b) ** 2)
        gw, gb, gh = gw + np.outer(ga, s), gb + ga, w.T @ ga
    return gh, gw, gb


def test_captured_weights_and_pytree_state():
    rng = np.random.default_rng(1)
    h, w, b = rng.standard_normal(5), rng.standard_normal((5, 5)) * 0.4, rng.standard_normal(5)
    u = rng.standard_normal(5)
    n = np.int64(6)
    gh, gw, gb = lumen.jit(lumen.grad(lambda h, w, b: u @ rnn_until(h, w, b, n),
                                      argnums=(0, 1, 2)))(h, w, b)
    for got, expected in zip((gh, gw, gb), rnn_grads_numpy(h, w, b, 6, u)):
        assert_same(got, expected)
    lumen.check_grad(lambda h, w, b: rnn_until(h, w, b, np.int64(3)), (h, w, b))


def test_tuple_state_with_two_float_parts():
    """Position and velocity integrated until the time runs out: two float state parts whose
    cotangents feed each other."""
    def orbit(p, v, dt):
        def body(s):
            p, v, t = s
            return p + dt * v, v - dt * p, t + dt
        return lumen.while_loop(lambda s: s[2] < 0.95, body, (p, v, np.float64(0.0)))[:2]
    lumen.check_grad(orbit, (np.array([1.0, 0.5]), np.array([0.0, -0.2]), np.float64(0.1)))


def test_ten_thousand_steps_grow_the_stack():
    """The recorded states outgrow the stack's first allocation many times over."""
    def decay(x, w):
        def body(s):
            x, k = s
            return x + 1e-4 * np.sin(x) * w, k + 1
        return np.sum(lumen.while_loop(lambda s: s[1] < 10000, body, (x, np.int64(0)))[0])
    x, w = np.linspace(-1.0, 1.0, 3), np.array([0.5, 1.0, 2.0])
    gx, gw = lumen.jit(lumen.grad(decay, argnums=(0, 1)))(x, w)
    states = []
    for _ in range(10000):
        states.append(x)
        x = x + 1e-4 * np.sin(x) * w
    ref_x, ref_w = np.ones(3), np.zeros(3)
    for s in reversed(states):
        ref_w = ref_w + ref_x * 1e-4 * np.sin(s)
        ref_x = ref_x * (1 + 1e-4 * np.cos(s) * w)
    assert_same(gx, ref_x, rtol=1e-9)
    assert_same(gw, ref_w, rtol=1e-9)


def test_nested_while_loops():
    """The step's VJP holds the inner loop's while_grad."""
    def f(x):
        def outer(s):
            y, i = s
            inner = lumen.while_loop(lambda t: t[1] < i, lambda t: (np.sin(t[0]), t[1] + 1),
                                     (y, np.int64(0)))[0]
            return inner * 1.1, i + 1
        return lumen.while_loop(lambda s: s[1] < 4, outer, (x, np.int64(1)))[0]
    lumen.check_grad(f, (np.array([0.3, -0.8]),))


def test_while_inside_scan_and_scan_inside_while():
    """Back-propagation through time whose step holds a while loop, and a while loop whose
    step's VJP holds a backward scan."""
    def scan_of_while(x, xs):
        def step(c, xi):
            y = lumen.while_loop(lambda s: s[1] < 3, lambda s: (np.sin(s[0]) + xi, s[1] + 1),
                                 (c, np.int64(0)))[0]
            return y, y * 2
        return lumen.scan(step, x, xs)[1]

    def while_of_scan(x, xs):
        def body(s):
            c = lumen.scan(lambda c, xi: (np.tanh(c * xi), c), s[0], xs)[0]
            return c + 0.1, s[1] + 1
        return lumen.while_loop(lambda s: s[1] < 3, body, (x, np.int64(0)))[0]
    args = (np.array([0.3, -0.2]), np.random.default_rng(2).standard_normal((4, 2)))
    lumen.check_grad(scan_of_while, args)
    lumen.check_grad(while_of_scan, args)


def test_error_inside_the_loop_frees_the_stack_and_raises():
    """An index that runs out of bounds at step 4 leaves while_grad's recording loop (the only
    loop left: the primal value is not needed) with IndexError; the next call, in bounds,
    works."""
    def f(x, table):
        def body(s):
            y, i = s
            return y * table[i], i + 1
        return np.sum(lumen.while_loop(lambda s: s[1] < 4, body, (x, np.int64(0)))[0])
    g = lumen.jit(lumen.grad(f))
    x = np.array([1.0, 2.0])
    ops = [n.op for n in g.lower(x, np.ones(3)).optimized_graph().nodes]
    assert "while_grad" in ops and "while" not in ops
    with pytest.raises(IndexError):
        g(x, np.array([2.0, 3.0, 4.0]))
    assert_same(g(x, np.array([2.0, 3.0, 4.0, 5.0])), np.full(2, 120.0))


# -- derivatives of the derivative ------------------------------------------------------------

def power(a, n):
    """a ** n by repeated multiplication."""
    return lumen.while_loop(lambda s: s[1] < n, lambda s: (s[0] * a, s[1] + 1),
                            (np.ones_like(a), np.int64(0)))[0]


def test_second_derivative_reverse_over_reverse():
    d2 = lumen.jit(lumen.grad(lumen.grad(lambda a: power(a, np.int64(5)))))
    assert d2(np.float64(1.3)) == pytest.approx(20 * 1.3 ** 3, rel=1e-12)


def test_hessian_vector_product_forward_over_reverse():
    def f(x):
        return np.sum(sin_loop(x, np.array([1.2, 0.8]), np.int64(3)))
    x, v = np.array([0.4, -0.3]), np.array([1.0, 2.0])
    (got,) = lumen.jit(lambda x, v: lumen.hvp(f, (x,), (v,)))(x, v)
    eps = 1e-6
    grad = lumen.jit(lumen.grad(f))
    expected = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_gradient_of_a_gradient_matches_finite_differences(sin_args):
    x, w = sin_args
    lumen.check_grad(lambda x, w: lumen.grad(sin_loss, argnums=(0, 1))(x, w, np.int64(3)), (x, w))
