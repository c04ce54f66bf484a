"""SPEC §8: debug mode checks every call against the reference interpreter and names the
rewrite that broke a result."""
import numpy as np
import pytest

import lumen
from lumen.passes.pattern import Pat, Rule
from lumen.passes.rules import stabilize


def test_debug_mode_passes_correct_programs():
    f = lumen.jit(lambda x: np.log(1 + x) + np.exp(x).sum(), debug=True)
    x = np.linspace(0.1, 1, 7)
    np.testing.assert_allclose(f(x), np.log1p(x) + np.exp(x).sum())


def test_debug_mode_accepts_stabilised_results_where_the_naive_formula_fails():
    f = lumen.jit(lambda x: np.log(np.exp(x).sum()), debug=True)
    assert f(np.array([1000.0, 1000.0])) == pytest.approx(1000 + np.log(2))


def test_debug_mode_names_a_deliberately_broken_rewrite(monkeypatch):
    broken = Rule("broken_log1p", Pat("log", Pat("add", Pat.const(1), Pat.var("x")), name="v"),
                  lambda g, x, v: g.emit("log", x))           # forgets the "1 +"
    monkeypatch.setattr(stabilize, "RULES", (broken,) + stabilize.RULES)
    f = lumen.jit(lambda x: np.log(1 + x) * 2, debug=True)
    with pytest.raises(lumen.VerificationError) as err:
        f(np.linspace(0.5, 2.0, 5))
    message = str(err.value)
    assert "broken_log1p" in message and "stabilize" in message
    assert "first diverging node" in message and "test_debug_mode.py:" in message
    assert "worst element" in message


def test_without_debug_the_broken_rewrite_goes_unchecked(monkeypatch):
    broken = Rule("broken_log1p", Pat("log", Pat("add", Pat.const(1), Pat.var("x")), name="v"),
                  lambda g, x, v: g.emit("log", x))
    monkeypatch.setattr(stabilize, "RULES", (broken,) + stabilize.RULES)
    f = lumen.jit(lambda x: np.log(1 + x) * 2)
    x = np.linspace(0.5, 2.0, 5)
    assert not np.allclose(f(x), np.log(1 + x) * 2)


def test_lumen_debug_environment_variable_turns_it_on(monkeypatch):
    monkeypatch.setenv("LUMEN_DEBUG", "1")
    broken = Rule("broken_expm1", Pat("subtract", Pat("exp", Pat.var("x")), Pat.const(1), name="v"),
                  lambda g, x, v: g.emit("exp", x))
    monkeypatch.setattr(stabilize, "RULES", (broken,) + stabilize.RULES)
    with pytest.raises(lumen.VerificationError, match="broken_expm1"):
        lumen.jit(lambda x: np.exp(x) - 1)(np.linspace(-1, 1, 4))
