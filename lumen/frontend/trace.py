"""The trace being recorded: the graph builder and the conversion of Python and NumPy values
into graph values."""
from __future__ import annotations

import threading

import numpy as np

from ..errors import TracingError, UnsupportedError
from ..ir.builder import GraphBuilder
from ..ir import dims as dims_module
from ..ir.dims import Dim
from ..ir.ops.creation import ConstValue
from ..ir.types import SUPPORTED_DTYPES
from .source import user_location

_state = threading.local()

#: Constant arrays with more elements than this are passed in at run time, not compiled in.
LARGE_CONSTANT = 256


class _Current:
    """``with trace:`` makes it the trace new primitives go to on this thread."""

    def __enter__(self):
        self._prev = getattr(_state, "trace", None)
        _state.trace = self
        return self

    def __exit__(self, *exc):
        _state.trace = self._prev


class Trace(_Current):
    def __init__(self, name: str):
        self.builder = GraphBuilder(name)
        self.argument_ids = set()   # id() of the tracers that are the function's own arguments
        self.captured = []          # large constant arrays, passed to the compiled code as inputs
        self.int_ranges = {}        # Python-int argument Value -> (position, jit.int_range)
        self.used_int_ranges = set()    # those the trace depended on
        self._captured_values = {}

    def capture(self, array):
        """A graph input for a large constant array (kept out of the generated code)."""
        key = id(array)
        if key not in self._captured_values:
            a = np.ascontiguousarray(array)
            dims = tuple(Dim.const(n) for n in a.shape)
            from ..ir.types import TensorType
            v = self.builder.add_input(TensorType(a.dtype, dims), f"const{len(self.captured)}")
            self.captured.append(a)
            self._captured_values[key] = (v, array)   # the array is kept alive with its id
        return self._captured_values[key][0]

    def emit(self, op, inputs, **params):
        return self.builder.emit(op, inputs, user_location(), **params)


class SubTrace(_Current):
    """Traces a nested function (a loop or branch body) into a graph of its own. A value of an
    enclosing trace that the body uses becomes an extra input of the body (a *capture*); the
    control-flow node then passes the outer value in."""

    def __init__(self, parent, name: str):
        self.parent = parent
        self.builder = GraphBuilder(name)
        self.owned = set()
        self.captures = []          # outer values, in the order of the body's capture inputs
        self._inner = {}
        self._seen = 0              # how many of the builder's nodes are in ``owned``
        self.argument_ids = set()

    @property
    def int_ranges(self):
        return self.parent.int_ranges

    @property
    def used_int_ranges(self):
        return self.parent.used_int_ranges

    def input(self, type, name):
        v = self.builder.add_input(type, name)
        self.owned.add(v)
        return v

    def local(self, value):
        """``value`` as seen inside the body (captured on first use)."""
        if value not in self.owned:
            self._own_new_nodes()
        if value in self.owned:
            return value
        inner = self._inner.get(value)
        if inner is None:
            inner = self.builder.add_input(value.type, f"cap{len(self.captures)}")
            self.owned.add(inner)
            self.captures.append(value)
            self._inner[value] = inner
        return inner

    def _own_new_nodes(self):
        """The outputs of nodes appended straight to the builder -- a transform's derivative
        (`lumen.grad` inside a loop body) is -- are the body's own values, not captures."""
        for node in self.builder.nodes[self._seen:]:
            self.owned.update(node.outputs)
        self._seen = len(self.builder.nodes)

    def emit(self, op, inputs, **params):
        return self.builder.emit(op, [self.local(v) for v in inputs], user_location(), **params)

    def capture(self, array):
        return self.parent.capture(array)



def in_trace() -> bool:
    """Whether a function is being traced on this thread right now."""
    return getattr(_state, "trace", None) is not None


def current() -> Trace:
    t = getattr(_state, "trace", None)
    if t is None:
        raise TracingError("a lumen tracer was used outside the function being traced "
                           "(did a traced value leak out, e.g. into a global?)")
    return t


def check_dtype(dtype, what="array") -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        kind = "complex numbers are" if dtype.kind == "c" else f"dtype {dtype} is"
        raise UnsupportedError(f"{kind} not supported by lumen ({what}); supported: "
                               + ", ".join(d.name for d in SUPPORTED_DTYPES))
    return dtype


def const_value(value, weak=False):
    """A graph value for a constant (uniform arrays become a broadcast scalar)."""
    trace = current()
    a = np.asarray(value)
    check_dtype(a.dtype, "constant")
    if a.ndim and a.size > 1 and _uniform(a):
        scalar = trace.emit("const", [], value=ConstValue(a.reshape(-1)[:1].reshape(())), weak=False)
        return trace.emit("broadcast_to", [scalar.out], shape=tuple(Dim.const(n) for n in a.shape)).out
    if a.size > LARGE_CONSTANT:
        return trace.capture(a)
    return trace.emit("const", [], value=ConstValue(a), weak=weak).out


def _uniform(a) -> bool:
    """Every element has the same bits (so -0.0 and NaN payloads are kept exactly)."""
    bits = np.ascontiguousarray(a).reshape(-1).view(f"u{a.dtype.itemsize}")
    return bool((bits == bits[0]).all())


def to_value(x):
    """Graph value for a tracer, Python scalar (weak, NEP 50), NumPy array or scalar, or size."""
    from .tracer import Tracer
    if isinstance(x, Tracer):
        return x._value
    if isinstance(x, Dim):
        return current().emit("dim", [], dim=x).out
    if isinstance(x, (np.ndarray, np.generic)):      # before float: np.float64 is a float
        return const_value(x)
    if isinstance(x, bool):
        return const_value(np.bool_(x))
    if isinstance(x, int):
        return const_value(np.asarray(x, np.int64 if -2**63 <= x < 2**63 else np.uint64), weak=True)
    if isinstance(x, float):
        return const_value(np.float64(x), weak=True)
    if isinstance(x, complex):
        raise UnsupportedError("complex numbers are not supported by lumen")
    if isinstance(x, (list, tuple)):
        return const_value(np.asarray(x))
    raise TypeError(f"lumen cannot use a {type(x).__name__} as an array in traced code")


def weak_kind(value):
    """What NumPy's dtype resolution should see for a value: its dtype, or the Python type of a
    weak scalar."""
    if value.type.weak:
        return {"f": float, "i": int, "u": int}[value.dtype.kind]
    return value.dtype


def _size_arithmetic(op, a, b):
    """A size mixed with a float or a traced array: a traced scalar, as in NumPy."""
    from . import ops
    name = {"add": "add", "sub": "subtract", "mul": "multiply", "floordiv": "floor_divide",
            "truediv": "divide"}[op]
    return ops.ufunc(name, a, b)


def _size_ufunc(ufunc, method, inputs, kwargs):
    """A NumPy ufunc of a size: the size becomes a traced integer scalar."""
    from .tracer import Tracer
    return getattr(ufunc, method)(*(Tracer(to_value(x)) if isinstance(x, Dim) else x
                                    for x in inputs), **kwargs)


dims_module.scalar_arithmetic = _size_arithmetic
dims_module.array_ufunc = _size_ufunc
