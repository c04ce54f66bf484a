"""ner: one training epoch of the NER tagger of examples/ner_lstm_crf.py — the bidirectional LSTM
NeuroCRF of "LSTM-Based NeuroCRFs for Named Entity Recognition" (Rondeau & Su, 2016) — at the
example's sizes: its 1500 training sentences (17,673 words, 260 word types), word embeddings 32
and capitalisation embeddings 5 wide, 48 LSTM units each way, 9 labels (a 9 x 9 CRF score matrix
per word), float32.

One call = one epoch: for every sentence in corpus order, one SGD step (lr 0.05, the gradient's
norm clipped to 5) of loss = log Z - gold score, with dropout on the inputs and on the BLSTM's
outputs. The dropout masks are inputs (drawn once, rate 0.2), so that every implementation
computes the same numbers; the example draws them with `lumen.random` inside its step instead.
Inputs ``(words, caps, tags, offsets, mask_in, mask_h, *params)``: the sentences concatenated
(sentence s is rows offsets[s]:offsets[s+1]) and the parameters in the order of PARAMS; result
``(sum of the losses, *updated params)``. Each implementation's builder gives a one-sentence
step, and ``epoch`` (the workload's ``loop``) calls it on every sentence from Python, as a user
would: lumen's step compiles once for every length, jax's (`jax.jit`, applied by the adapter)
once per distinct length (in the first call), pytensor's once (`pytensor.function`); torch runs
eagerly; NumPy's is the hand-written backward pass of W5 (bench/workloads/lstm_crf.py) plus the
embeddings'. Throughput: sentences/s = 1500 / time.

The result is checked after 1500 float32 SGD steps, so rounding differences grow along the
epoch: the tolerance is rtol 2e-3 (the loss sum and every parameter).
"""
import functools

import numpy as np

from ..harness import Workload
from .lstm_crf import (_crf, _jax_crf_loss, _jax_lstm, _lstm_backward, _lstm_forward,
                       _pytensor_crf_loss, _pytensor_lstm, _pytensor_params, _torch_crf_loss,
                       _torch_lstm)

PARAMS = ("words", "caps", "wxf", "whf", "bf", "wxb", "whb", "bb", "wo", "bo")
N_LABELS = 9
SHAPE = (1500, 32, 5, 48)        # sentences, word embedding, capitalisation embedding, LSTM units
QUICK_SHAPE = (60, 8, 2, 6)
LR = np.float32(0.05)
CLIP = 5.0
RATE = 0.2
DTYPE = np.float32
TOL = dict(rtol=2e-3, atol=1e-5)


def make_inputs(shape, dtype, rng):
    """The example's training corpus (seed 0) and initial parameters; dropout masks from rng."""
    from examples import ner_lstm_crf as ner
    n, embed, caps, hidden = shape
    sentences = ner.corpus(n, seed=0)
    vocab = ner.Vocabulary(sentences)
    words, cap, tags = (np.concatenate(a) for a in zip(*(vocab.encode(w, t) for w, t in sentences)))
    offsets = np.cumsum([0] + [len(w) for w, _ in sentences])
    params = ner.init_params(rng, len(vocab), embed, caps, hidden, dtype=dtype)
    masks = [((rng.random((len(words), d)) >= RATE) / (1 - RATE)).astype(dtype)
             for d in (embed + caps, 2 * hidden)]
    return (words, cap, tags, offsets, *masks, *(params[k] for k in PARAMS))


