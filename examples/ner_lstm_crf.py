"""Named-entity recognition with the bidirectional LSTM NeuroCRF of "LSTM-Based NeuroCRFs for Named
Entity Recognition" (Rondeau & Su, 2016), trained by SGD with lumen, on a synthetic IOB2 corpus.

Each word is a (learned) word embedding next to a capitalisation embedding (the paper's simple word
feature); dropout on those inputs and on the BLSTM outputs; a full-rank CRF whose 9 x 9 transition
scores come from the network at every word (examples/neurocrf.py); one jitted `value_and_grad`
SGD step per sentence (any length, one compilation); Viterbi decoding in `lumen.scan`. Reports
per-class and overall entity-level precision / recall / F1 as CoNLL's conlleval does, and the
paper's segmental F1 and classification accuracy (its eq. 8-10).

    python examples/ner_lstm_crf.py
"""
import time

import numpy as np

import lumen

if __package__:            # imported as examples.ner_lstm_crf (tests, bench)
    from . import neurocrf
else:                      # run as a script
    import neurocrf

# ---- the corpus: a small grammar -----------------------------------------------------------
#
# A sentence is one of TEMPLATES with its slots filled at random (numpy's default_rng(seed)):
#   <PER>   a first name, then a last name with probability 0.7       -> B-PER I-PER
#   <LOC>, <ORG>, <MISC>   an entry of that gazetteer (1 to 4 words)   -> B-X I-X ...
#   <X|Y>   <X> or <Y>, evenly: contexts shared by two kinds
#   <DAY>, <NUM>   a weekday or a number (not entities: O)
# Every other token is a literal word tagged O. The first word is capitalised, as in text; names
# keep their capitals, other words are lower case. Names are ambiguous: Paris, Jordan, Sofia,
# Milan and Victoria are first names and places, Washington and Lincoln last names, places and the
# start of organisations, "may" a month and a name, "apple" a fruit and a company, and a country
# name is a LOC alone but part of an ORG in "Bank of Kenya" - only the context tells them apart.
# The test sentences (``corpus(n, seed, unseen=True)``) also draw from UNSEEN, names that never
# occur in training: their words are unknown to the model, which must tag them by their
# capitals and their context.

FIRST_NAMES = ["Anna", "Marco", "Jordan", "Paris", "May", "Victor", "Elena", "Omar", "Lucia", "Kenji",
               "Grace", "Sofia", "Milan", "Victoria", "Ines", "Tomas"]
LAST_NAMES = ["Kowalski", "Lee", "Washington", "Moreno", "Chen", "Okafor", "Lindqvist", "Dubois",
              "Lincoln", "Santos", "Young", "Haddad"]
GAZETTEERS = {
    "LOC": ["Paris", "Milan", "Sofia", "Jordan", "Washington", "Lincoln", "Victoria", "Kenya", "Peru",
            "Oslo", "Lagos", "Hanoi", "New York", "Buenos Aires", "Sierra Leone", "Costa Rica",
            "Hong Kong", "Rio de Janeiro"],
    "ORG": ["United Nations", "Red Cross", "Washington Post", "Lincoln Bank", "Apple", "Kestrel Labs",
            "Nordic Steel", "Sofia Times", "Milan Motors", "Bank of Kenya", "Peru Mining Company",
            "University of Oslo"],
    "MISC": ["French", "Kenyan", "Peruvian", "Norwegian", "Japanese", "Spanish", "World Cup",
             "Olympic Games", "Tour de France", "Nobel Prize", "Cold War", "Rio Carnival"],
}
UNSEEN = {"FIRST": ["Zofia", "Kwame", "Aiko"], "LAST": ["Novak", "Mensah"],
          "LOC": ["Quito", "Tbilisi", "Cape Verde"], "ORG": ["Falcon Energy", "Bank of Quito"],
          "MISC": ["Brazilian", "Davis Cup"]}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TEMPLATES = [
    "<PER> visited <LOC> on <DAY> .",
    "<PER> , a spokesman for <ORG> , said the talks in <LOC> would resume .",
    "shares of <ORG> rose <NUM> percent in <LOC> on <DAY> .",
    "the <MISC> team beat <LOC> <NUM> - <NUM> in the <MISC> .",
    "<ORG> hired <PER> as chief executive .",
    "<PER> met <PER> in <LOC> to discuss the <MISC> .",
    "in <LOC> , <PER> told reporters that <ORG> had won the contract .",
    "<PER> bought an apple in <LOC> in may .",
    "the <MISC> minister flew from <LOC> to <LOC> on <DAY> .",
    "<PER> will speak at <ORG> in may .",
    "<LOC> and <LOC> signed a trade deal with <ORG> .",
    "according to <ORG> , <NUM> people were hurt in <LOC> last <DAY> .",
    "<PER> , who was born in <LOC> , joined <ORG> in <NUM> .",
    "the <MISC> film won the <MISC> at a festival in <LOC> .",
    "<PER|ORG> said on <DAY> that the <MISC> economy grew .",
    "fans in <LOC> cheered as <PER> scored twice .",
    "<MISC> driver <PER> won the race in <LOC> .",
    "police in <LOC> arrested <NUM> men on <DAY> .",
    "the <ORG> report on <LOC> was published on <DAY> .",
    "apple prices fell in may , said <PER> of <ORG> .",
    "<LOC|ORG> announced new rules for <MISC> imports .",
    "the talks between <PER|ORG> and <LOC> ended on <DAY> .",
    "a statement from <PER|LOC> surprised <ORG> .",
]
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
assert LABELS[neurocrf.START] == "O"     # the CRF's label before the first word


