"""Debug mode (SPEC §8): every call is checked against the NumPy reference interpreter run on
the graph as traced; on a mismatch the pipeline is replayed pass by pass to name the first
pass, rewrite rule and node that made the results diverge."""
from __future__ import annotations

import numpy as np

from ..errors import VerificationError
from ..ir.interpret import interpret
from ..ir.printer import format_node, value_names
from ..passes.pipeline import optimize

#: Relative tolerance per dtype (looser than SPEC §1's: the reference evaluates the naive,
#: unfused formulas, and stabilised results may legitimately be more accurate).
TOLERANCE = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-3}


def agrees(got, ref) -> bool:
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return False
    if ref.dtype.kind != "f":
        return bool(np.array_equal(got, ref))
    tol = TOLERANCE[ref.dtype]
    finite = np.isfinite(ref)
    scale = max(1.0, float(np.max(np.abs(ref[finite])))) if finite.any() else 1.0
    close = np.isclose(got, ref, rtol=tol, atol=tol * scale, equal_nan=True)
    # a finite answer where the naive formula overflowed is what stabilisation is for
    return bool(np.all(close | (~finite & np.isfinite(got))))


def first_mismatch(outputs, reference):
    for i, (g, r) in enumerate(zip(outputs, reference)):
        if not agrees(g, r):
            return i
    return None


def verify_call(entry, arrays, outputs, options):
    """Raise `VerificationError` when ``outputs`` (from compiled code) disagree with the
    reference evaluation of the traced graph."""
    inputs = list(arrays) + list(entry.captured)
    with np.errstate(all="ignore"):
        reference = interpret(entry.graph, inputs)
    bad = first_mismatch(outputs, reference)
    if bad is None:
        return
    raise VerificationError(_diagnose(entry.graph, inputs, outputs, reference, bad, options))


def _diagnose(graph, inputs, outputs, reference, bad, options) -> str:
    got, ref = np.asarray(outputs[bad]), np.asarray(reference[bad])
    head = (f"output {bad} of {graph.name} differs from the reference interpreter"
            f"{_worst(got, ref)}")
    stages = []
    fastmath = options.get("fastmath", False)
    optimize(graph, fastmath=fastmath, stages=stages)
    previous = graph
    for name, staged in stages:
        with np.errstate(all="ignore"):
            staged_out = interpret(staged, inputs)
        if first_mismatch(staged_out, reference) is not None:
            return head + "\n" + _blame_pass(name, previous, staged, inputs, reference, fastmath)
        previous = staged
    node = _producer(previous, bad)
    return (head + f"\nEvery pass preserved the result; the compiled code for the optimised "
            f"graph is wrong (the value comes from: {node}).")


def _blame_pass(name, before, after, inputs, reference, fastmath) -> str:
    from ..passes.pipeline import PIPELINE
    run = dict(PIPELINE)[name]
    fired = []
    for rule, _node in after.rewrites:
        if rule not in fired:
            fired.append(rule)
    for rule in fired:
        with np.errstate(all="ignore"):
            out = interpret(run(before, fastmath, frozenset([rule])), inputs)
        if first_mismatch(out, reference) is None:
            node = next(n for r, n in after.rewrites if r == rule)
            where = f" at {node.loc}" if node.loc else ""
            return (f"first diverging node: the `{node.op}`{where}, replaced by rewrite rule "
                    f"`{rule}` in pass `{name}` (LUMEN_DISABLE_REWRITES={rule} switches it off)")
    return f"the results first diverge after pass `{name}`"


def _producer(graph, index):
    v = graph.outputs[index]
    if v.node is None:
        return "an input"
    return format_node(v.node, value_names(graph)).strip()


def _worst(got, ref) -> str:
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return f": got {got.dtype}{list(got.shape)}, expected {ref.dtype}{list(ref.shape)}"
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    if diff.size == 0:
        return ""
    i = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return f": worst element {[int(k) for k in i]}: got {got[i]!r}, expected {ref[i]!r}"
