"""Rewrite rules (SPEC §1 ``fastmath``, §4, the simplify and stabilize phases of
``lumen/passes/pipeline.py``).

One record per rule, expanded by parametrisation into
  (a) a structural test: the naive spelling users write, traced and run through the phase that owns
      the rule, is the whole expected graph, the rule is the one that fired, and the optimised
      kernels contain the primitive the rule introduces and none of those it removes;
  (b) a numerical test against NumPy on values where the naive formula is fine;
  (c) for stabilisation rules, values that break the naive formula, where lumen must return the
      mathematically right, finite value.
A test walks every rule of ``simplify.EXACT``, ``simplify.FASTMATH`` and ``stabilize.RULES`` and
fails for one without a record. Then: ``fastmath`` gating, ``LUMEN_DISABLE_REWRITES``, and
``lumen.nn`` / ``scipy.special`` against their references.
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import scipy.special as sc

import lumen
from lumen.frontend import pytree
from lumen.frontend.compile import compile_graph
from lumen.ir.builder import GraphBuilder
from lumen.ir.dims import Dim
from lumen.ir.printer import format_graph
from lumen.ir.types import TensorType
from lumen.passes.pipeline import optimize
from lumen.passes.rules import simplify, specialize, stabilize

from .oracle import assert_same, check

# -- helpers -----------------------------------------------------------------------------------


def stages(fn, *args, fastmath=False):
    """The graph after every pass: {"traced", "simplify", "stabilize", ..., "fuse"}."""
    graph = lumen.jit(fn, fastmath=fastmath).lower(*args).graph
    return run_stages(graph, fastmath)


def run_stages(graph, fastmath=False):
    out = []
    optimize(graph, fastmath=fastmath, check=True, stages=out)
    return {"traced": graph, **dict(out)}


def fired(st) -> set:
    """Names of the rules that replaced a node in the rule-driven phases."""
    return {name for phase in ("simplify", "stabilize", "specialize")
            for name, _node in st[phase].rewrites}


def optimized(fn, *args, **jit_options):
    return lumen.jit(fn, **jit_options).lower(*args).optimized_graph()


def primitives(graph) -> Counter:
    """Every primitive the graph computes: node ops outside kernels, and inside kernels the
    body's and epilogue's scalar ops and the reduction."""
    seen = Counter()
    for node in graph.nodes:
        if node.op == "const":
            continue
        if node.op != "kernel":
            seen[node.op] += 1
            continue
        for body in (node.params["body"], node.params.get("epilogue")):
            if body is not None:
                seen.update(s.op for s in body.ops)
        if node.params["reduce"] is not None:
            seen[node.params["reduce"].op] += 1
    return seen


def _plain(p):
    if isinstance(p, Dim):
        return "?" if p.value is None else p.value
    if isinstance(p, tuple):
        return tuple(_plain(q) for q in p)
    if isinstance(p, np.dtype):
        return p.name
    return p


def expr(graph, i=0):
    """Output ``i`` of ``graph`` as a nested tuple ``(op, *operands[, params])`` (PyTensor's
    ``assert_equal_computations`` in tuple form): inputs are "x0", "x1", ...; a constant is its
    value; params are a dict without ``weak``."""
    def walk(v):
        node = v.node
        if node is None:
            return f"x{graph.inputs.index(v)}"
        if node.op == "const":
            a = node.params["value"].array
            return a.item() if a.size == 1 else tuple(a.ravel().tolist())
        params = {k: _plain(p) for k, p in sorted(node.params.items()) if k != "weak"}
        return (node.op, *map(walk, node.inputs)) + ((params,) if params else ())
    return walk(graph.outputs[i])


def program(graph) -> str:
    """The printed graph without source lines and function name (to compare two functions)."""
    return re.sub(r" *#.*", "", format_graph(graph)).split("\n", 1)[1]


def op(name, *args, **params):
    return (name, *args) + ((params,) if params else ())


X, Y = "x0", "x1"
RNG = np.random.default_rng(7)
UNIT = RNG.uniform(0.1, 0.9, (4, 5))              # inside every naive formula's comfort zone
NORMAL = RNG.normal(size=(4, 5))
POSITIVE = RNG.uniform(0.5, 3.0, (4, 5))


@dataclass
class R:
    """One rule's record: ``fn`` is the naive spelling; ``expect`` the whole graph after
    ``phase`` (a tree for `expr`, or a function whose graph after the same phase it equals);
    ``adds`` / ``drops`` primitives present / absent in the optimised kernels; ``breaks`` are
    (args, the right answer) where the naive formula fails."""
    rule: str
    fn: Callable
    args: tuple
    expect: object = None
    adds: tuple = ()
    drops: tuple = ()
    breaks: list = field(default_factory=list)
    fastmath: bool = False
    phase: str = "stabilize"
    id: str = ""


def _arr(*v):
    return np.array(v, dtype=np.float64)


EXACT = [
    R("constant_fold", lambda x: np.ones_like(x) * 2 + x, (np.array(3.0),),
      expect=op("add", 2.0, X), drops=("multiply",), phase="simplify"),
    R("mul_by_one", lambda x: x * 1, (NORMAL,), expect=X, drops=("multiply",), phase="simplify"),
    R("constant_fold_uniform", lambda x: x + np.exp(np.zeros_like(x)) * 2, (NORMAL,),
      expect=op("add", X, op("broadcast_to", 2.0, shape=("?", "?"))), drops=("exp", "multiply"),
      phase="simplify"),
    R("mul_by_one", lambda x: x * np.ones_like(x), (NORMAL,), expect=X,
      drops=("multiply",), phase="simplify", id="uniform_one"),
    R("div_by_one", lambda x: x / 1, (NORMAL,), expect=X, drops=("divide",), phase="simplify"),
    R("sub_zero", lambda x: x - 0.0, (NORMAL,), expect=X, drops=("subtract",), phase="simplify"),
    R("neg_neg", lambda x: -(-x), (NORMAL,), expect=X, drops=("negative",), phase="simplify"),
    R("square_as_mul", lambda x: x ** 2, (NORMAL,), expect=op("multiply", X, X),
      adds=("multiply",), drops=("power",), phase="simplify"),
    R("pow_one", lambda x: x ** 1, (NORMAL,), expect=X, drops=("power",), phase="simplify"),
    R("div_by_power_of_two", lambda x: x / 4, (NORMAL,), expect=op("multiply", X, 0.25),
      adds=("multiply",), drops=("divide",), phase="simplify"),
    R("div_by_power_of_two", lambda x: x / 0.125, (NORMAL,), expect=op("multiply", X, 8.0),
      adds=("multiply",), drops=("divide",), phase="simplify", id="fraction"),
    R("drop_stop_gradient", lambda x: np.exp(lumen.stop_gradient(x)) * x, (NORMAL,),
      expect=op("multiply", op("exp", X), X), drops=("stop_gradient",), phase="simplify"),
    R("cast_roundtrip", lambda x: x.astype(np.float64).astype(np.float32),
      (NORMAL.astype(np.float32),), expect=X, drops=("cast",), phase="simplify"),
    R("cast_roundtrip", lambda x: x.astype(np.int64).astype(np.int32),
      (np.arange(-6, 6, dtype=np.int32),), expect=X, drops=("cast",), phase="simplify", id="int"),
]

FASTMATH = [
    R("sub_self", lambda x: x - x, (NORMAL,), expect=op("broadcast_to", 0.0, shape=("?", "?")),
      drops=("subtract",), fastmath=True, phase="simplify"),
    R("div_self", lambda x: x / x, (POSITIVE,), expect=op("broadcast_to", 1.0, shape=("?", "?")),
      drops=("divide",), fastmath=True, phase="simplify"),
    R("add_zero", lambda x: x + 0.0, (NORMAL,), expect=X, drops=("add",), fastmath=True,
      phase="simplify"),
    R("mul_zero", lambda x: x * 0.0, (NORMAL,), expect=op("broadcast_to", 0.0, shape=("?", "?")),
      drops=("multiply",), fastmath=True, phase="simplify"),
    R("reassociate_add_consts", lambda x: (x + 1.5) + 2.0, (NORMAL,), expect=op("add", X, 3.5),
      fastmath=True, phase="simplify"),
    R("reassociate_mul_consts", lambda x: 2.0 * (3.0 * x), (NORMAL,),
      expect=op("multiply", X, 6.0), fastmath=True, phase="simplify"),
]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x, axis=1):
    return np.exp(x) / np.exp(x).sum(axis, keepdims=True)


def _bce(z, y):
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _picked_ce(x, labels):
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    return -np.mean(np.log(p[np.arange(x.shape[0]), labels]))


def _ce_reference(x, labels):
    return np.mean(sc.logsumexp(x, axis=1) - x[np.arange(x.shape[0]), labels])


LOGITS = np.array([[1e4, 1e4 - 1, 1e4 - 3], [-1e4, -1e4 + 2, -1e4 + 0.5]])
LABELS = np.array([2, 0])

STABILIZE = [
    R("log1p_of_add_one", lambda x: np.log(1 + x), (UNIT,), expect=np.log1p,
      adds=("log1p",), drops=("log", "add"),
      breaks=[((_arr(1e-20, -1e-18, 3e-300),), _arr(1e-20, -1e-18, 3e-300))]),
    R("log1p_of_add_one", lambda x: np.log(x + 1.0), (UNIT,), expect=op("log1p", X),
      adds=("log1p",), drops=("log", "add"), id="commuted",
      breaks=[((_arr(1e-20),), _arr(1e-20))]),
    R("log1p_of_one_minus", lambda x: np.log(1 - x), (UNIT,), expect=lambda x: np.log1p(-x),
      adds=("log1p", "negative"), drops=("log", "subtract"),
      breaks=[((_arr(1e-20, 1e-17),), _arr(-1e-20, -1e-17))]),
    R("expm1_of_exp_minus_one", lambda x: np.exp(x) - 1, (NORMAL,), expect=np.expm1,
      adds=("expm1",), drops=("exp", "subtract"),
      breaks=[((_arr(1e-10, -1e-12, 1e-300),), np.expm1(_arr(1e-10, -1e-12, 1e-300)))]),
    R("expm1_of_exp_plus_minus_one", lambda x: -1 + np.exp(x), (NORMAL,), expect=np.expm1,
      adds=("expm1",), drops=("exp", "add"),
      breaks=[((_arr(1e-10),), np.expm1(_arr(1e-10)))]),
    R("softplus_of_log1p_exp", lambda x: np.log(1 + np.exp(x)), (NORMAL,),
      expect=op("softplus", X), adds=("softplus",), drops=("exp", "log", "log1p"),
      breaks=[((_arr(1000.0, -40.0, -1000.0, 800.0),),
               np.logaddexp(0.0, _arr(1000.0, -40.0, -1000.0, 800.0)))]),
    R("softplus_of_log1p_exp", lambda x: np.log1p(np.exp(-x)), (NORMAL,),
      expect=op("softplus", op("negative", X)), adds=("softplus",), drops=("exp", "log1p"),
      id="log1p_spelling", breaks=[((_arr(-1000.0, 40.0),), _arr(1000.0, np.exp(-40.0)))]),
    R("sigmoid_of_reciprocal", _sigmoid, (NORMAL,), expect=sc.expit, adds=("expit",),
      drops=("exp", "divide", "negative"),
      breaks=[((_arr(-1000.0, 1000.0, -700.0),), sc.expit(_arr(-1000.0, 1000.0, -700.0)))]),
    R("sigmoid_of_exp_ratio", lambda x: np.exp(x) / (1 + np.exp(x)), (NORMAL,), expect=sc.expit,
      adds=("expit",), drops=("exp", "divide"),
      breaks=[((_arr(1000.0, 710.0, -1000.0),), _arr(1.0, 1.0, sc.expit(-1000.0)))]),
    R("log_sigmoid", lambda x: np.log(_sigmoid(x)), (NORMAL,),
      expect=op("negative", op("softplus", op("negative", X))), adds=("softplus",),
      drops=("log", "exp", "expit"),
      breaks=[((_arr(-1000.0, 40.0, 1000.0),), _arr(-1000.0, -np.exp(-40.0), -0.0))]),
    R("log_sigmoid", lambda x: np.log(sc.expit(x)), (NORMAL,),
      expect=op("negative", op("softplus", op("negative", X))), adds=("softplus",),
      drops=("log", "expit"), id="expit", breaks=[((_arr(-1000.0),), _arr(-1000.0))]),
    R("log_one_minus_sigmoid", lambda x: np.log(1 - sc.expit(x)), (NORMAL,),
      expect=op("negative", op("softplus", X)), adds=("softplus",),
      drops=("log", "log1p", "expit"),
      breaks=[((_arr(1000.0, 40.0, -40.0),),
               _arr(-1000.0, -40.0 - np.exp(-40.0), -np.exp(-40.0)))]),
    R("log_one_minus_sigmoid", lambda x: np.log(1 - _sigmoid(x)), (NORMAL,),
      expect=op("negative", op("softplus", X)), adds=("softplus",), drops=("log", "exp"),
      id="naive_sigmoid", breaks=[((_arr(1000.0),), _arr(-1000.0))]),
    R("log1mexp", lambda x: np.log(1 - np.exp(-x)), (POSITIVE,), expect=op("log1mexp", X),
      adds=("log1mexp",), drops=("log", "log1p", "exp"),
      breaks=[((_arr(1e-20, 1e-10, 50.0, 800.0),),
               _arr(np.log(1e-20), np.log(1e-10) - 5e-11, -np.exp(-50.0), -0.0))]),
    R("log_of_exp", lambda x: np.log(np.exp(x)), (NORMAL,), expect=X, drops=("log", "exp"),
      breaks=[((_arr(1000.0, -1000.0, 1e-300),), _arr(1000.0, -1000.0, 1e-300))]),
    R("sqrt_of_square", lambda x: np.sqrt(x * x), (NORMAL,), expect=np.abs,
      adds=("absolute",), drops=("sqrt", "multiply"),
      breaks=[((_arr(1e200, -1e200, 1e-200),), _arr(1e200, 1e200, 1e-200))]),
    R("sqrt_of_square", lambda x: np.sqrt(x ** 2), (NORMAL,), expect=op("absolute", X),
      adds=("absolute",), drops=("sqrt", "power"), id="power",
      breaks=[((_arr(-1e200),), _arr(1e200))]),
    R("sqrt_of_square_ufunc", lambda x: np.sqrt(np.square(x)), (NORMAL,),
      expect=op("absolute", X), adds=("absolute",), drops=("sqrt", "square"),
      breaks=[((_arr(1e200, -1e-200),), _arr(1e200, 1e-200))]),
    R("log_of_exp_ratio", lambda x, s: np.log(np.exp(x) / s), (NORMAL, POSITIVE),
      expect=op("subtract", X, op("log", Y)), drops=("exp", "divide"),
      breaks=[((_arr(1000.0), _arr(1e300)), _arr(1000.0 - np.log(1e300)))]),
    R("logsumexp", lambda x: np.log(np.sum(np.exp(x), axis=1, keepdims=True)), (NORMAL,),
      expect=lambda x: lumen.nn.logsumexp(x, axis=1, keepdims=True),
      adds=("max", "exp", "sum", "log"),
      breaks=[((np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, -np.inf]]),),
               np.array([[1000 + np.log(2)], [-1000 + np.log(2)], [-np.inf]]))]),
    R("logsumexp", lambda x: np.log(np.exp(x).sum()), (NORMAL,), adds=("max", "exp", "log"),
      id="all_axes", breaks=[((_arr(1000.0, 1000.0),), np.float64(1000 + np.log(2)))]),
    R("log_of_picked_exp_ratio", _picked_ce, (NORMAL, np.array([0, 4, 2, 1])),
      adds=("gather", "max"),
      breaks=[((LOGITS, LABELS), _ce_reference(LOGITS, LABELS))]),
    R("softmax_max_shift", _softmax, (NORMAL,), expect=lambda x: lumen.nn.softmax(x, axis=1),
      adds=("max", "exp", "divide"),
      breaks=[((LOGITS,), sc.softmax(LOGITS, axis=1)),
              ((np.array([[1000.0, 1000.0]]),), np.array([[0.5, 0.5]]))]),
    R("softmax_max_shift", lambda x: np.exp(x) / np.sum(np.exp(x)), (NORMAL[0],),
      expect=lambda x: lumen.nn.softmax(x, axis=None), adds=("max", "exp"), id="vector",
      breaks=[((_arr(1000.0, 1000.0, -1e4),), _arr(0.5, 0.5, 0.0))]),
    R("softmax_max_shift", lambda x: np.exp(x) / np.exp(x).sum(0), (NORMAL,), adds=("max",),
      id="leading_axis", breaks=[((LOGITS,), sc.softmax(LOGITS, axis=0))]),
    R("argmax_of_exp", lambda x: np.argmax(np.exp(x), axis=1), (NORMAL,),
      expect=op("argmax", X, axes=(1,), keepdims=False), drops=("exp",),
      breaks=[((np.array([[1000.0, 1001.0, 999.0]]),), np.array([1]))]),
    R("argmax_of_shift", lambda x: np.argmin(x - x.max(1, keepdims=True), axis=1), (NORMAL,),
      expect=op("argmin", X, axes=(1,), keepdims=False), drops=("subtract", "max"),
      breaks=[((np.array([[1 + 2.0 ** -52, 1.0, 1e17]]),), np.array([1]))]),   # the shift ties
    R("argmax_of_positive_scaling", lambda x, y: np.argmax(x / np.exp(y).sum(0), axis=0),
      (NORMAL, NORMAL), expect=op("argmax", X, axes=(0,), keepdims=False),
      drops=("divide", "exp", "sum"),
      breaks=[((np.array([[1e-300, 1.0], [2e-300, 2.0]]), np.array([[700.0, 0.0], [700.0, 0.0]])),
               np.array([1, 1]))]),                                           # x / s underflows
]

MA, MB = RNG.normal(size=(4, 5)), RNG.normal(size=(5, 3))
MC = RNG.normal(size=(4, 3))
SPECIALIZE = [
    R("gemm_of_matmul_plus_bias", lambda a, b, c: a @ b + c, (MA, MB, MC), phase="specialize",
      expect=op("gemm", "x0", "x1", "x2", alpha=1.0, beta=1.0), adds=("gemm",),
      drops=("matmul",)),
    R("gemm_of_scaled_matmul", lambda a, b: (a @ b) * 2.0, (MA, MB), phase="specialize",
      adds=("gemm",), drops=("matmul", "multiply")),
    R("gemm_plus_bias", lambda a, b, c: (a @ b) * 2.0 + c, (MA, MB, MC), phase="specialize",
      expect=op("gemm", "x0", "x1", "x2", alpha=2.0, beta=1.0), adds=("gemm",),
      drops=("matmul", "add")),
    R("gemm_scaled", lambda a, b, c: 3.0 * (a @ b + c), (MA, MB, MC), phase="specialize",
      expect=op("gemm", "x0", "x1", "x2", alpha=3.0, beta=3.0), adds=("gemm",),
      drops=("matmul", "multiply")),
    R("gemm_of_difference", lambda a, b, c: c - 0.5 * (a @ b), (MA, MB, MC), phase="specialize",
      expect=op("gemm", "x0", "x1", "x2", alpha=-0.5, beta=1.0), adds=("gemm",),
      drops=("matmul", "subtract", "multiply")),
    R("reshape_to_same_shape", lambda w, x: w - 0.5 * lumen.grad(lambda w: np.sum(x @ w))(w),
      (MB, MA), phase="specialize", adds=("gemm",), drops=("matmul",)),
    R("gemm_of_difference_with_matmul", lambda a, b, c: c - a @ b, (MA, MB, MC),
      phase="specialize", expect=op("gemm", "x0", "x1", "x2", alpha=-1.0, beta=1.0),
      adds=("gemm",), drops=("matmul", "subtract")),
]

MW, MH, MD = RNG.normal(size=(5, 3)), RNG.normal(size=(1, 5)), RNG.normal(size=(1, 3))
SPECIALIZE.append(
    R("matmul_of_one_term", lambda w, h, d: w - 0.5 * (h.T @ d), (MW, MH, MD), phase="simplify",
      drops=("matmul", "gemm")))

RECORDS = EXACT + FASTMATH + STABILIZE + SPECIALIZE
ALL_RULES = simplify.EXACT + simplify.FASTMATH + stabilize.RULES + specialize.RULES
#: Rules no traced program reaches, tested on a graph built by hand.
BUILT = {"cast_to_same"}


def _ids(records):
    return [r.rule + (f"[{r.id}]" if r.id else "") for r in records]


def test_every_rule_has_a_record():
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names)), "two rules share a name"
    missing = set(names) - {r.rule for r in RECORDS} - BUILT
    assert not missing, f"rules without a test record: {sorted(missing)}"
    assert {r.rule for r in RECORDS} <= set(names), "a record names a rule that does not exist"


# -- (a) structure -----------------------------------------------------------------------------

@pytest.mark.parametrize("rec", RECORDS, ids=_ids(RECORDS))
def test_rule_rewrites_the_naive_spelling(rec):
    st = stages(rec.fn, *rec.args, fastmath=rec.fastmath)
    assert rec.rule in fired(st), f"{rec.rule} did not fire; fired: {sorted(fired(st))}"
    graph = st[rec.phase]
    if callable(rec.expect):
        want = run_stages(lumen.jit(rec.expect).lower(*rec.args).graph, rec.fastmath)[rec.phase]
        assert expr(graph) == expr(want), f"\n{graph}\n!=\n{want}"
    elif rec.expect is not None:
        assert expr(graph) == rec.expect, f"\n{graph}"
    ops = primitives(st["fuse"])
    assert all(ops[p] for p in rec.adds), f"{rec.adds} not all in {dict(ops)}"
    assert not any(ops[p] for p in rec.drops), f"{rec.drops} should be gone: {dict(ops)}"


def test_the_introduced_node_names_its_rule():
    st = stages(lambda x: np.log(1 + x), UNIT)
    (node,) = st["stabilize"].nodes
    assert node.op == "log1p" and node.origin == "log1p_of_add_one"
    st = stages(lambda x: np.sqrt(x * x), UNIT)
    assert [n.origin for n in st["stabilize"].nodes] == ["sqrt_of_square"]


# -- (b) numerics where the naive formula is fine ----------------------------------------------

@pytest.mark.parametrize("rec", RECORDS, ids=_ids(RECORDS))
def test_rule_agrees_with_numpy(rec):
    check(rec.fn, *rec.args, fastmath=rec.fastmath)


# -- (c) where the naive formula breaks --------------------------------------------------------

BREAKS = [(r, args, want) for r in STABILIZE for args, want in r.breaks]


@pytest.mark.parametrize("rec,args,want", BREAKS,
                         ids=[f"{i}-{r.rule}" for i, (r, _a, _w) in enumerate(BREAKS)])
def test_stabilised_value_where_the_naive_formula_breaks(rec, args, want):
    got = lumen.jit(rec.fn)(*args)
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(np.isfinite(got), np.isfinite(want)), f"{got} vs {want}"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    with np.errstate(all="ignore"):
        naive = np.asarray(rec.fn(*args))
    # 1 / (1 + exp(1000)) overflows an intermediate but still rounds to the right 0.0.
    assert not np.allclose(naive, want, rtol=1e-9, atol=0, equal_nan=False) or \
        rec.rule == "sigmoid_of_reciprocal", "not a case that breaks the naive formula"


def test_log1p_of_tiny_is_exact():
    assert lumen.jit(lambda x: np.log(1 + x))(np.array([1e-20]))[0] == 1e-20


def test_log_sigmoid_of_minus_1000():
    got = lumen.jit(lambda x: np.log(1 / (1 + np.exp(-x))))(np.array([-1000.0]))
    assert got[0] == pytest.approx(-1000.0, rel=1e-15)


def test_logsumexp_of_equal_large_values():
    got = lumen.jit(lambda x: np.log(np.sum(np.exp(x))))(np.array([1000.0, 1000.0]))
    assert got == pytest.approx(1000 + np.log(2), rel=1e-15)


def test_softmax_of_logits_near_1e4():
    x = 1e4 + RNG.normal(size=(3, 6))
    got = lumen.jit(_softmax)(x)
    np.testing.assert_allclose(got, sc.softmax(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("spelling", ["log_of_softmax_then_pick", "onehot", "pick_then_log",
                                      "nn"])
def test_crossentropy_with_large_logits(spelling):
    def pick_after_log(x, y):
        return -np.mean(np.log(_softmax(x))[np.arange(x.shape[0]), y])

    def onehot(x, y):
        hot = np.arange(x.shape[1]) == y[:, None]
        return -np.mean(np.sum(hot * np.log(_softmax(x)), axis=1))
    fn = {"log_of_softmax_then_pick": pick_after_log, "onehot": onehot,
          "pick_then_log": _picked_ce, "nn": lumen.nn.crossentropy}[spelling]
    x = np.array([[1000.0, 0.0, -1000.0], [500.0, 1000.0, 0.0], [3.0, 2.0, 1.0]])
    y = np.array([2, 0, 1])
    got = lumen.jit(fn)(x, y)
    assert np.isfinite(got)
    assert got == pytest.approx(_ce_reference(x, y), rel=1e-12)
    assert primitives(optimized(fn, x, y))["exp"] == 1


@pytest.mark.parametrize("z", [100.0, -100.0, 700.0, -1000.0])
def test_binary_crossentropy_with_saturated_sigmoid(z):
    zs, ys = np.array([z, z, 0.3]), np.array([0.0, 1.0, 0.25])
    got = lumen.jit(_bce)(zs, ys)
    want = ys * np.logaddexp(0.0, -zs) + (1 - ys) * np.logaddexp(0.0, zs)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    ops = primitives(optimized(_bce, zs, ys))
    assert ops["softplus"] == 2 and not ops["log"] and not ops["exp"]


def test_log1mexp_tiny_and_large():
    f = lumen.jit(lambda x: np.log(1 - np.exp(-x)))
    got = f(np.array([1e-300, 1e-20, 40.0, 700.0]))
    want = [np.log(1e-300), np.log(1e-20), -np.exp(-40.0), -np.exp(-700.0)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sqrt_of_square_of_1e200():
    assert lumen.jit(lambda x: np.sqrt(x * x))(np.array([1e200]))[0] == 1e200


def test_expm1_of_1e_minus_10():
    got = lumen.jit(lambda x: np.exp(x) - 1)(np.array([1e-10]))[0]
    assert got == np.expm1(1e-10)


@pytest.mark.parametrize("softmax", [_softmax, lambda x: lumen.nn.softmax(x, axis=1),
                                     lambda x: sc.softmax(x, axis=1)],
                         ids=["naive", "nn", "scipy"])
def test_argmax_of_softmax_has_no_exp(softmax):
    f = lambda x: np.argmax(softmax(x), axis=1)  # noqa: E731
    graph = optimized(f, NORMAL)
    ops = primitives(graph)
    assert not ops["exp"] and not ops["divide"] and not ops["sum"], program(graph)
    assert expr(run_stages(lumen.jit(f).lower(NORMAL).graph)["stabilize"]) == \
        op("argmax", X, axes=(1,), keepdims=False)
    x = np.array([[1000.0, 1001.0, -3.0], [0.1, 0.3, 0.2]])
    np.testing.assert_array_equal(lumen.jit(f)(x), [1, 1])
    check(f, NORMAL)


# -- what the rules must not touch -------------------------------------------------------------

def test_sub_negative_zero_is_not_the_identity():
    """x - (-0.0) is x + 0.0, which turns -0.0 into +0.0: sub_zero must not fire."""
    x = np.array([-0.0, 0.0, 1.5])
    got = check(lambda x: x - (-0.0), x, exact=True)
    assert not np.signbit(got[0])
    got = check(lambda x: x - 0.0, x, exact=True)
    assert np.signbit(got[0])


def test_exact_rules_keep_ieee_specials():
    x = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, 5e-324, 1.0])
    for fn in (lambda x: x * 1, lambda x: x / 1, lambda x: -(-x), lambda x: x ** 2,
               lambda x: x ** 1, lambda x: x / 4, lambda x: x / 0.5, lambda x: x - 0.0,
               lambda x: x - x, lambda x: x / x, lambda x: x + 0.0, lambda x: x * 0.0,
               lambda x: (x + 1.0) + 2.0):
        got = check(fn, x, exact=True)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(np.signbit(got), np.signbit(fn(x)))


def test_division_by_a_power_of_two_whose_reciprocal_overflows():
    """1 / 2**-1074 is inf: x / 5e-324 must stay a division."""
    x = np.array([1e-320, 0.0, -3e-322])
    for fn in (lambda x: x / 5e-324, lambda x: x / 2.0 ** -1030):
        got = check(fn, x, exact=True)
        assert np.isfinite(got).all()
        assert primitives(optimized(fn, x))["divide"] == 1
    check(lambda x: x / 2.0 ** -100, x, exact=True)
    xf = np.array([1e-38, 0.0, -3e-39], np.float32)
    got = check(lambda x: x / np.float32(2.0 ** -128), xf, exact=True)
    assert np.isfinite(got).all()


def test_division_by_other_constants_stays():
    for c in (3.0, 0.1, -6.0):
        assert primitives(optimized(lambda x: x / c, NORMAL))["divide"] == 1
        check(lambda x: x / c, NORMAL, exact=True)


def test_cast_roundtrip_through_a_lossy_type_stays():
    """int64 -> float64 -> int64 loses 2**53 + 1 (NumPy calls the cast "safe")."""
    big = np.array([2 ** 53 + 1, -(2 ** 60) - 3, 7], np.int64)
    f = lambda x: x.astype(np.float64).astype(np.int64)  # noqa: E731
    assert primitives(optimized(f, big))["cast"] == 2
    check(f, big)
    ubig = np.array([2 ** 53 + 1, 5], np.uint64)
    check(lambda x: x.astype(np.float64).astype(np.uint64), ubig)
    check(lambda x: x.astype(np.float32).astype(np.float64), NORMAL)
    check(lambda x: x.astype(np.int8).astype(np.int32), np.array([300, -200, 5], np.int32))


def test_square_of_integers_is_not_a_float_rewrite():
    x = np.arange(-5, 5, dtype=np.int64)
    check(lambda x: x ** 2, x)
    check(lambda x: x * 1, np.array([True, False]))


def test_cast_to_same_on_a_built_graph():
    """Tracing never emits a cast to the same dtype (``x.astype(x.dtype)`` returns x), but
    other passes may: the rule is checked on a graph built by hand."""
    b = GraphBuilder("cast_same")
    x = b.add_input(TensorType(np.float64, (Dim.input(0, 0, 5),)), "x")
    y = b.emit("cast", [x], dtype=np.dtype(np.float64)).out
    z = b.emit("exp", [y]).out
    graph = b.build([z])
    st = run_stages(graph)
    assert "cast_to_same" in fired(st)
    assert expr(st["simplify"]) == op("exp", X)
    assert not primitives(st["fuse"])["cast"]
    a = np.linspace(-1, 1, 9)[::2]          # strided: a built graph's inputs are
    assert_same(compile_graph(graph, pytree.LEAF, {}).function(a), np.exp(a))


@pytest.mark.parametrize("b_shape,axis", [((3, 1), 1), ((1, 4), 2), ((2, 1, 1), 0)])
def test_argmax_of_shift_aligns_broadcast_axes(b_shape, axis):
    """b of shape (3, 1) against (2, 3, 4) varies along axis 1: argmax(a - b, axis=1) is not
    argmax(a, axis=1)."""
    a = RNG.normal(size=(2, 3, 4))
    b = np.arange(np.prod(b_shape), dtype=np.float64).reshape(b_shape) * 10.0
    def f(a, b):
        return np.argmax(a - b, axis=axis), np.argmin(a / np.exp(b).sum(0), axis=axis)
    check(f, a, b)


def test_argmax_of_shift_by_a_scalar_or_row_constant():
    a = RNG.normal(size=(2, 3, 4))
    for f in (lambda a: np.argmax(a - 3.0, axis=1),
              lambda a: np.argmax(a - a.min(1, keepdims=True), axis=1),
              lambda a: np.argmin(a - a.max(), axis=0)):
        graph = optimized(f, a)
        check(f, a)
        assert not primitives(graph)["subtract"], program(graph)


def test_argmax_of_division_by_unknown_sign_stays():
    f = lambda x, y: np.argmax(x / y, axis=1)  # noqa: E731
    assert primitives(optimized(f, NORMAL, NORMAL))["divide"] == 1
    check(f, NORMAL, NORMAL)


def test_shift_already_written_by_the_user_is_not_shifted_again():
    def lse(x):
        m = x.max(1, keepdims=True)
        return m + np.log(np.exp(x - m).sum(1, keepdims=True))
    assert primitives(optimized(lse, NORMAL))["max"] == 1
    check(lse, NORMAL)
    assert "logsumexp" not in fired(stages(lse, NORMAL))


def test_rules_respect_broadcast_shapes():
    """log(1 + x) where the 1 is a bigger array than x: log1p(x) would have the wrong shape."""
    f = lambda x: np.log(np.ones((3, 5)) + x)  # noqa: E731
    check(f, UNIT[0])
    f = lambda x, y: np.log(np.ones_like(y) + x)  # noqa: E731
    assert "log1p_of_add_one" not in fired(stages(f, UNIT[0], UNIT))
    check(f, UNIT[0], UNIT)
    f = lambda x, y: np.log(1 + x) * y  # noqa: E731
    check(f, UNIT[0], UNIT)


def test_float32_stabilisation():
    x = np.array([1e-20, 80.0, -20.0], np.float32)
    got = lumen.jit(lambda x: (np.log(1 + x), np.log(1 + np.exp(x)), np.log(np.exp(x))))(x)
    assert got[0].dtype == np.float32
    np.testing.assert_allclose(got[0][:2], np.log1p(x[:2]), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.logaddexp(np.float32(0), x), rtol=1e-6)
    np.testing.assert_array_equal(got[2], x)


# -- fastmath ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rec", FASTMATH, ids=_ids(FASTMATH))
def test_fastmath_rules_only_with_fastmath(rec):
    assert rec.rule not in fired(stages(rec.fn, *rec.args))
    assert rec.rule in fired(stages(rec.fn, *rec.args, fastmath=True))
    plain = primitives(optimized(rec.fn, *rec.args))
    fast = primitives(optimized(rec.fn, *rec.args, fastmath=True))
    assert fast != plain and all(plain[p] for p in rec.drops), (plain, fast)


def test_fastmath_changes_ieee_results_only_when_asked():
    x = np.array([1.0, np.inf, np.nan])
    exact = lumen.jit(lambda x: x - x)(x)
    np.testing.assert_array_equal(exact, [0.0, np.nan, np.nan])
    fast = lumen.jit(lambda x: x - x, fastmath=True)(x)
    np.testing.assert_array_equal(fast, [0.0, 0.0, 0.0])
    x = np.array([-0.0])
    assert np.signbit(lumen.jit(lambda x: x + 0.0)(x)[0]) == np.signbit(-0.0 + 0.0)


def test_stabilisation_runs_without_fastmath():
    graph = optimized(lambda x: np.log(1 + x), UNIT)
    assert primitives(graph)["log1p"] == 1


# -- LUMEN_DISABLE_REWRITES --------------------------------------------------------------------

@pytest.mark.parametrize("rec", RECORDS, ids=_ids(RECORDS))
def test_disable_rewrites_switches_each_rule_off(rec, monkeypatch):
    monkeypatch.setenv("LUMEN_DISABLE_REWRITES", rec.rule)
    assert rec.rule not in fired(stages(rec.fn, *rec.args, fastmath=rec.fastmath))


def test_disabled_rule_gives_the_naive_result(monkeypatch):
    x = np.array([1e-20])
    f = lambda x: np.log(1 + x)  # noqa: E731
    assert lumen.jit(f)(x)[0] == 1e-20
    monkeypatch.setenv("LUMEN_DISABLE_REWRITES", "log1p_of_add_one")
    assert lumen.jit(f)(x)[0] == 0.0
    assert not primitives(optimized(f, x))["log1p"]
    monkeypatch.setenv("LUMEN_DISABLE_REWRITES", " sqrt_of_square , softmax_max_shift,")
    got = lumen.jit(lambda x: (np.sqrt(x * x), _softmax(x)))(np.array([[1e200, 0.0]]))
    assert got[0][0, 0] == np.inf and np.isnan(got[1][0, 0])
    monkeypatch.delenv("LUMEN_DISABLE_REWRITES")
    assert lumen.jit(f)(x)[0] == 1e-20


# -- lumen.nn and scipy.special ----------------------------------------------------------------

WIDE = np.array([[-1000.0, -40.0, -1.5, 0.0, 2.0, 40.0, 1000.0],
                 [3.0, -2.0, 700.0, -700.0, 1e-20, -1e-20, 0.5]])

NN_REFERENCES = [
    ("sigmoid", lumen.nn.sigmoid, sc.expit),
    ("softplus", lumen.nn.softplus, lambda x: np.logaddexp(0.0, x)),
    ("relu", lumen.nn.relu, lambda x: np.maximum(x, 0)),
    ("softmax", lumen.nn.softmax, lambda x: sc.softmax(x, axis=-1)),
    ("softmax0", lambda x: lumen.nn.softmax(x, axis=0), lambda x: sc.softmax(x, axis=0)),
    ("softmax_all", lambda x: lumen.nn.softmax(x, axis=None), lambda x: sc.softmax(x, axis=None)),
    ("log_softmax", lumen.nn.log_softmax, lambda x: sc.log_softmax(x, axis=-1)),
    ("log_softmax0", lambda x: lumen.nn.log_softmax(x, axis=0),
     lambda x: sc.log_softmax(x, axis=0)),
    ("logsumexp", lumen.nn.logsumexp, sc.logsumexp),
    ("logsumexp1", lambda x: lumen.nn.logsumexp(x, axis=1), lambda x: sc.logsumexp(x, axis=1)),
    ("logsumexp0k", lambda x: lumen.nn.logsumexp(x, axis=0, keepdims=True),
     lambda x: sc.logsumexp(x, axis=0, keepdims=True)),
    ("logsumexp01", lambda x: lumen.nn.logsumexp(x, axis=(0, 1)),
     lambda x: sc.logsumexp(x, axis=(0, 1))),
]


@pytest.mark.parametrize("name,fn,ref", NN_REFERENCES, ids=[n for n, _f, _r in NN_REFERENCES])
@pytest.mark.parametrize("values", ["normal", "wide"])
def test_nn_against_references(name, fn, ref, values):
    x = NORMAL if values == "normal" else WIDE
    want = ref(x)
    got = lumen.jit(fn)(x)
    assert_same(got, want, rtol=1e-12, atol=1e-300)
    assert_same(np.asarray(fn(x)), want, rtol=1e-12, atol=1e-300)      # eager, on arrays


def test_nn_eager_on_scalars():
    assert lumen.nn.softplus(np.float64(1000.0)) == 1000.0
    assert lumen.nn.softplus(1000.0) == 1000.0
    assert lumen.nn.softplus(np.float32(-200.0)) == np.logaddexp(np.float32(0), np.float32(-200))
    assert lumen.nn.sigmoid(-1000.0) == 0.0


@pytest.mark.parametrize("logits", ["normal", "large"])
def test_nn_crossentropy(logits):
    x = NORMAL if logits == "normal" else NORMAL * 1e4
    labels = np.array([0, 4, 2, 2])
    want = _ce_reference(x, labels)
    got = lumen.jit(lumen.nn.crossentropy)(x, labels)
    assert got.shape == () and got == pytest.approx(want, rel=1e-12)
    assert lumen.nn.crossentropy(x, labels) == pytest.approx(want, rel=1e-12)


def test_nn_functions_become_stable_primitives():
    assert primitives(optimized(lumen.nn.softplus, NORMAL)) == Counter(softplus=1)
    assert primitives(optimized(lumen.nn.sigmoid, NORMAL)) == Counter(expit=1)
    assert primitives(optimized(lumen.nn.relu, NORMAL)) == Counter(maximum=1)
    log_sig = lambda x: np.log(lumen.nn.sigmoid(x))  # noqa: E731
    assert not primitives(optimized(log_sig, NORMAL))["log"]


SCIPY_VS_NN = [
    ("logsumexp", lambda x: sc.logsumexp(x, axis=1), lambda x: lumen.nn.logsumexp(x, axis=1)),
    ("logsumexp_all", lambda x: sc.logsumexp(x), lumen.nn.logsumexp),
    ("logsumexp_keep", lambda x: sc.logsumexp(x, axis=0, keepdims=True),
     lambda x: lumen.nn.logsumexp(x, axis=0, keepdims=True)),
    ("softmax", lambda x: sc.softmax(x, axis=1), lambda x: lumen.nn.softmax(x, axis=1)),
    ("softmax_axis0", lambda x: sc.softmax(x, axis=0), lambda x: lumen.nn.softmax(x, axis=0)),
    ("log_softmax", lambda x: sc.log_softmax(x, axis=-1), lumen.nn.log_softmax),
    ("expit", sc.expit, lumen.nn.sigmoid),
]


@pytest.mark.parametrize("name,scipy_fn,nn_fn", SCIPY_VS_NN, ids=[n for n, _s, _f in SCIPY_VS_NN])
def test_scipy_special_compiles_like_nn(name, scipy_fn, nn_fn):
    assert program(optimized(scipy_fn, NORMAL)) == program(optimized(nn_fn, NORMAL))
    check(scipy_fn, WIDE, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("fn", [lambda x: sc.softmax(x), lambda x: sc.log_softmax(x),
                                lambda x: sc.logsumexp(x)],
                         ids=["softmax", "log_softmax", "logsumexp"])
def test_scipy_special_default_axis(fn):
    """scipy's softmax / log_softmax / logsumexp default to axis=None (all elements)."""
    check(fn, NORMAL, rtol=1e-12, atol=1e-300)