def sentence(rng, names):
    """One sentence of the grammar with the gazetteers ``names``: (words, IOB2 tags)."""
    words, tags = [], []
    for slot in rng.choice(TEMPLATES).split():
        if "|" in slot:                                    # <A|B>: either kind, evenly
            slot = f"<{rng.choice(slot[1:-1].split('|'))}>"
        if slot == "<PER>":
            name = [rng.choice(names["FIRST"])]
            if rng.random() < 0.7:
                name.append(rng.choice(names["LAST"]))
            kind = "PER"
        elif slot in ("<LOC>", "<ORG>", "<MISC>"):
            kind = slot[1:-1]
            name = rng.choice(names[kind]).split()
        else:
            name = [rng.choice(DAYS) if slot == "<DAY>" else
                    str(rng.integers(2, 100)) if slot == "<NUM>" else slot]
            kind = None
        words += map(str, name)
        tags += [f"{'B' if k == 0 else 'I'}-{kind}" if kind else "O" for k in range(len(name))]
    words[0] = words[0][0].upper() + words[0][1:]
    return words, tags


def corpus(n, seed, unseen=False):
    """``n`` sentences of the grammar, the same for the same seed; ``unseen``: the names of UNSEEN
    join the gazetteers (about one name in seven is then one never seen in training)."""
    names = dict(GAZETTEERS, FIRST=FIRST_NAMES, LAST=LAST_NAMES)
    if unseen:
        names = {k: v + UNSEEN[k] for k, v in names.items()}
    rng = np.random.default_rng(seed)
    return [sentence(rng, names) for _ in range(n)]


def capitalisation(word):
    """0 lower case, 1 capitalised, 2 all capitals, 3 anything else (digits, punctuation)."""
    if word.islower():
        return 0
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return 1
    return 2 if word.isupper() else 3


class Vocabulary:
    """Lower-cased words -> indices, 0 for a word never seen in training."""

    def __init__(self, sentences):
        words = sorted({w.lower() for ws, _ in sentences for w in ws})
        self.index = {w: i + 1 for i, w in enumerate(words)}

    def __len__(self):
        return len(self.index) + 1

    def encode(self, words, tags):
        """-> (word indices, capitalisation classes, label indices), int64 arrays."""
        return (np.array([self.index.get(w.lower(), 0) for w in words], np.int64),
                np.array([capitalisation(w) for w in words], np.int64),
                np.array([LABELS.index(t) for t in tags], np.int64))


# ---- the entity-level (chunk) scorer of CoNLL ------------------------------------------------

def chunks(tags):
    """The entities of an IOB2 sequence as a set of (type, start, end), read as conlleval reads them:
    a chunk starts at B-X, or at an I-X that does not continue a chunk of type X, and ends before
    the next tag that does not continue it (O, B-*, or I- of another type)."""
    found, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and typ == kind
        if kind is not None and not continues:
            found.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = typ, i
    return found


