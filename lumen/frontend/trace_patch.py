"""Module attributes replaced while a trace runs (NumPy's array constructors, ``np.random``).

A `TracePatch` installs its replacements when the first trace starts and restores the
originals when the last one ends, counting nested traces and traces on other threads. An
installed function calls its replacement only on a thread that is tracing and the original
everywhere else (another thread calling ``np.zeros`` meanwhile gets an array); a replacement
that is a class stands in for the original class and asks `in_trace` itself."""
from __future__ import annotations

import contextlib
import sys
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
        """``replacements``: (module, {attribute name: replacement}) pairs. A module given by
        its name is patched only where it is imported when the first trace starts (lumen does
        not import it for the patch's sake)."""
        self._items = replacements
        self._originals = {}        # module name -> {attribute: original}, while installed
        self._lock = threading.Lock()
        self._depth = 0

    def original(self, module_name, attribute):
        """The attribute the patch replaced (only while it is installed)."""
        return self._originals[module_name][attribute]

    def _install(self):
        for module, new in self._items:
            if isinstance(module, str):
                module = sys.modules.get(module)
                if module is None:
                    continue
            original = {name: getattr(module, name) for name in new}
            self._originals[module.__name__] = original
            for name, fn in new.items():
                setattr(module, name, fn if isinstance(fn, type) else
                        _on_tracing_thread(fn, original[name]))

    def _restore(self):
        for name, original in self._originals.items():
            for attribute, fn in original.items():
                setattr(sys.modules[name], attribute, fn)
        self._originals = {}

    @contextlib.contextmanager
    def active(self):
        with self._lock:
            if self._depth == 0:
                self._install()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._restore()
