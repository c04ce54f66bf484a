"""The rewrite driver: applies named rules bottom-up until nothing changes, merging common
subexpressions and dropping dead nodes as it goes."""
from __future__ import annotations

import os

from ..ir.graph import Graph, Node, node_site
from ..ir.ops import OPS
from .rebuild import Rebuilder, derived_graph

MAX_ROUNDS = 16


def disabled_rules() -> frozenset:
    """Rules switched off by ``LUMEN_DISABLE_REWRITES=name,name`` (for debugging)."""
    return frozenset(n.strip() for n in os.environ.get("LUMEN_DISABLE_REWRITES", "").split(",") if n.strip())


class Emitter:
    """What a rule's ``build`` uses to make new nodes: types come from the op registry, the
    source line from the node being replaced, ``origin`` names the rule."""

    def __init__(self, rb: Rebuilder, loc, rule_name, uses=None):
        self.rb, self.loc, self.rule = rb, loc, rule_name
        self._uses = uses

    def uses(self, value) -> int:
        """How many nodes (and graph outputs) read ``value``."""
        return self._uses(value)

    def emit(self, op, *inputs, **params):
        types, checks = OPS[op].infer([v.type for v in inputs], params)
        return self.rb.add_node(Node(op, inputs, params, types, self.loc, checks, self.rule)).out

    def const_like(self, value, scalar):
        """A scalar constant of ``value``'s dtype."""
        import numpy as np

        from ..ir.ops.creation import ConstValue
        return self.emit("const", value=ConstValue(np.asarray(scalar, value.dtype)), weak=False)


def apply_rules(graph: Graph, rules, disabled=frozenset()) -> Graph:
    """Rewrite ``graph`` with ``rules`` to a fixed point (CSE and dead-code removal included)."""
    by_op = {}
    for r in rules:
        if r.name in disabled:
            continue
        for op in r.roots:
            by_op.setdefault(op, []).append(r)
    fired = []
    for _ in range(MAX_ROUNDS):
        graph, changed = _one_round(graph, by_op, fired)
        if not changed:
            break
    graph.rewrites = fired
    return graph


def _one_round(graph, by_op, fired):
    """One bottom-up sweep; ``fired`` collects (rule name, the node it replaced)."""
    rb = Rebuilder(graph)
    changed = False
    old_uses, original, replaced = {}, {}, []
    for n in graph.nodes:
        for v in n.inputs:
            old_uses[v] = old_uses.get(v, 0) + 1
    for v in graph.outputs:
        old_uses[v] = old_uses.get(v, 0) + 1

    def uses(value):
        return old_uses.get(original.get(value, value), 0)

    for node in graph.nodes:
        inputs = [rb[v] for v in node.inputs]
        new = Node(node.op, inputs, node.params, [o.type for o in node.outputs], node.loc,
                   node.checks, node.origin)
        replacement = None
        if len(new.outputs) == 1:
            for rule in by_op.get(node.op, ()):
                caps = {}
                if rule.pattern.match(new.out, caps):
                    replacement = rule.build(Emitter(rb, node.loc, rule.name, uses), **caps)
                    if replacement is not None:
                        break
        if replacement is not None:
            if replacement.type.dtype != node.out.dtype or replacement.ndim != node.out.ndim:
                raise AssertionError(f"rule {rule.name} changed the type of {node.op} at {node.loc}")
            rb.map[node.out] = replacement
            replaced.extend((c, node_site(node)) for c in node.checks)
            fired.append((rule.name, node))
            changed = True
            continue
        kept = rb.add_node(new)
        if kept is not new:
            changed = True
        for a, b in zip(node.outputs, kept.outputs):
            rb.map[a] = b
            original[b] = a
    out = rb.finish()
    out.kept_checks.extend(replaced)
    pruned = remove_dead(out)
    return pruned, changed or len(pruned.nodes) != len(graph.nodes)


def remove_dead(graph: Graph) -> Graph:
    """``graph`` without the nodes no output needs (their size checks are kept)."""
    live = set(graph.outputs)
    keep, dead = [], []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs):
            keep.append(node)
            live.update(node.inputs)
        else:
            dead.append(node)
    keep.reverse()
    g = derived_graph(graph, keep, graph.outputs)
    g.kept_checks.extend((c, node_site(n)) for n in reversed(dead) for c in n.checks)
    return g