def _prf(correct, n_pred, n_gold):
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(gold, predicted):
    """Entity-level scores of predicted against gold IOB2 sequences (lists of tag lists): a
    predicted entity is correct when its type, start and end all match a gold entity.
    -> {"per_class": {type: (precision, recall, F1, n_gold)}, "precision", "recall", "f1",
    "segment_f1" (F1 ignoring the type, the paper's F1^(s)), "class_accuracy" (its A_c = c / c_s)}."""
    if len(gold) != len(predicted):
        raise ValueError(f"score: {len(gold)} gold sentences but {len(predicted)} predicted")
    g_all, p_all = set(), set()
    for s, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"score: sentence {s} has {len(g)} gold tags but {len(p)} predicted")
        g_all |= {(s, *c) for c in chunks(g)}
        p_all |= {(s, *c) for c in chunks(p)}
    correct = g_all & p_all
    spans = {(s, a, b) for s, _, a, b in g_all}
    c_s = sum((s, a, b) in spans for s, _, a, b in p_all)
    per_class = {}
    for kind in sorted({c[1] for c in g_all | p_all}):
        n_c, n_p, n_g = (sum(c[1] == kind for c in cs) for cs in (correct, p_all, g_all))
        per_class[kind] = (*_prf(n_c, n_p, n_g), n_g)
    p, r, f = _prf(len(correct), len(p_all), len(g_all))
    return {"per_class": per_class, "precision": p, "recall": r, "f1": f,
            "segment_f1": _prf(c_s, len(p_all), len(g_all))[2],
            "class_accuracy": len(correct) / c_s if c_s else 0.0}


# ---- the model --------------------------------------------------------------------------------

SIZES = dict(embed=32, caps=5, hidden=48)     # word and capitalisation embeddings, LSTM units


def init_params(rng, n_words, embed, caps, hidden, n_labels=len(LABELS), dtype=np.float32):
    """A flat dict of arrays. Embeddings N(0, 0.1^2); weights N(0, 1/fan_in); biases 0 but the
    forget gates' (1). The LSTMs' are (wx, wh, b) forward ("f") and backward ("b")."""
    d = embed + caps
    b = np.zeros(4 * hidden)
    b[hidden:2 * hidden] = 1.0
    params = {"words": 0.1 * rng.standard_normal((n_words, embed)),
              "caps": 0.1 * rng.standard_normal((4, caps))}
    for side in "fb":
        params.update({f"wx{side}": rng.standard_normal((d, 4 * hidden)) / np.sqrt(d),
                       f"wh{side}": rng.standard_normal((hidden, 4 * hidden)) / np.sqrt(hidden),
                       f"b{side}": b})
    params.update(wo=rng.standard_normal((2 * hidden, n_labels ** 2)) / np.sqrt(2 * hidden),
                  bo=np.zeros(n_labels ** 2))
    return {k: v.astype(dtype) for k, v in params.items()}


def transition_scores(params, words, caps, dropout=lambda site, x: x):
    """G (T, K, K) for one sentence; ``dropout(site, x)`` is applied to the inputs (site 0) and to
    the BLSTM's outputs (site 1)."""
    p = params
    x = np.concatenate([p["words"][words], p["caps"][caps]], axis=1)
    h = neurocrf.blstm(dropout(0, x), (p["wxf"], p["whf"], p["bf"]), (p["wxb"], p["whb"], p["bb"]))
    return neurocrf.transitions(dropout(1, h), p["wo"], p["bo"], len(LABELS))


def sentence_loss(params, words, caps, tags, key, rate):
    """-log p(tags | sentence), with dropout at ``rate`` drawn from ``key``."""
    keys = lumen.random.split(key, 2)

    def dropout(site, x):
        return lumen.nn.dropout(keys[site], x, rate)
    return neurocrf.crf_loss(transition_scores(params, words, caps, dropout), tags)


def sgd_update(params, grads, lr, clip):
    """params - lr * grads, the gradient scaled down to norm ``clip`` when it is longer."""
    norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    scale = lr * np.minimum(1, clip / (norm + 1e-6))
    return {k: params[k] - scale * grads[k] for k in params}


