"""The LSTM NeuroCRF of "LSTM-Based NeuroCRFs for Named Entity Recognition" (Rondeau & Su, 2016),
written once as plain NumPy with `lumen.scan`: the tagger of examples/ner_lstm_crf.py and the
lumen side of the benchmarks W5 (bench/workloads/lstm_crf.py) and ner (bench/workloads/ner.py).

    LSTM (h_{-1} = c_{-1} = 0; gates in the order i, f, o, g of the 4H columns):
        z_t = x_t @ Wx + h_{t-1} @ Wh + b
        i, f, o = sigmoid(z_t[:H]), sigmoid(z_t[H:2H]), sigmoid(z_t[2H:3H]);  g = tanh(z_t[3H:])
        c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    Full-rank CRF: G_t = reshape(h_t @ Wo + bo, (K, K)); G_t[i, j] scores label j at t after i at t-1
        log Z:   alpha_0 = G_0[START];  alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + G_t[i, j])
        gold:    sum_t G_t[y_{t-1}, y_t] with y_{-1} = START;   loss = log Z - gold
        Viterbi: delta_t[j] = max_i(delta_{t-1}[i] + G_t[i, j]), back-pointer argmax_i, then
                 y_{T-1} = argmax delta_{T-1} and y_{t-1} = back_t[y_t], read backwards

The label before the first word is a fixed START (0, the "O" label of an IOB2 tag set), so
alpha_0 = G_0[START] is the forward algorithm started from a one-hot alpha_{-1} without -inf.
Every function works on one sentence, traced inside `lumen.jit` (the sentence length is a
run-time size: a new length does not recompile).
"""
import numpy as np

import lumen

START = 0


def lstm(xs, wx, wh, b, reverse=False):
    """h_t for every word of xs (T, D) -> (T, H); ``reverse`` reads from the last word, with h_t
    still aligned with word t (the anti-causal half of a bidirectional layer)."""
    hdim = wh.shape[0]

    def cell(carry, xw_t):
        h, c = carry
        z = xw_t + h @ wh
        sigmoid = lumen.nn.sigmoid
        i, f, o = sigmoid(z[:hdim]), sigmoid(z[hdim:2 * hdim]), sigmoid(z[2 * hdim:3 * hdim])
        c = f * c + i * np.tanh(z[3 * hdim:])
        h = o * np.tanh(c)
        return (h, c), h
    h0 = np.zeros(hdim, dtype=xs.dtype)
    _, hs = lumen.scan(cell, (h0, h0), xs @ wx + b, reverse=reverse)
    return hs


def blstm(xs, forward, backward):
    """concat(h_t forward, h_t backward) (T, 2H); ``forward``/``backward`` are (Wx, Wh, b)."""
    return np.concatenate([lstm(xs, *forward), lstm(xs, *backward, reverse=True)], axis=1)


def transitions(h, wo, bo, n_labels):
    """G (T, K, K): the full-rank CRF's label-transition scores, one K x K matrix per word."""
    return (h @ wo + bo).reshape(h.shape[0], n_labels, n_labels)


def log_partition(g):
    """log Z, the log-sum over every label path, by the forward algorithm."""
    def step(alpha, g_t):
        return lumen.nn.logsumexp(alpha[:, None] + g_t, axis=0), None
    alpha, _ = lumen.scan(step, g[0, START], g[1:])
    return lumen.nn.logsumexp(alpha)


def path_score(g, y):
    """The score of the label path ``y`` (T,): sum_t G_t[y_{t-1}, y_t], y_{-1} = START."""
    yprev = np.concatenate(([START], y[:-1]))
    return g[np.arange(g.shape[0]), yprev, y].sum()


def crf_loss(g, y):
    """-log p(y | x) = log Z - score(y)."""
    return log_partition(g) - path_score(g, y)


def viterbi(g):
    """The best label path (int64[T]) and its score: a max-product forward scan that stores the
    argmax back-pointers, then a reverse scan that follows them from the best last label."""
    def forward(delta, g_t):
        s = delta[:, None] + g_t
        return s.max(axis=0), np.argmax(s, axis=0)
    delta, back = lumen.scan(forward, g[0, START], g[1:])
    last = np.argmax(delta)

    def backtrace(y_next, back_t):
        y = back_t[y_next]
        return y, y
    _, earlier = lumen.scan(backtrace, last, back, reverse=True)
    return np.concatenate([earlier, last[None]]), delta.max()
