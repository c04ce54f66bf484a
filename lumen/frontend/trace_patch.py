"""Module attributes replaced while a trace runs (NumPy's array constructors, ``np.random``).

A `TracePatch` installs its replacements when the first trace starts and restores the
originals when the last one ends, counting nested traces and traces on other threads. An
installed function calls its replacement only on a thread that is tracing and the original
everywhere else (another thread calling ``np.zeros`` meanwhile gets an array); a replacement
that is a class stands in for the original class and asks `in_trace` itself."""
from __future__ import annotations

import contextlib
import threading

from .trace import in_trace


def _on_tracing_thread(replacement, original):
    def dispatch(*args, **kwargs):
        return (replacement if in_trace() else original)(*args, **kwargs)
    dispatch.__name__, dispatch.__doc__ = getattr(original, "__name__", ""), original.__doc__
    dispatch.__wrapped__ = original
    return dispatch


class TracePatch:
    def __init__(self, *replacements):
        """``replacements``: (module, {attribute name: replacement}) pairs."""
        self._items = []
        for module, new in replacements:
            original = {name: getattr(module, name) for name in new}
            installed = {name: fn if isinstance(fn, type) else
                         _on_tracing_thread(fn, original[name]) for name, fn in new.items()}
            self._items.append((module, installed, original))
        self._lock = threading.Lock()
        self._depth = 0

    def _install(self, which):
        for module, new, original in self._items:
            for name, fn in (new if which == "new" else original).items():
                setattr(module, name, fn)

    @contextlib.contextmanager
    def active(self):
        with self._lock:
            if self._depth == 0:
                self._install("new")
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._install("original")