def make_sgd_step(rate, clip):
    """The jitted SGD step for one sentence at dropout ``rate`` (gradient norm clipped to
    ``clip``); step ``i`` draws its dropout masks from fold_in(key, i)."""
    @lumen.jit
    def step(params, words, caps, tags, key, i, lr):
        loss, grads = lumen.value_and_grad(sentence_loss)(
            params, words, caps, tags, lumen.random.fold_in(key, i), rate)
        return loss, sgd_update(params, grads, lr, clip)
    return step


@lumen.jit
def tag(params, words, caps):
    """The Viterbi label path of one sentence (no dropout)."""
    return neurocrf.viterbi(transition_scores(params, words, caps))[0]


# ---- training and evaluation --------------------------------------------------------------------

def train(train_data, vocab, epochs, lr=0.05, rate=0.2, clip=5.0, seed=0, log=print):
    """SGD over the encoded sentences, one step per sentence, in a new random order each epoch.
    -> (params, the seconds of each epoch; the first includes compiling the step)."""
    rng = np.random.default_rng(seed)
    params = init_params(rng, len(vocab), **SIZES)
    step = make_sgd_step(rate, clip)
    key = lumen.random.key(seed)
    lr = np.float32(lr)
    epoch_times, i = [], 0
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        for s in rng.permutation(len(train_data)):
            loss, params = step(params, *train_data[s], key, np.int64(i), lr)
            total += float(loss)
            i += 1
        seconds = time.perf_counter() - start
        epoch_times.append(seconds)
        log(f"epoch {epoch + 1}: mean loss {total / len(train_data):.3f}, {seconds:.2f} s, "
            f"{len(train_data) / seconds:.0f} sentences/s")
    return params, epoch_times


def evaluate(params, sentences, vocab):
    """-> (score(...) of the Viterbi paths, sentences/s of decoding)."""
    encoded = [vocab.encode(w, t) for w, t in sentences]
    tag(params, *encoded[0][:2])                      # compile outside the timing
    start = time.perf_counter()
    paths = [tag(params, words, caps) for words, caps, _ in encoded]
    speed = len(sentences) / (time.perf_counter() - start)
    return score([t for _, t in sentences], [[LABELS[k] for k in p] for p in paths]), speed


def report(result):
    """score(...) as a table: per class, then all entities, then the paper's two components."""
    lines = [f"{'':6s}{'precision':>10s}{'recall':>8s}{'F1':>8s}{'entities':>10s}"]
    for kind, (p, r, f, n) in result["per_class"].items():
        lines.append(f"{kind:6s}{100 * p:10.2f}{100 * r:8.2f}{100 * f:8.2f}{n:10d}")
    lines.append(f"{'all':6s}{100 * result['precision']:10.2f}{100 * result['recall']:8.2f}"
                 f"{100 * result['f1']:8.2f}")
    lines.append(f"segmental F1 {100 * result['segment_f1']:.2f}, "
                 f"classification accuracy {100 * result['class_accuracy']:.2f}%")
    return "\n".join(lines)


def main(n_train=1500, n_test=500, epochs=4, seed=0):
    train_sentences, test_sentences = corpus(n_train, seed), corpus(n_test, seed + 1, unseen=True)
    vocab = Vocabulary(train_sentences)
    data = [vocab.encode(w, t) for w, t in train_sentences]
    print(f"{n_train} training sentences ({sum(len(w) for w, _ in train_sentences)} words), "
          f"{n_test} test sentences, vocabulary {len(vocab)}, BLSTM {SIZES['hidden']} x 2, "
          f"{len(LABELS)} labels")
    params, epoch_times = train(data, vocab, epochs)
    result, decode_rate = evaluate(params, test_sentences, vocab)
    print(report(result))
    steady = epoch_times[1:] or epoch_times
    print(f"test F1 {100 * result['f1']:.2f}; training {np.median(steady):.2f} s per epoch "
          f"({n_train / np.median(steady):.0f} sentences/s), decoding {decode_rate:.0f} sentences/s")
    return result


if __name__ == "__main__":
    main()
