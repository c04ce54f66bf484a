"""The in-process executor: native code loaded, called with the argument arrays."""
from __future__ import annotations

import ctypes

from ..codegen_llvm.target import LoadedModule

_ENTRY = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.py_object)


class Executable:
    """One compiled graph: ``run(arrays) -> list of result arrays``.

    Built from object code, which is the same whether it was compiled just now or read from
    the disk cache. The entry is called through a ``PYFUNCTYPE`` prototype: the GIL stays held
    and a Python exception set by the native code (shape mismatch, index out of range) is
    raised here.
    """

    def __init__(self, object_code: bytes, n_outputs: int):
        self.loaded = LoadedModule(object_code)
        self._entry = _ENTRY(self.loaded.address("lumen_entry"))
        self.n_outputs = n_outputs

    def run(self, arrays):
        outs = [None] * self.n_outputs
        self._entry(arrays, outs)
        return outs
