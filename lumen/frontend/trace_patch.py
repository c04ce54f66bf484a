"""Module attributes replaced while a trace runs (NumPy's array constructors, ``np.random``).

A `TracePatch` installs its replacements when the first trace starts and restores the
originals when the last one ends, counting nested traces and traces on other threads (the
replacements themselves check whether their own thread is tracing)."""
from __future__ import annotations

import contextlib
import threading


class TracePatch:
    def __init__(self, *replacements):
        """``replacements``: (module, {attribute name: replacement}) pairs."""
        self._items = [(module, dict(new), {name: getattr(module, name) for name in new})
                       for module, new in replacements]
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