def _sentences(offsets):
    return [(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]


# ---- NumPy: W5's forward loops and backward pass, plus the embeddings and the dropout masks -----

def _numpy_grads(p, words, caps, tags, m_in, m_h):
    """(loss, {name: dloss/dparam}) for one sentence."""
    hdim = p["whf"].shape[0]
    x = np.concatenate([p["words"][words], p["caps"][caps]], axis=1) * m_in
    fwd = _lstm_forward(x, p["wxf"], p["whf"], p["bf"])
    bwd = _lstm_forward(x[::-1], p["wxb"], p["whb"], p["bb"])   # reads the sentence reversed
    h = np.concatenate([fwd[0][1:], bwd[0][1:][::-1]], axis=1) * m_h
    loss, ds = _crf(h @ p["wo"] + p["bo"], tags)
    dh = (ds @ p["wo"].T) * m_h
    dwxf, dwhf, dbf, dzf = _lstm_backward(x, p["whf"], *fwd, dh[:, :hdim])
    dwxb, dwhb, dbb, dzb = _lstm_backward(x[::-1], p["whb"], *bwd, dh[::-1, hdim:])
    dx = (dzf @ p["wxf"].T + (dzb @ p["wxb"].T)[::-1]) * m_in
    embed = p["words"].shape[1]
    dwords, dcaps = np.zeros_like(p["words"]), np.zeros_like(p["caps"])
    np.add.at(dwords, words, dx[:, :embed])
    np.add.at(dcaps, caps, dx[:, embed:])
    return loss, dict(words=dwords, caps=dcaps, wxf=dwxf, whf=dwhf, bf=dbf, wxb=dwxb, whb=dwhb,
                      bb=dbb, wo=h.T @ ds, bo=ds.sum(axis=0))


def numpy_step(words, caps, tags, m_in, m_h, *params):
    p = dict(zip(PARAMS, params))
    loss, g = _numpy_grads(p, words, caps, tags, m_in, m_h)
    norm = np.sqrt(sum(np.sum(d * d) for d in g.values()))
    scale = LR * np.minimum(1, CLIP / (norm + 1e-6))
    return (loss, *(p[k] - scale * g[k] for k in PARAMS))


def epoch(step, words, caps, tags, offsets, m_in, m_h, *params):
    """SGD over the sentences in order: ``step(words, caps, tags, m_in, m_h, *params) -> (loss,
    *new params)`` on each sentence's rows, as NumPy arrays (``np.asarray`` of jax's or torch's
    CPU arrays, once an epoch); -> (the sum of the losses, *params)."""
    data = [np.asarray(a) for a in (words, caps, tags, m_in, m_h)]
    losses = []
    for a, b in _sentences(np.asarray(offsets)):
        loss, *params = step(*(d[a:b] for d in data), *params)
        losses.append(loss)                   # read at the end: jax may run ahead
    return (sum(float(v) for v in losses), *params)


# ---- the compiled steps ---------------------------------------------------------------------------

def _lumen(inputs):
    """The example's network and SGD update (examples/ner_lstm_crf.py), masks for its dropout."""
    import lumen
    from examples import ner_lstm_crf as ner
    from examples import neurocrf

    @lumen.jit
    def step(words, caps, tags, m_in, m_h, *params):
        def loss(p):
            g = ner.transition_scores(p, words, caps, lambda site, x: x * (m_in, m_h)[site])
            return neurocrf.crf_loss(g, tags)
        value, grads = lumen.value_and_grad(loss)(dict(zip(PARAMS, params)))
        new = ner.sgd_update(dict(zip(PARAMS, params)), grads, LR, CLIP)
        return (value, *(new[k] for k in PARAMS))
    return step


def _jax(inputs):
    """A step for jax.jit (the adapter applies it): one compilation per sentence length."""
    import jax
    import jax.numpy as jnp

    def loss(p, words, caps, tags, m_in, m_h):
        x = jnp.concatenate([p["words"][words], p["caps"][caps]], axis=1) * m_in
        h = jnp.concatenate([_jax_lstm(x, p["wxf"], p["whf"], p["bf"]),
                             _jax_lstm(x, p["wxb"], p["whb"], p["bb"], reverse=True)], axis=1) * m_h
        return _jax_crf_loss((h @ p["wo"] + p["bo"]).reshape(x.shape[0], N_LABELS, N_LABELS), tags)

    def step(words, caps, tags, m_in, m_h, *params):
        p = dict(zip(PARAMS, params))
        value, grads = jax.value_and_grad(loss)(p, words, caps, tags, m_in, m_h)
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads.values()))
        scale = LR * jnp.minimum(1, CLIP / (norm + 1e-6))
        return (value, *(p[k] - scale * grads[k] for k in PARAMS))
    return step


