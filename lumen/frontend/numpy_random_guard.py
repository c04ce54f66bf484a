"""``np.random`` refused inside traced functions.

A traced function runs once; ``np.random.normal(...)`` there would draw its numbers at trace
time and compile them in as constants, so every later call would repeat them. While a
function is traced, NumPy's random functions (``np.random.rand``, ``normal``, ``shuffle``, ...)
and constructors (``default_rng``, ``RandomState``, ``Generator``) raise `UnsupportedError`
naming the call and pointing at `lumen.random`. The wrappers ask whether *this thread* is
tracing, so other threads keep the originals' behaviour; nesting is counted.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .source import user_location
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
    loc = user_location()
    where = f" at {loc}" if loc else ""
    raise UnsupportedError(
        f"np.random.{name}{where} is not supported inside a traced function: it would run once "
        "while tracing and its numbers would be compiled in as constants. Use lumen.random "
        "instead: pass a key (k = lumen.random.key(seed)) and call e.g. "
        "lumen.random.normal(k, shape); split it (lumen.random.split) for fresh numbers")


def _function(name, original):
    def guarded(*args, **kwargs):
        if in_trace():
            _refuse(name)
        return original(*args, **kwargs)
    guarded.__name__, guarded.__doc__, guarded.__wrapped__ = name, original.__doc__, original
    return guarded


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


_GUARDED = {name: (_class if name in _CLASSES else _function)(name, fn)
            for name, fn in _ORIGINAL.items()}


_PATCH = TracePatch((np.random, _GUARDED))


def numpy_random_refused():
    """Install the guards for the duration of a trace (nesting and threads are counted)."""
    return _PATCH.active()
