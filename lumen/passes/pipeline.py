"""The ordered pass pipeline from a traced graph to the graph of kernels codegen lowers.

Phases and what each guarantees to the next:

1. ``simplify``: constants folded, common subexpressions merged, dead nodes gone, IEEE-exact
   identities applied (plus the non-exact ones under ``fastmath``). Negation stays
   ``negative``; ``1 - x`` stays ``subtract``.
2. ``stabilize``: naive formulas replaced by stable ones (log1p, expm1, softplus, sigmoid,
   logsumexp, log-softmax, ...); rules are matched on the phase-1 form.
3. ``unify_dims``: sizes proven equal by the graph's checks become one `Dim` (checks of nodes
   later passes remove are kept: ``Graph.all_checks``).
4. ``specialize``: matrix product + bias / scaling / subtraction -> one BLAS ``gemm``; after
   unify_dims, so that a gradient reshaped to its parameter's sizes is seen as the product.
   The sizes are unified again after it: a product of the graph's inputs takes their sizes,
   which unify_dims leaves as they are (a kernel reading ``x @ W`` would otherwise see sizes
   other than its own, and run as a strided loop nest instead of one vectorised loop).
5. ``kernelize``: every elementwise and reduce node becomes a single-op ``kernel``.
6. ``fuse``: kernels merged (elementwise chains, producers into reductions, epilogues).
"""
from __future__ import annotations

from ..ir.verify import verify
from .fuse import fuse
from .kernelize import kernelize
from .loops import hoist_loops
from .rebuild import map_bodies
from .rewrite import apply_rules, disabled_rules
from .rules import simplify, specialize, stabilize
from .unify_dims import unify_body_dims, unify_dims


def _simplify(graph, fastmath, disabled):
    rules = simplify.EXACT + (simplify.FASTMATH if fastmath else ())
    return apply_rules(graph, rules, disabled)


def _stabilize(graph, fastmath, disabled):
    return apply_rules(graph, simplify.EXACT + stabilize.RULES, disabled)


def _specialize(graph, fastmath, disabled):
    """The BLAS rewrites, then the sizes unified again (see phase 4 above); the graph keeps
    the rewrites' record."""
    rewritten = apply_rules(graph, simplify.EXACT + specialize.RULES, disabled)
    unified = unify_dims(rewritten)
    unified.rewrites = rewritten.rewrites
    return unified


#: (name, pass) in order; each takes (graph, fastmath, disabled rule names) -> new graph.
PIPELINE = (
    ("simplify", _simplify),
    ("stabilize", _stabilize),
    ("unify_dims", lambda g, fastmath, disabled: unify_dims(g)),
    ("specialize", _specialize),
    ("kernelize", lambda g, fastmath, disabled: kernelize(g)),
    ("fuse", lambda g, fastmath, disabled: fuse(g)),
)


#: Passes skipped inside loop and branch bodies: their size checks run where the body runs,
#: not in the function's prologue, so sizes they prove equal cannot be unified.
_NOT_IN_BODIES = ("unify_dims",)


def optimize(graph, fastmath=False, check=False, stages=None, disabled=None, nested=False):
    """Run the pipeline (the bodies of loops and branches first, recursively). ``stages``, a
    list, receives (pass name, graph) after each pass; ``disabled`` adds rule names to those
    of ``LUMEN_DISABLE_REWRITES``."""
    disabled = disabled_rules() | frozenset(disabled or ())
    if not nested:        # bodies are optimised first, with the sizes the prologue proves equal
        graph = unify_body_dims(hoist_loops(graph))
    graph = _optimize_bodies(graph, fastmath, check, disabled)
    for name, run in PIPELINE:
        if nested and name in _NOT_IN_BODIES:
            continue
        graph = run(graph, fastmath, disabled)
        if check:
            verify(graph)
        if stages is not None:
            stages.append((name, graph))
    return graph


def _optimize_bodies(graph, fastmath, check, disabled):
    return map_bodies(graph, lambda body: optimize(body, fastmath, check, disabled=disabled,
                                                   nested=True))
