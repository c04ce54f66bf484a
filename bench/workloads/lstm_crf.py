"""W5: one SGD training step of an LSTM-CRF tagger — the model of "LSTM-Based NeuroCRFs for Named
Entity Recognition" (Rondeau & Su, 2016): an LSTM reads the sentence, and at each word its state
gives a full-rank 9 x 9 matrix of label-transition scores for a linear-chain CRF.

    LSTM (h_{-1} = c_{-1} = 0; gates in the order i, f, o, g of the 4H columns):
        z_t = x_t @ Wx + h_{t-1} @ Wh + b
        i, f, o = sigmoid(z_t[:H]), sigmoid(z_t[H:2H]), sigmoid(z_t[2H:3H]);  g = tanh(z_t[3H:])
        c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    CRF: G_t = reshape(h_t @ Wo + bo, (K, K)), G_t[i, j] = score of label j at t after label i at t-1
        alpha_0 = G_0[START];  alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + G_t[i, j])  (a scan)
        log Z = logsumexp(alpha_{T-1});  gold = sum_t G_t[y_{t-1}, y_t] with y_{-1} = START
        loss = log Z - gold
    SGD: W <- W - lr * dloss/dW for every parameter; lr = 0.01

The label before the first word is a fixed START = 0 (the "O" label of a BIO tag set), in the gold
score and in log Z alike: alpha_0 = G_0[START] is the forward algorithm started from a one-hot
alpha_{-1} (log 1 at START, log 0 elsewhere) without putting -inf into the computation. Every
implementation uses this definition.

Sizes from the paper: inputs 110 (word features), hidden 200, 9 labels, a 25-word sentence,
batch 1. ``W5.lstm-crf``: one LSTM (Wx 110 x 800, Wh 200 x 800, b 800, Wo 200 x 81, bo 81).
``W5.bilstm-crf``: a forward and a backward LSTM (the backward one reads the sentence from its end;
its h_t is aligned with word t), h_t = concat(h_t forward, h_t backward), Wo 400 x 81. One call =
one step; inputs ``(xs, y, *params)`` with xs float32[25, 110], y int64[25]; result
``(loss, *updated params)``, every one checked against NumPy's. Throughput: sentences/s = 1 / time.

float32: the loss is a sum over the sentence, so the gradients are large next to the weights, and
the largest change ``lr * dW`` of every parameter is >= ~600 times the float32 tolerance — a
gradient 0.2% wrong at its largest entries fails the check (``python -m
bench.workloads.lstm_crf`` prints the ratios and checks the hand-written backward pass against
finite differences and, if installed, jax's gradient, in float64). numba runs the reference's LSTM forward and backward loops
(``_lstm_forward``, ``_lstm_backward``) under njit as they are; its CRF and its backward are
written again with loops, since njit lacks ``max(axis=...)`` and several advanced indices.
"""
import numpy as np

from ..harness import Workload

N_LABELS = 9                     # K
SHAPE = (25, 110, 200, N_LABELS)  # words, input features, LSTM units, labels
QUICK_SHAPE = (8, 16, 12, N_LABELS)
START = 0                        # the label before the first word
LR = np.float32(0.01)
DTYPE = np.float32
TOL = dict(rtol=1e-4, atol=1e-6)


def make_inputs(shape, dtype, rng):
    """shape = (T, D, H, K, directions). xs normal (word features), y uniform labels; weights
    normal with variance 1/fan_in, biases small."""
    n, d, hdim, k, n_dir = shape
    xs = rng.standard_normal((n, d))
    y = rng.integers(0, k, n)
    params = []
    for _ in range(n_dir):
        params += [rng.standard_normal((d, 4 * hdim)) / np.sqrt(d),
                   rng.standard_normal((hdim, 4 * hdim)) / np.sqrt(hdim),
                   0.1 * rng.standard_normal(4 * hdim)]
    params += [rng.standard_normal((n_dir * hdim, k * k)) / np.sqrt(n_dir * hdim),
               0.1 * rng.standard_normal(k * k)]
    return (xs.astype(dtype), y, *(p.astype(dtype) for p in params))


# ---- NumPy: forward loops and hand-written back-propagation (the reference) -------------------

