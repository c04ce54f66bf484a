"""The in-process executor: native code loaded and made a Python builtin function."""
from __future__ import annotations

import ctypes

from ..codegen_llvm.target import LoadedModule

_METH_FASTCALL = 0x80


class _MethodDef(ctypes.Structure):
    """CPython's ``PyMethodDef``."""
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_new_builtin = ctypes.pythonapi.PyCFunction_NewEx
_new_builtin.restype = ctypes.py_object
_new_builtin.argtypes = [ctypes.POINTER(_MethodDef), ctypes.py_object, ctypes.c_void_p]


class Executable:
    """One compiled graph as ``function``, a builtin taking the flattened arguments.

    Built from object code, which is the same whether it was compiled just now or read from
    the disk cache. The entry is a ``METH_FASTCALL`` C function (`codegen_llvm.context`), so
    Python calls it as it calls any builtin: with the GIL held, in tens of nanoseconds (a
    ctypes call takes ~0.5 µs), and a Python exception set by the native code (shape mismatch,
    index out of range) is raised at the call. It returns NotImplemented for arguments of
    another signature than the one it was compiled for.

    The builtin's ``self`` is a tuple: the captured constant arrays the code reads, then the
    loaded module and the method definition, which the function needs alive as long as it is.
    """

    def __init__(self, objects: list[bytes], captured, name: str):
        self.loaded = LoadedModule(objects)
        self._method = _MethodDef(name.encode(), self.loaded.address("lumen_entry"),
                                  _METH_FASTCALL, None)
        self.function = _new_builtin(ctypes.byref(self._method),
                                     (*captured, self.loaded, self._method), None)
