"""``np.random`` refused inside traced functions.

A traced function runs once; ``np.random.normal(...)`` there would draw its numbers at trace
time and compile them in as constants, so every later call would repeat them. While a
function is traced, NumPy's random functions (``np.random.rand``, ``normal``, ``shuffle``, ...)
and constructors (``default_rng``, ``RandomState``, ``Generator``) raise `UnsupportedError`
naming the call and pointing at `lumen.random`. Only on the thread that is tracing
(`TracePatch`): other threads keep the originals' behaviour.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .source import at_user_line
from .trace import in_trace
from .trace_patch import TracePatch

_CLASSES = ("RandomState", "Generator")


def _guarded_name(name):
    """Public functions (``rand``, ``normal``, ``default_rng``, ...) and the two generator
    classes; bit generators and ``SeedSequence`` draw nothing by themselves."""
    obj = getattr(np.random, name)
    return not name.startswith("_") and name != "test" and (name in _CLASSES or callable(obj)
                                         and not isinstance(obj, type))


_ORIGINAL = {name: getattr(np.random, name) for name in dir(np.random) if _guarded_name(name)}


def _refuse(name):
    raise UnsupportedError(
        f"np.random.{name}{at_user_line()} is not supported inside a traced function: it would run once "
        "while tracing and its numbers would be compiled in as constants. Use lumen.random "
        "instead: pass a key (k = lumen.random.key(seed)) and call e.g. "
        "lumen.random.normal(k, shape); split it (lumen.random.split) for fresh numbers")


def _function(name):
    def refused(*args, **kwargs):
        _refuse(name)
    return refused


class _GuardedClass(type):
    """Metaclass of a stand-in for a NumPy class: ``isinstance`` and ``issubclass`` answer for
    the original, so code on other threads that checks types is unaffected."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls.__wrapped__)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls.__wrapped__)

    def __call__(cls, *args, **kwargs):
        if in_trace():
            _refuse(cls.__name__)
        return cls.__wrapped__(*args, **kwargs)


def _class(name, original):
    return _GuardedClass(name, (), {"__wrapped__": original, "__doc__": original.__doc__})


_GUARDED = {name: _class(name, fn) if name in _CLASSES else _function(name)
            for name, fn in _ORIGINAL.items()}


_PATCH = TracePatch((np.random, _GUARDED))


def numpy_random_refused():
    """Install the guards for the duration of a trace (nesting and threads are counted)."""
    return _PATCH.active()