def _lstm_forward(xs, wx, wh, b):
    """Returns hs (T+1, H) with hs[0] = h_{-1} = 0, cs likewise, and acts (T, 4H): each step's
    gate activations i, f, o (sigmoid) and g (tanh)."""
    n, hdim = xs.shape[0], wh.shape[0]
    xw = xs @ wx + b                                  # every x_t @ Wx + b at once
    hs = np.zeros((n + 1, hdim), dtype=xs.dtype)
    cs = np.zeros((n + 1, hdim), dtype=xs.dtype)
    acts = np.empty((n, 4 * hdim), dtype=xs.dtype)
    for t in range(n):
        z = xw[t] + hs[t] @ wh
        a = acts[t]
        a[:3 * hdim] = 1 / (1 + np.exp(-z[:3 * hdim]))     # sigmoid
        a[3 * hdim:] = np.tanh(z[3 * hdim:])
        i, f, o, g = a[:hdim], a[hdim:2 * hdim], a[2 * hdim:3 * hdim], a[3 * hdim:]
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * np.tanh(cs[t + 1])
    return hs, cs, acts


def _lstm_backward(xs, wh, hs, cs, acts, dh_out):
    """dloss/d(Wx, Wh, b) and dloss/dz_t (T, 4H) from dh_out (T, H) = dloss/dh_t through the
    outputs (dloss/dxs = dz @ Wx.T)."""
    n, hdim = dh_out.shape
    dz = np.empty_like(acts)                          # dloss/dz_t
    dh = np.zeros(hdim, dtype=xs.dtype)               # dloss/dh_t through z_{t+1}
    dc = np.zeros(hdim, dtype=xs.dtype)               # dloss/dc_t through c_{t+1}
    for t in range(n - 1, -1, -1):
        a = acts[t]
        i, f, o, g = a[:hdim], a[hdim:2 * hdim], a[2 * hdim:3 * hdim], a[3 * hdim:]
        tc = np.tanh(cs[t + 1])
        dh = dh_out[t] + dh
        dc = dc + dh * o * (1 - tc * tc)
        d = dz[t]
        d[:hdim] = dc * g * i * (1 - i)
        d[hdim:2 * hdim] = dc * cs[t] * f * (1 - f)
        d[2 * hdim:3 * hdim] = dh * tc * o * (1 - o)
        d[3 * hdim:] = dc * i * (1 - g * g)
        dc = dc * f
        dh = d @ wh.T
    return xs.T @ dz, hs[:-1].T @ dz, dz.sum(axis=0), dz


def _crf(scores, y):
    """loss = log Z - gold score, and dloss/dscores, for scores (T, K*K)."""
    n = scores.shape[0]
    k = N_LABELS
    g = scores.reshape(n, k, k)
    alphas = np.empty((n, k), dtype=scores.dtype)
    alphas[0] = g[0, START]
    for t in range(1, n):
        a = alphas[t - 1][:, None] + g[t]
        m = a.max(axis=0)
        alphas[t] = m + np.log(np.exp(a - m).sum(axis=0))
    m = alphas[-1].max()
    e = np.exp(alphas[-1] - m)
    log_z = m + np.log(e.sum())
    rows = np.arange(n)
    yprev = np.concatenate(([START], y[:-1]))
    loss = log_z - g[rows, yprev, y].sum()
    # backward through the forward algorithm: dG_t[i, j] = P(y_{t-1} = i, y_t = j)
    dg = np.zeros_like(g)
    dalpha = e / e.sum()                              # dlog Z / dalpha_{T-1}
    for t in range(n - 1, 0, -1):
        dg[t] = np.exp(alphas[t - 1][:, None] + g[t] - alphas[t]) * dalpha
        dalpha = dg[t].sum(axis=1)
    dg[0, START] += dalpha
    dg[rows, yprev, y] -= 1                           # the gold score (one entry per step)
    return loss, dg.reshape(n, k * k)


