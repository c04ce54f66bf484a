"""Addresses generated code calls by name: the CPython and NumPy C APIs and BLAS.

NumPy's functions live in its API table and BLAS in SciPy's Cython capsules; both are made
visible to the JIT linker under stable ``lumen_*`` names, so object code never embeds an
address (and can be cached on disk and loaded into another process).
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np

#: Indices into NumPy's C-API table (``__multiarray_api.h``; fixed by NumPy's ABI).
_NUMPY_API = {"lumen_PyArray_DescrFromType": 45, "lumen_PyArray_Empty": 184}

#: BLAS routines taken from scipy.linalg.cython_blas.
BLAS = ("sgemm", "dgemm")

_PYTHON_FUNCTIONS = ("PyList_SetItem", "PyErr_SetString", "PyErr_NoMemory")
_PYTHON_EXCEPTIONS = ("PyExc_ValueError", "PyExc_IndexError", "PyExc_TypeError",
                      "PyExc_ZeroDivisionError")


def _capsule_pointer(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, get_name(capsule))


def register_symbols() -> None:
    table = (ctypes.c_void_p * 400).from_address(_capsule_pointer(np._core.multiarray._ARRAY_API))
    for name, index in _NUMPY_API.items():
        llvm.add_symbol(name, table[index])
    for name in _PYTHON_FUNCTIONS:
        llvm.add_symbol(name, ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value)
    for name in _PYTHON_EXCEPTIONS:
        llvm.add_symbol(name, ctypes.addressof(ctypes.c_void_p.in_dll(ctypes.pythonapi, name)))
    from scipy.linalg import cython_blas
    for name in BLAS:
        llvm.add_symbol(f"lumen_{name}", _capsule_pointer(cython_blas.__pyx_capi__[name]))
