"""examples/ner_lstm_crf.py and examples/neurocrf.py: the CoNLL chunk scorer on hand-made cases,
the CRF's log Z and Viterbi path against enumerating every label path, the tagger's gradient
against finite differences, and a short training run that must reach F1 >= 0.93."""
import itertools

import numpy as np
import pytest
import scipy.special

import lumen
from examples import ner_lstm_crf as ner
from examples import neurocrf

# ---- the entity-level scorer ------------------------------------------------------------------


@pytest.mark.parametrize("tags, expected", [
    (["O", "O"], set()),
    (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
    (["B-PER", "B-PER", "I-PER"], {("PER", 0, 1), ("PER", 1, 3)}),       # adjacent entities
    (["O", "I-ORG", "I-ORG", "O"], {("ORG", 1, 3)}),                     # I- after O starts one
    (["B-LOC", "I-ORG", "I-ORG"], {("LOC", 0, 1), ("ORG", 1, 3)}),       # a type change too
    (["I-MISC"], {("MISC", 0, 1)}),
])
def test_chunks_read_iob2_as_conlleval(tags, expected):
    assert ner.chunks(tags) == expected


def test_score_counts_exact_matches_per_class():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O", "B-MISC"]]
    pred = [["B-PER", "O", "O", "B-LOC"],          # PER too short: wrong; LOC right
            ["B-LOC", "I-LOC", "O", "B-MISC"]]     # ORG's span with the LOC type; MISC right
    s = ner.score(gold, pred)
    # 4 gold, 4 predicted, 2 correct; 3 predicted spans match a gold span (c_s = 3)
    assert s["precision"] == s["recall"] == s["f1"] == 0.5
    assert s["segment_f1"] == pytest.approx(0.75)
    assert s["class_accuracy"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(s["segment_f1"] * s["class_accuracy"])   # the paper's eq. 8
    per = s["per_class"]
    assert per["LOC"] == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert per["PER"] == (0.0, 0.0, 0.0, 1)
    assert per["ORG"] == (0.0, 0.0, 0.0, 1)
    assert per["MISC"] == (1.0, 1.0, 1.0, 1)


def test_score_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="sentence 0 has 2 gold tags but 1 predicted"):
        ner.score([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="1 gold sentences but 0 predicted"):
        ner.score([["O"]], [])


def test_corpus_is_deterministic_iob2():
    a, b = ner.corpus(30, seed=3), ner.corpus(30, seed=3)
    assert a == b
    for words, tags in a:
        assert len(words) == len(tags) and words[0][0].isupper()
        for prev, tag in zip(["O"] + tags, tags):
            assert tag in ner.LABELS
            if tag.startswith("I-"):                       # IOB2: I-X only continues an X
                assert prev[2:] == tag[2:]


# ---- the CRF against enumerating all K**T label paths -------------------------------------------

def _paths(t, k):
    return np.array(list(itertools.product(range(k), repeat=t)))


def _path_scores(g, paths):
    prev = np.concatenate([np.full((len(paths), 1), neurocrf.START), paths[:, :-1]], axis=1)
    return g[np.arange(g.shape[0]), prev, paths].sum(axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("t", [1, 2, 5])
def test_log_partition_and_viterbi_match_brute_force(t, dtype):
    k = 3
    rng = np.random.default_rng(t)
    g = (2 * rng.standard_normal((t, k, k))).astype(dtype)
    paths = _paths(t, k)
    scores = _path_scores(g.astype(np.float64), paths)
    crf = lumen.jit(lambda g, y: (neurocrf.log_partition(g), neurocrf.path_score(g, y),
                                  *neurocrf.viterbi(g)))
    y = paths[rng.integers(len(paths))]
    log_z, gold, best, best_score = crf(g, y)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(log_z, scipy.special.logsumexp(scores), rtol=rtol)
    np.testing.assert_allclose(gold, _path_scores(g.astype(np.float64), y[None])[0], rtol=rtol)
    np.testing.assert_array_equal(best, paths[np.argmax(scores)])
    np.testing.assert_allclose(best_score, scores.max(), rtol=rtol)


# ---- the tagger ---------------------------------------------------------------------------------

def test_tagger_gradient_matches_finite_differences():
    """Embeddings, capitalisation features, both LSTMs and the CRF (dropout's own gradient is
    checked in tests/test_nn_stochastic.py; leaving it off here halves the compile time)."""
    params = ner.init_params(np.random.default_rng(0), n_words=5, embed=3, caps=2, hidden=3,
                             dtype=np.float64)
    words, caps, tags = np.array([1, 4, 4, 2]), np.array([1, 0, 3, 1]), np.array([1, 2, 0, 3])
    key = lumen.random.key(7)
    lumen.check_grad(lambda p: ner.sentence_loss(p, words, caps, tags, key, 0.0), (params,))


def test_training_reaches_f1_0_93():
    """A short run (the example's settings, dropout on): 600 sentences, 2 epochs, tested on 200
    sentences with unseen names (it reaches ~0.98)."""
    train_sentences = ner.corpus(600, seed=0)
    vocab = ner.Vocabulary(train_sentences)
    data = [vocab.encode(w, t) for w, t in train_sentences]
    params, _ = ner.train(data, vocab, epochs=2, log=lambda line: None)
    result, _ = ner.evaluate(params, ner.corpus(200, seed=1, unseen=True), vocab)
    assert result["f1"] >= 0.93, ner.report(result)
