"""`TensorType`: what the compiler knows about a value before it runs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dims import Dim, as_dim

SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64"))

_SHORT = {"bool": "bool", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
          "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
          "float32": "f32", "float64": "f64"}


def short_name(dtype) -> str:
    return _SHORT[np.dtype(dtype).name]


@dataclass(frozen=True)
class TensorType:
    """dtype, symbolic shape and weakness of a value.

    ``shape`` holds one `Dim` per axis; a constant 1 marks a broadcast axis (the broadcast
    pattern compiled functions are specialised on). ``weak`` marks a Python scalar, which
    NumPy 2 (NEP 50) lets the other operand's dtype win over.
    """

    dtype: np.dtype
    shape: tuple
    weak: bool = False

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple:
        return tuple(d.value == 1 for d in self.shape)

    def text(self) -> str:
        dims = ",".join("?" if d.value is None else str(d.value) for d in self.shape)
        weak = "~" if self.weak else ""
        return f"{weak}{short_name(self.dtype)}[{dims}]"

    def __repr__(self):
        return self.text()


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"


def is_bool(dtype) -> bool:
    return np.dtype(dtype).kind == "b"


__all__ = ["TensorType", "Dim", "SUPPORTED_DTYPES", "short_name", "is_float", "is_int", "is_bool"]
