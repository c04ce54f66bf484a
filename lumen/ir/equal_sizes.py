"""Which sizes of a graph are equal: those its checks prove equal, and those that were equal
while tracing, assumed so on a guard.

``z[h:2*h] * c`` broadcasts a slice's length, ``max(min(2h, n) - min(h, n), 0)``, against
``c``'s ``h``: equal for every input the program is meant for, but not provably so, and not
known never to be 1 (input sizes are: `Dim.not_one`). Their broadcast check then leaves two
sizes, and the kernel reading the slice tests at run time whether its length is 1 to choose a
stride of 0, which the loop vectoriser cannot see through (an LSTM step's gate kernels ran
element by element, 3.5x slower). When the two sizes were equal and not 1 while tracing, the
compiled function is specialised on their equality instead, as on a size Python code
concretised: a guard ``a - b == 0``, which `jit` checks before using the specialisation (the
compiled code too, `Context.require_guards`), so that a call where they differ (a real
broadcast) is traced and compiled again. `passes.unify_dims` then makes them one size.
"""
from __future__ import annotations

from .dims import Dim, binary
from .ops import BODY_PARAMS


class SizeClasses:
    """Union-find over `Dim`s; a class's representative is its simplest member (`_rank`)."""

    def __init__(self):
        self.parent = {}

    def find(self, d):
        while self.parent.get(d, d) != d:
            d = self.parent[d]
        return d

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if _rank(rb) < _rank(ra):
            ra, rb = rb, ra
        self.parent[rb] = ra

    def same(self, a, b) -> bool:
        return self.find(self.plain(a)) == self.find(self.plain(b))

    def plain(self, d):
        """``d`` without broadcasts of two sizes of one class (such a broadcast is either)."""
        if d.op == "bcast" and self.same(*d.args):
            return self.plain(d.args[0])
        return d


def _rank(d: Dim):
    """Representatives: constants first, then input sizes in argument order, then the rest."""
    if d.op == "const":
        return (0, d.value, 0)
    if d.op == "input":
        return (1, *d.args)
    return (2, len(d.text()), 0)


def _proves_equal(check) -> bool:
    """A check that passes only when its two sizes are equal: ``eq``, or a broadcast of two
    sizes neither of which can be 1."""
    return check.kind == "eq" or (check.kind in ("bcast", "expand") and check.a.not_one
                                  and check.b.not_one)


def equal_sizes(graph) -> SizeClasses:
    """The classes of sizes that ``graph``'s own checks and its guards make equal."""
    classes = SizeClasses()
    for c, _where in graph.all_checks():
        if _proves_equal(c):
            classes.union(c.a, c.b)
    for d, value in graph.guards.items():
        if d.op == "sub" and value == 0:
            classes.union(*d.args)
    return classes


def assume_traced_equalities(graph) -> None:
    """Guard the broadcast checks of ``graph`` and its bodies between sizes that were equal
    (and not 1) while tracing and are not equal by the checks or earlier guards."""
    classes = equal_sizes(graph)
    for check in _broadcast_checks(graph):
        a, b = classes.plain(check.a), classes.plain(check.b)
        if a.hint == b.hint != 1 and not (a.is_const and b.is_const) and not classes.same(a, b):
            graph.guards[binary("sub", a, b)] = 0
            classes.union(a, b)


def _broadcast_checks(graph):
    for check, _where in graph.all_checks():
        if check.kind in ("bcast", "expand"):
            yield check
    for node in graph.nodes:
        for key in BODY_PARAMS.get(node.op, ()):
            yield from _broadcast_checks(node.params[key])
