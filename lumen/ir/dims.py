"""Symbolic sizes.

Types never carry concrete sizes (DESIGN.md decision 3): every axis length is a `Dim`, an
expression over the sizes of the graph's inputs that the compiled code evaluates at run time.
Each `Dim` also keeps the value it had while tracing (`hint`), so that shape errors are caught
at trace time with the user's line, and so that Python code that needs a real ``int`` (``range(n)``)
can have one: that *concretises* the dim and the compiled function is then specialised on it.
"""
from __future__ import annotations

import operator
import threading

_guard_sinks = threading.local()


class Dim:
    """An immutable size expression, compared and hashed by structure.

    ``op`` is one of ``const`` (args: value), ``input`` (args: input position, axis), or an
    arithmetic operator over other dims: ``add sub mul floordiv cdiv max min bcast``.
    ``bcast(a, b)`` is NumPy's broadcast of two lengths: ``b`` where ``a == 1`` else ``a``.
    """

    __slots__ = ("op", "args", "hint", "_hash")

    def __init__(self, op: str, args: tuple, hint: int):
        self.op, self.args, self.hint = op, args, int(hint)
        # kept: expressions share subexpressions (a convolution's window bounds), and hashing
        # or comparing them afresh at every level is exponential in their depth
        self._hash = hash((op, args))

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def const(value: int) -> "Dim":
        return Dim("const", (int(value),), int(value))

    @staticmethod
    def input(position: int, axis: int, hint: int) -> "Dim":
        return Dim("input", (position, axis), hint)

    @property
    def not_one(self) -> bool:
        """Known never to be 1 at run time. Input sizes are (a compiled function is specialised
        on which axes have length 1), and so are products and broadcasts involving one."""
        if self.op == "const":
            return self.args[0] != 1
        if self.op == "input":
            return True
        if self.op in ("mul", "bcast"):
            return self.args[0].not_one or self.args[1].not_one
        return False

    @property
    def is_const(self) -> bool:
        return self.op == "const"

    @property
    def value(self):
        """The constant value, or None when the size is only known at run time."""
        return self.args[0] if self.op == "const" else None

    def __eq__(self, other):
        if isinstance(other, Dim):
            return self is other or (self._hash == other._hash and self.op == other.op
                                     and self.args == other.args)
        if isinstance(other, int):
            return concretize(self) == other
        return NotImplemented

    def __hash__(self):
        return self._hash

    # -- arithmetic (Python ints mix in freely; anything else makes a traced scalar) -----------
    def __add__(self, o): return _arith("add", self, o)
    def __radd__(self, o): return _arith("add", o, self)
    def __sub__(self, o): return _arith("sub", self, o)
    def __rsub__(self, o): return _arith("sub", o, self)
    def __mul__(self, o): return _arith("mul", self, o)
    def __rmul__(self, o): return _arith("mul", o, self)
    def __floordiv__(self, o): return _arith("floordiv", self, o)
    def __rfloordiv__(self, o): return _arith("floordiv", o, self)
    def __truediv__(self, o): return _arith("truediv", self, o)
    def __rtruediv__(self, o): return _arith("truediv", o, self)

    # -- places where Python insists on a real int ------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``np.sqrt(x.shape[0])`` in traced code: a traced scalar, as NumPy gives a float."""
        if array_ufunc is None:
            return NotImplemented
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __index__(self): return concretize(self)
    def __int__(self): return concretize(self)
    def __float__(self): return float(concretize(self))
    def __bool__(self): return concretize(self) != 0
    def __lt__(self, o): return concretize(self) < int(o)
    def __le__(self, o): return concretize(self) <= int(o)
    def __gt__(self, o): return concretize(self) > int(o)
    def __ge__(self, o): return concretize(self) >= int(o)

    def __repr__(self):
        return str(self.hint) if self.op == "const" else f"Dim({self.text()}={self.hint})"

    def text(self) -> str:
        """Readable expression, e.g. ``(in0.1 * 3)``."""
        if self.op == "const":
            return str(self.args[0])
        if self.op == "input":
            return f"in{self.args[0]}.{self.args[1]}"
        a, b = self.args
        return f"{self.op}({a.text()}, {b.text()})"

    def leaves(self):
        """The input dims this expression depends on."""
        if self.op == "input":
            yield self
        elif self.op != "const":
            for a in self.args:
                yield from a.leaves()

    def evaluate(self, input_shapes) -> int:
        """Value of the expression for concrete input shapes (a sequence of tuples)."""
        if self.op == "const":
            return self.args[0]
        if self.op == "input":
            pos, axis = self.args
            return int(input_shapes[pos][axis])
        a, b = (x.evaluate(input_shapes) for x in self.args)
        return _EVAL[self.op](a, b)