def numpy_step(xs, y, *params):
    lstms = [params[i:i + 3] for i in range(0, len(params) - 2, 3)]   # 1 or 2 of (Wx, Wh, b)
    wo, bo = params[-2:]
    hdim = lstms[0][1].shape[0]
    seqs = [xs, xs[::-1]][:len(lstms)]                # the backward LSTM reads the sentence reversed
    fwd = [_lstm_forward(x, *p) for x, p in zip(seqs, lstms)]
    hs = [fwd[0][0][1:]] + [f[0][1:][::-1] for f in fwd[1:]]
    h = np.concatenate(hs, axis=1) if len(hs) > 1 else hs[0]
    loss, ds = _crf(h @ wo + bo, y)
    dh = ds @ wo.T
    grads = []
    for k, (x, (wx, wh, b), cache) in enumerate(zip(seqs, lstms, fwd)):
        dh_k = dh[:, k * hdim:(k + 1) * hdim]
        grads += _lstm_backward(x, wh, *cache, dh_k[::-1] if k else dh_k)[:3]
    grads += [h.T @ ds, ds.sum(axis=0)]
    return (loss, *(p - LR * g for p, g in zip(params, grads)))


# ---- lumen: lumen.scan for the LSTM and the forward algorithm, lumen.value_and_grad -----------

def lumen_loss(params, xs, y):
    """The model as plain NumPy with lumen.scan (examples/neurocrf.py)."""
    from examples import neurocrf
    lstms = [params[i:i + 3] for i in range(0, len(params) - 2, 3)]
    wo, bo = params[-2:]
    h = np.concatenate([neurocrf.lstm(xs, *p, reverse=k == 1) for k, p in enumerate(lstms)], axis=1)
    return neurocrf.crf_loss(neurocrf.transitions(h, wo, bo, N_LABELS), y)


def lumen_step(xs, y, *params):
    import lumen
    loss, grads = lumen.value_and_grad(lumen_loss)(params, xs, y)
    return (loss, *(p - LR * g for p, g in zip(params, grads)))


def _lumen(inputs):
    import lumen
    return lumen.jit(lumen_step)


# ---- jax: jax.lax.scan + jax.value_and_grad (the adapter applies jax.jit) ----------------------

def _jax_lstm(xs, wx, wh, b, reverse=False):
    import jax
    import jax.numpy as jnp
    from jax.nn import sigmoid
    hdim = wh.shape[0]

    def cell(carry, xw_t):
        h, c = carry
        z = xw_t + h @ wh
        i, f, o = sigmoid(z[:hdim]), sigmoid(z[hdim:2 * hdim]), sigmoid(z[2 * hdim:3 * hdim])
        c = f * c + i * jnp.tanh(z[3 * hdim:])
        h = o * jnp.tanh(c)
        return (h, c), h
    h0 = jnp.zeros(hdim, dtype=xs.dtype)
    _, hs = jax.lax.scan(cell, (h0, h0), xs @ wx + b, reverse=reverse)
    return hs


def _jax_crf_loss(g, y):
    """log Z - gold score for g (T, K, K)."""
    import jax
    import jax.numpy as jnp
    from jax.nn import logsumexp

    def forward(alpha, g_t):
        return logsumexp(alpha[:, None] + g_t, axis=0), None
    alpha, _ = jax.lax.scan(forward, g[0, START], g[1:])
    yprev = jnp.concatenate([jnp.array([START], dtype=y.dtype), y[:-1]])
    return logsumexp(alpha) - g[jnp.arange(g.shape[0]), yprev, y].sum()


def _jax_loss():
    import jax.numpy as jnp

    def loss(params, xs, y):
        lstms = [params[i:i + 3] for i in range(0, len(params) - 2, 3)]
        wo, bo = params[-2:]
        h = jnp.concatenate([_jax_lstm(xs, *p, reverse=k == 1) for k, p in enumerate(lstms)], axis=1)
        k = N_LABELS
        return _jax_crf_loss((h @ wo + bo).reshape(xs.shape[0], k, k), y)
    return loss


def _jax(inputs):
    import jax
    loss_fn = _jax_loss()

    def step(xs, y, *params):
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, y)
        return (loss, *(p - LR * g for p, g in zip(params, grads)))
    return step


# ---- pytensor: pytensor.scan + pytensor.grad, a function returning the new parameters ---------

