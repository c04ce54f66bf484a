"""lumen in one minute: a 2-layer network's forward pass and cross-entropy loss, written in
plain NumPy, compiled with @lumen.jit, checked against NumPy and timed next to it."""
import time

import numpy as np

import lumen


def loss(x, labels, w1, b1, w2, b2):
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    m = logits.max(axis=1, keepdims=True)
    log_probs = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(x.shape[0]), labels].mean()


compiled = lumen.jit(loss)


def per_call(fn, args, repeat=200):
    fn(*args)
    start = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - start) / repeat


def main():
    rng = np.random.default_rng(0)
    batch, n_in, n_hidden, n_out = 64, 784, 500, 10
    args = (rng.standard_normal((batch, n_in)).astype(np.float32),
            rng.integers(0, n_out, batch),
            (rng.standard_normal((n_in, n_hidden)) * 0.05).astype(np.float32),
            np.zeros(n_hidden, np.float32),
            (rng.standard_normal((n_hidden, n_out)) * 0.05).astype(np.float32),
            np.zeros(n_out, np.float32))
    got, expected = compiled(*args), loss(*args)
    print(f"loss (lumen) = {float(got):.6f}   loss (NumPy) = {float(expected):.6f}")
    assert np.allclose(got, expected, rtol=1e-5), "lumen disagrees with NumPy"
    t_lumen, t_numpy = per_call(compiled, args), per_call(loss, args)
    print(f"time per call: lumen {t_lumen * 1e6:8.1f} us   NumPy {t_numpy * 1e6:8.1f} us   "
          f"(NumPy / lumen = {t_numpy / t_lumen:.2f}x)")
    print("\nthe traced program:\n" + compiled.lower(*args).ir())


if __name__ == "__main__":
    main()