def _cdiv(a, b):
    return -(-a // b)


#: Each operator's value for concrete sizes.
_EVAL = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "floordiv": lambda a, b: a // b if b else 0, "cdiv": lambda a, b: _cdiv(a, b) if b else 0,
    "max": max, "min": min, "bcast": lambda a, b: b if a == 1 else a,
}
_INPUT = object()     # a `size_test` step reading an input's size


def size_test(expected: dict):
    """-> ``test(input_shapes)``: whether every size in ``expected`` (`Dim` -> int) has its
    value. A specialisation's guards are tested on every call that does not take jit's fast
    path (a model's step taking a dict of parameters); `Dim.evaluate` walks each expression
    anew (an LSTM's twelve slice-length guards took 46 µs a call), so the expressions are
    flattened once into steps that compute each shared subexpression once."""
    slots, steps = {}, []  # step: (None, constant, 0) | (_INPUT, pos, axis) | (fn, slot, slot)

    def slot(d: Dim) -> int:
        if d not in slots:
            if d.op == "const":
                step = (None, d.args[0], 0)
            elif d.op == "input":
                step = (_INPUT, d.args[0], d.args[1])
            else:
                step = (_EVAL[d.op], slot(d.args[0]), slot(d.args[1]))
            slots[d] = len(steps)
            steps.append(step)
        return slots[d]

    checks = tuple((slot(d), int(v)) for d, v in expected.items())
    steps = tuple(steps)

    def test(shapes):
        values = []
        for fn, x, y in steps:
            if fn is None:
                values.append(x)
            elif fn is _INPUT:
                values.append(shapes[x][y])
            else:
                values.append(fn(values[x], values[y]))
        return all(values[k] == v for k, v in checks)
    return test


#: Set by the frontend: ``(op, a, b) -> traced value`` for size arithmetic with a float or a
#: traced array (``x / (x.shape[0] + 1.0)``), which NumPy computes as floats.
scalar_arithmetic = None
#: Set by the frontend: ``(ufunc, method, inputs, kwargs) -> traced value`` for a NumPy ufunc
#: called on a size.
array_ufunc = None

_PYTHON_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
               "floordiv": operator.floordiv, "truediv": operator.truediv}


def _arith(op, a, b):
    if op != "truediv" and all(isinstance(x, (Dim, int)) or hasattr(x, "__index__") and
                               not hasattr(x, "_value") for x in (a, b)):
        return binary(op, a, b)
    if scalar_arithmetic is None:
        return _PYTHON_OPS[op](*(concretize(x) if isinstance(x, Dim) else x for x in (a, b)))
    return scalar_arithmetic(op, a, b)


def as_dim(x) -> Dim:
    if isinstance(x, Dim):
        return x
    return Dim.const(operator.index(x))


def binary(op: str, a, b) -> Dim:
    """Build ``op(a, b)``, folding constants and the identities that keep expressions small."""
    a, b = as_dim(a), as_dim(b)
    if a.is_const and b.is_const:
        return Dim.const(_EVAL[op](a.value, b.value))
    if op == "add" and (a.value == 0 or b.value == 0):
        return b if a.value == 0 else a
    if op == "sub" and b.value == 0:
        return a
    if op == "sub" and a == b:
        return Dim.const(0)
    if op == "mul" and (a.value == 1 or b.value == 1):
        return b if a.value == 1 else a
    if op == "mul" and (a.value == 0 or b.value == 0):
        return Dim.const(0)
    if op in ("floordiv", "cdiv") and b.value == 1:
        return a
    if op in ("max", "min", "bcast") and a == b:
        return a
    if op == "bcast" and (a.value == 1 or b.value == 1):
        return b if a.value == 1 else a
    if op == "bcast" and (a.not_one or b.not_one):
        return a if a.not_one else b    # the other side is then equal to it, or 1
    return Dim(op, (a, b), _EVAL[op](a.hint, b.hint))


def dmax(a, b) -> Dim: return binary("max", a, b)
def dmin(a, b) -> Dim: return binary("min", a, b)
def cdiv(a, b) -> Dim: return binary("cdiv", a, b)


def prod(dims) -> Dim:
    out = Dim.const(1)
    for d in dims:
        out = binary("mul", out, d)
    return out


# -- concretisation: Python needed a real int ----------------------------------------------

class guard_sink:
    """Context manager collecting the dims that tracing concretised; the compiled function is
    specialised on their values (checked again on every call)."""

    def __init__(self):
        self.guards: dict = {}

    def __enter__(self):
        self._prev = getattr(_guard_sinks, "current", None)
        _guard_sinks.current = self
        return self

    def __exit__(self, *exc):
        _guard_sinks.current = self._prev


def concretize(d: Dim) -> int:
    if d.op != "const":
        sink = getattr(_guard_sinks, "current", None)
        if sink is not None:
            sink.guards[d] = d.hint
    return d.hint