def _pytensor_lstm(xs, wx, wh, b, hdim, reverse=False):
    """hs (T, H) of a symbolic sentence xs (T, D); ``reverse`` aligned with the words."""
    import pytensor
    import pytensor.tensor as pt

    def cell(xw_t, h, c, wh):
        z = xw_t + pt.dot(h, wh)
        i, f, o = (pt.sigmoid(z[j * hdim:(j + 1) * hdim]) for j in range(3))
        c = f * c + i * pt.tanh(z[3 * hdim:])
        return o * pt.tanh(c), c
    h0 = pt.zeros((hdim,), dtype=xs.dtype)
    (h, _), _ = pytensor.scan(cell, sequences=[pt.dot(xs, wx) + b], outputs_info=[h0, h0],
                              non_sequences=[wh], go_backwards=reverse, strict=True)
    return h[::-1] if reverse else h                # go_backwards: outputs in reverse order


def _pytensor_crf_loss(g, y):
    """log Z - gold score for a symbolic g (T, K, K) and y (T,)."""
    import pytensor
    import pytensor.tensor as pt

    def forward(g_t, alpha):
        return pt.logsumexp(alpha[:, None] + g_t, axis=0)
    alphas, _ = pytensor.scan(forward, sequences=[g[1:]], outputs_info=[g[0, START]], strict=True)
    yprev = pt.concatenate([pt.as_tensor_variable(np.array([START], dtype=y.dtype)), y[:-1]])
    return pt.logsumexp(alphas[-1]) - g[pt.arange(g.shape[0]), yprev, y].sum()


def _pytensor_params(arrays):
    """Symbolic matrices and vectors for the parameter arrays."""
    import pytensor.tensor as pt
    return [(pt.matrix if p.ndim == 2 else pt.vector)(f"p{k}", dtype=p.dtype)
            for k, p in enumerate(arrays)]


def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    xs = pt.matrix("xs", dtype=DTYPE)
    y = pt.vector("y", dtype=inputs[1].dtype)
    params = _pytensor_params(inputs[2:])
    lstms = [params[j:j + 3] for j in range(0, len(params) - 2, 3)]
    wo, bo = params[-2:]
    hdim = inputs[3].shape[0]
    hs = [_pytensor_lstm(xs, *p, hdim, reverse=j == 1) for j, p in enumerate(lstms)]
    h = pt.concatenate(hs, axis=1) if len(hs) > 1 else hs[0]
    k = N_LABELS
    loss = _pytensor_crf_loss((pt.dot(h, wo) + bo).reshape((xs.shape[0], k, k)), y)
    grads = pytensor.grad(loss, params)
    return pytensor.function([xs, y, *params], [loss] + [p - LR * g for p, g in zip(params, grads)])


# ---- numba: the NumPy reference's LSTM loops under @njit, the CRF written with loops ------------

def _numba(inputs):
    """``_lstm_forward`` and ``_lstm_backward`` compile as they are; the CRF is rewritten with
    loops (njit has no axis argument for max and takes one advanced index only)."""
    import numba
    lstm_forward = numba.njit(fastmath=False)(_lstm_forward)
    lstm_backward = numba.njit(fastmath=False)(_lstm_backward)
    k = N_LABELS

    @numba.njit(fastmath=False)
    def crf(scores, y):
        n = scores.shape[0]
        g = scores.reshape((n, k, k))
        alphas = np.empty((n, k), dtype=scores.dtype)
        alphas[0] = g[0, START]
        for t in range(1, n):
            for j in range(k):
                m = alphas[t - 1, 0] + g[t, 0, j]
                for i in range(1, k):
                    m = max(m, alphas[t - 1, i] + g[t, i, j])
                s = np.float32(0)
                for i in range(k):
                    s += np.exp(alphas[t - 1, i] + g[t, i, j] - m)
                alphas[t, j] = m + np.log(s)
        m = alphas[n - 1].max()
        e = np.exp(alphas[n - 1] - m)
        gold = g[0, START, y[0]]
        for t in range(1, n):
            gold += g[t, y[t - 1], y[t]]
        loss = m + np.log(e.sum()) - gold
        dg = np.zeros_like(g)
        dalpha = e / e.sum()
        for t in range(n - 1, 0, -1):
            for i in range(k):
                for j in range(k):
                    dg[t, i, j] = np.exp(alphas[t - 1, i] + g[t, i, j] - alphas[t, j]) * dalpha[j]
            dalpha = dg[t].sum(axis=1)
        dg[0, START] += dalpha
        dg[0, START, y[0]] -= 1
        for t in range(1, n):
            dg[t, y[t - 1], y[t]] -= 1
        return loss, dg.reshape((n, k * k))

    @numba.njit(fastmath=False)
    def step(xs, y, wx, wh, b, wo, bo):
        hs, cs, acts = lstm_forward(xs, wx, wh, b)
        h = hs[1:]
        loss, ds = crf(h @ wo + bo, y)
        dwx, dwh, db, _ = lstm_backward(xs, wh, hs, cs, acts, ds @ wo.T)
        return (loss, wx - LR * dwx, wh - LR * dwh, b - LR * db,
                wo - LR * (h.T @ ds), bo - LR * ds.sum(axis=0))

    @numba.njit(fastmath=False)
    def bi_step(xs, y, wxf, whf, bf, wxb, whb, bb, wo, bo):
        hdim = whf.shape[0]
        xr = np.ascontiguousarray(xs[::-1])
        hf, cf, af = lstm_forward(xs, wxf, whf, bf)
        hb, cb, ab = lstm_forward(xr, wxb, whb, bb)
        h = np.concatenate((hf[1:], hb[1:][::-1]), axis=1)
        loss, ds = crf(h @ wo + bo, y)
        dh = ds @ wo.T
        dwxf, dwhf, dbf, _ = lstm_backward(xs, whf, hf, cf, af, np.ascontiguousarray(dh[:, :hdim]))
        dwxb, dwhb, dbb, _ = lstm_backward(xr, whb, hb, cb, ab, np.ascontiguousarray(dh[::-1, hdim:]))
        return (loss, wxf - LR * dwxf, whf - LR * dwhf, bf - LR * dbf,
                wxb - LR * dwxb, whb - LR * dwhb, bb - LR * dbb,
                wo - LR * (h.T @ ds), bo - LR * ds.sum(axis=0))
    return step if len(inputs) == 7 else bi_step