def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    words, caps, tags = (pt.vector(n, dtype=inputs[0].dtype) for n in ("words", "caps", "tags"))
    m_in, m_h = pt.matrix("m_in", dtype=DTYPE), pt.matrix("m_h", dtype=DTYPE)
    params = _pytensor_params(inputs[6:])
    p = dict(zip(PARAMS, params))
    hdim = inputs[6 + PARAMS.index("whf")].shape[0]
    x = pt.concatenate([p["words"][words], p["caps"][caps]], axis=1) * m_in
    h = pt.concatenate([_pytensor_lstm(x, p["wxf"], p["whf"], p["bf"], hdim),
                        _pytensor_lstm(x, p["wxb"], p["whb"], p["bb"], hdim, reverse=True)],
                       axis=1) * m_h
    g = (pt.dot(h, p["wo"]) + p["bo"]).reshape((x.shape[0], N_LABELS, N_LABELS))
    loss = _pytensor_crf_loss(g, tags)
    grads = pytensor.grad(loss, params)
    norm = pt.sqrt(sum((d * d).sum() for d in grads))
    scale = (LR * pt.minimum(1, CLIP / (norm + 1e-6))).astype(DTYPE)
    return pytensor.function([words, caps, tags, m_in, m_h, *params],
                             [loss] + [q - scale * d for q, d in zip(params, grads)])


def _torch(inputs):
    """Eager autograd; the sentence's rows arrive as NumPy arrays (shared, not copied)."""
    import torch
    lr = float(LR)

    def step(words, caps, tags, m_in, m_h, *params):
        words, caps, tags, m_in, m_h = map(torch.from_numpy, (words, caps, tags, m_in, m_h))
        p = {k: v.detach().requires_grad_() for k, v in zip(PARAMS, params)}
        x = torch.cat([p["words"][words], p["caps"][caps]], dim=1) * m_in
        h = torch.cat([_torch_lstm(x, p["wxf"], p["whf"], p["bf"]),
                       _torch_lstm(x, p["wxb"], p["whb"], p["bb"], reverse=True)], dim=1) * m_h
        loss = _torch_crf_loss((h @ p["wo"] + p["bo"]).reshape(-1, N_LABELS, N_LABELS), tags)
        grads = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            norm = torch.sqrt(sum((d * d).sum() for d in grads))
            scale = lr * torch.clamp(CLIP / (norm + 1e-6), max=1)
            return (loss.detach(), *(v - scale * d for v, d in zip(p.values(), grads)))
    return step


class NerWorkload(Workload):
    """A Workload whose description names the corpus and the model."""

    def describe(self, quick: bool) -> str:
        n, embed, caps, hidden = self.quick_shape if quick else self.shape
        return (f"one training epoch of the BLSTM NeuroCRF tagger (examples/ner_lstm_crf.py): {n} "
                f"sentences of its synthetic corpus, one SGD step each (lr {float(LR):g}, gradient "
                f"norm clipped to {CLIP:g}, dropout {RATE:g} with masks given as inputs); "
                f"embeddings {embed} + {caps}, {hidden} LSTM units each way, {N_LABELS} labels, "
                f"{np.dtype(self.dtype).name}; returns the loss sum and the {len(PARAMS)} "
                f"updated parameters; sentences/s = {n} / time")


WORKLOADS = [NerWorkload(
    name="ner.epoch", family="ner",
    expr="for each sentence: BLSTM -> G_t = reshape(h_t @ Wo + bo, (K, K)); "
         "loss = log Z - gold score; clipped SGD step",
    dtype=DTYPE, shape=SHAPE, quick_shape=QUICK_SHAPE, n_inputs=6 + len(PARAMS),
    reference=functools.partial(epoch, numpy_step), loop=epoch, make_inputs=make_inputs,
    bytes_moved=None,
    impls={"numpy": lambda inputs: numpy_step, "lumen": _lumen, "jax": _jax,
           "pytensor": _pytensor, "torch": _torch},
    notes={"numpy": "(hand-written backward pass: W5's, plus the embeddings')",
           "lumen": "(lumen.jit of lumen.value_and_grad per sentence, one compilation)",
           "jax": "(jax.jit of jax.value_and_grad per sentence: compiles once per sentence length)",
           "pytensor": "(pytensor.function of pytensor.grad per sentence; its gradient of "
                       "pt.logsumexp inside scan overflows in float32 once log Z passes ~88: NaN "
                       "parameters from sentence 278 on)",
           "torch": "(eager autograd per sentence, Python loops over the words)"},
    **TOL)]
