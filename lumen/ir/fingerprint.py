"""A graph's fingerprint: a sha256 over an exact, canonical encoding of everything in it.

The on-disk kernel cache is keyed on the graph *as traced* (together with the compiler's own
version and the options), so that a process can find its compiled code without running the
passes and code generation first. That is only sound if two graphs with the same fingerprint
compile to the same code, so the encoding is exact where the printed IR is not: constants
contribute all their bytes, floats their bits, sizes their structure, source lines (they appear
in the compiled code's error messages) their text. A parameter of a type this module does not
know raises `Unfingerprintable` — the caller then does without the disk cache rather than risk
two different graphs sharing a key. Trace-time size hints are left out: compiled code never
depends on them (sizes the trace did depend on are the graph's guards, which are included).
"""
from __future__ import annotations

import enum
import hashlib
import struct

import numpy as np

from .dims import Dim
from .graph import Graph, Value
from .ops.creation import ConstValue


class Unfingerprintable(Exception):
    """The graph holds a parameter whose exact encoding is unknown."""


def fingerprint(graph: Graph) -> str:
    """Hex sha256 of the canonical encoding of ``graph`` (nested bodies included)."""
    return hashlib.sha256(repr(_graph(graph)).encode()).hexdigest()


def _graph(graph: Graph) -> tuple:
    names = {v: ("in", i) for i, v in enumerate(graph.inputs)}
    nodes = []
    for k, node in enumerate(graph.nodes):
        nodes.append((node.op, tuple(_encode(v, names) for v in node.inputs),
                      _encode(node.params, names), tuple(_type(v) for v in node.outputs),
                      node.loc, node.origin,
                      tuple((c.kind, _dim(c.a), _dim(c.b), c.what, _class(c.error))
                            for c in node.checks)))
        for i, v in enumerate(node.outputs):
            names[v] = ("node", k, i)
    return ("graph", graph.name, tuple(_type(v) for v in graph.inputs),
            tuple(graph.input_names or ()), tuple(bool(c) for c in graph.input_contiguous),
            tuple(sorted(graph.donated)), tuple(nodes), tuple(_encode(v, names) for v in graph.outputs),
            tuple(sorted((_dim(d), int(n)) for d, n in graph.guards.items())),
            _encode(list(graph.int_guards), names),
            tuple(sorted((_dim(a), _dim(b)) for a, b in graph.dim_aliases.items())))


def _type(v: Value) -> tuple:
    return (v.dtype.str, tuple(_dim(d) for d in v.shape), v.type.weak)


def _dim(d: Dim) -> tuple:
    if d.op in ("const", "input"):
        return (d.op,) + tuple(int(a) for a in d.args)
    return (d.op,) + tuple(_dim(a) for a in d.args)


def _class(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(x, names):
    """A nested tuple of str / int / bytes / bool / None whose repr is unique to ``x``."""
    if x is None or isinstance(x, (bool, str, bytes)):
        return x
    if isinstance(x, np.generic):             # before float: np.float64 is a float
        return ("scalar", x.dtype.str, x.tobytes())
    if isinstance(x, int) and not isinstance(x, enum.Enum):
        return ("int", int(x))
    if isinstance(x, float):
        return ("float", struct.pack("<d", x))
    if isinstance(x, Value):
        if x not in names:
            raise Unfingerprintable("a value defined outside its graph")
        return names[x]
    if isinstance(x, Dim):
        return ("dim", _dim(x))
    if isinstance(x, ConstValue):
        return ("const", x.array.dtype.str, x.array.shape, x.array.tobytes())
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    if isinstance(x, np.dtype):
        return ("dtype", x.str)
    if isinstance(x, Graph):
        return _graph(x)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple(_encode(e, names) for e in x)
    if isinstance(x, dict):
        items = [(_encode(k, names), _encode(v, names)) for k, v in x.items()]
        return ("dict",) + tuple(sorted(items, key=repr))
    if isinstance(x, slice):
        return ("slice", _encode(x.start, names), _encode(x.stop, names), _encode(x.step, names))
    if isinstance(x, enum.Enum):
        return ("enum", _class(type(x)), x.name)
    if isinstance(x, type):
        return ("class", _class(x))
    raise Unfingerprintable(f"a parameter of type {type(x).__name__}")