# ---- torch: eager autograd, Python loops over the sentence ------------------------------------

def _torch_lstm(xs, wx, wh, b, reverse=False):
    import torch
    hdim = wh.shape[0]
    xw = xs @ wx + b
    h = c = torch.zeros(hdim, dtype=xs.dtype)
    hs = [None] * xs.shape[0]
    for t in (range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])):
        z = xw[t] + h @ wh
        i, f, o = torch.sigmoid(z[:3 * hdim]).split(hdim)
        c = f * c + i * torch.tanh(z[3 * hdim:])
        h = o * torch.tanh(c)
        hs[t] = h
    return torch.stack(hs)


def _torch_crf_loss(g, y):
    """log Z - gold score for g (T, K, K), a Python loop over the words."""
    import torch
    alpha = g[0, START]
    for t in range(1, g.shape[0]):
        alpha = torch.logsumexp(alpha[:, None] + g[t], dim=0)
    yprev = torch.cat([torch.tensor([START], dtype=y.dtype), y[:-1]])
    return torch.logsumexp(alpha, dim=0) - g[torch.arange(g.shape[0]), yprev, y].sum()


def _torch(inputs):
    import torch
    lr = float(LR)

    def step(xs, y, *params):
        params = [p.detach().requires_grad_() for p in params]
        lstms = [params[i:i + 3] for i in range(0, len(params) - 2, 3)]
        wo, bo = params[-2:]
        h = torch.cat([_torch_lstm(xs, *p, reverse=k == 1) for k, p in enumerate(lstms)], dim=1)
        k = N_LABELS
        loss = _torch_crf_loss((h @ wo + bo).reshape(xs.shape[0], k, k), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            return (loss.detach(), *(p - lr * g for p, g in zip(params, grads)))
    return step


# ---- the workloads ----------------------------------------------------------------------------

class LstmCrfWorkload(Workload):
    """A Workload whose description names its actual inputs (several arrays of different shapes)."""

    def describe(self, quick: bool) -> str:
        n, d, hdim, k, n_dir = self.quick_shape if quick else self.shape
        lstm = f"Wx ({d} x {4 * hdim}), Wh ({hdim} x {4 * hdim}), b ({4 * hdim})"
        return (f"{'bidirectional ' if n_dir == 2 else ''}LSTM-CRF training step (full-rank CRF: a "
                f"{k} x {k} score matrix per word from h_t; loss = log Z - gold score; SGD lr "
                f"{float(LR):g}), one sentence of {n} words, {np.dtype(self.dtype).name}; xs ({n} x {d}), "
                f"y (int64, {n}), {n_dir} x [{lstm}], Wo ({n_dir * hdim} x {k * k}), bo ({k * k}); "
                f"returns loss and the {3 * n_dir + 2} updated parameters; sentences/s = 1 / time")


_NOTES = {
    "numpy": "(hand-written forward loops + backprop through the LSTM and the forward algorithm)",
    "lumen": "(lumen.jit of lumen.value_and_grad through two lumen.scan)",
    "numba": "(here: plain njit, no prange: NumPy's LSTM loops and backprop compiled as they are, "
             "the CRF's forward algorithm and its backward written as loops; @ via BLAS)",
    "jax": "(jax.lax.scan + jax.value_and_grad)",
    "pytensor": "(pytensor.scan + pytensor.grad, returns new params)",
    "torch": "(autograd, Python loops over the sentence)",
}

WORKLOADS = [
    LstmCrfWorkload(
        name=f"W5.{'bi' if n_dir == 2 else ''}lstm-crf", family="lstm_crf",
        expr="LSTM over the sentence; G_t = reshape(h_t @ Wo + bo, (K, K)); "
             "loss = log Z (forward algorithm) - gold score; SGD step",
        dtype=DTYPE, shape=(*SHAPE, n_dir), quick_shape=(*QUICK_SHAPE, n_dir),
        n_inputs=2 + 3 * n_dir + 2, reference=numpy_step, make_inputs=make_inputs, bytes_moved=None,
        chain_from=2,
        impls={"lumen": _lumen, "numba": _numba, "jax": _jax, "pytensor": _pytensor, "torch": _torch},
        notes=_NOTES, **TOL)
    for n_dir in (1, 2)
]


# ---- checking the reference --------------------------------------------------------------------

def _check(n_dir, seed=0):
    """The hand-written backward pass against central finite differences and jax's gradient
    (float64), and max |lr*dW| / tolerance per parameter in float32 (a gradient relatively off by
    e changes the result by e times that). ``python -m bench.workloads.lstm_crf``."""
    names = (["Wx", "Wh", "b"] if n_dir == 1 else ["Wxf", "Whf", "bf", "Wxb", "Whb", "bb"]) + ["Wo", "bo"]
    xs, y, *params = make_inputs((*SHAPE, n_dir), np.float64, np.random.default_rng(seed))
    loss, *new = numpy_step(xs, y, *params)
    grads = [(p - n) / float(LR) for p, n in zip(params, new)]
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jl, jg = jax.value_and_grad(_jax_loss())(tuple(params), xs, y)
        print(f"  loss {loss:.12g}, jax {float(jl):.12g}; max |grad - jax's| / max |jax's|: "
              + ", ".join(f"{nm} {np.abs(g - np.asarray(j)).max() / np.abs(np.asarray(j)).max():.1e}"
                          for nm, g, j in zip(names, grads, jg)))
    except ImportError:
        print("  (jax not installed: no comparison with jax's gradient)")
    rng = np.random.default_rng(1)
    for k, g in enumerate(grads):
        d = rng.standard_normal(g.shape)
        eps = 1e-6
        plus = [p + eps * d if i == k else p for i, p in enumerate(params)]
        minus = [p - eps * d if i == k else p for i, p in enumerate(params)]
        fd = (numpy_step(xs, y, *plus)[0] - numpy_step(xs, y, *minus)[0]) / (2 * eps)
        an = float(np.sum(g * d))
        print(f"  {names[k]}: finite differences {fd:.10g}, backprop {an:.10g} "
              f"(rel. diff {abs(fd - an) / abs(an):.1e})")
    xs, y, *params = make_inputs((*SHAPE, n_dir), DTYPE, np.random.default_rng(seed))
    _, *new = numpy_step(xs, y, *params)
    ratios = [float(np.max(np.abs(n - p) / (TOL["atol"] + TOL["rtol"] * np.abs(n))))
              for p, n in zip(params, new)]
    print(f"  float32, rtol {TOL['rtol']:g}, atol {TOL['atol']:g}: max |lr*dW| / tolerance = "
          + ", ".join(f"{nm} {r:.3g}" for nm, r in zip(names, ratios)))


if __name__ == "__main__":
    for n_dir in (1, 2):
        print(f"W5.{'bi' if n_dir == 2 else ''}lstm-crf")
        _check(n_dir)