def test_scipy_special_imported_by_name_is_refused_with_advice():
    """``from scipy.special import logsumexp`` binds scipy's own function, which converts its
    input with np.asarray: lumen cannot see through that, and says what to do instead (the
    module attribute, ``scipy.special.logsumexp``, is intercepted while tracing)."""
    from scipy.special import logsumexp
    with pytest.raises(lumen.TracingError, match="lumen.nn"):
        lumen.jit(lambda x: logsumexp(x, axis=1))(NORMAL)


SCIPY_LATE = textwrap.dedent("""
    import sys
    import numpy as np
    import lumen
    x = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
    assert np.allclose(lumen.jit(lambda x: np.tanh(x).sum(1))(x), np.tanh(x).sum(1))
    assert "scipy.special" not in sys.modules, "lumen imported scipy.special"
    import scipy.special
    got = lumen.jit(lambda x: scipy.special.logsumexp(x, axis=1) + lumen.nn.sigmoid(x[:, 0]))(x)
    assert np.allclose(got, scipy.special.logsumexp(x, axis=1) + scipy.special.expit(x[:, 0]))
    print("ok")
""")


def test_scipy_special_is_imported_by_its_users_not_by_lumen():
    """Importing lumen and compiling programs that use no scipy.special function leave it
    unimported (0.17 s, and objects every full garbage collection walks); imported later, its
    functions still trace as lumen.nn's."""
    out = subprocess.run([sys.executable, "-c", SCIPY_LATE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_naive_spellings_compile_like_nn():
    """The naive softmax and logsumexp compile to exactly what lumen.nn's careful versions do."""
    assert program(optimized(_softmax, NORMAL)) == \
        program(optimized(lambda x: lumen.nn.softmax(x, axis=1), NORMAL))
    assert program(optimized(lambda x: np.log(np.exp(x).sum(0, keepdims=True)), NORMAL)) == \
        program(optimized(lambda x: lumen.nn.logsumexp(x, axis=0, keepdims=True), NORMAL))


def test_sgd_update_of_a_batch_of_one_is_one_pass():
    """W - lr * (h.T @ dz) with one example: an outer product fused into the update, one
    kernel; signed zeros as BLAS gives them (a sum from +0.0), in float32 and float64."""
    for dtype in (np.float32, np.float64):
        w = RNG.normal(size=(6, 4)).astype(dtype)
        h = np.array([[-0.0, 1.0, -2.0, 0.5, 3.0, -1.0]], dtype)
        d = np.array([[0.25, -0.0, 1.5, -3.0]], dtype)
        f = lumen.jit(lambda w, h, d: (w - 0.5 * (h.T @ d), h.T @ d))
        update, outer = f(w, h, d)
        assert_same(update, w - 0.5 * (h.T @ d))
        assert np.array_equal(np.signbit(outer), np.signbit(h.T @ d))
        text = f.lower(w, h, d).optimized_ir()
        assert "matmul" not in text and "gemm" not in text
