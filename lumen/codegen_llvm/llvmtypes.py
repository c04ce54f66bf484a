"""LLVM types for NumPy dtypes (bool is i8 in memory, i1 in registers)."""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
f32, f64 = ir.FloatType(), ir.DoubleType()
i8p = i8.as_pointer()
i64p = i64.as_pointer()


def value_type(dtype):
    """Register type of one element."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return i1
    if dtype.kind in "iu":
        return ir.IntType(8 * dtype.itemsize)
    if dtype == np.float32:
        return f32
    if dtype == np.float64:
        return f64
    raise TypeError(f"no LLVM type for {dtype}")


def memory_type(dtype):
    """In-memory type of one element."""
    dtype = np.dtype(dtype)
    return i8 if dtype.kind == "b" else value_type(dtype)
