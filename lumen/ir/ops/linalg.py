"""`matmul` over operands of rank >= 2 with broadcast batch axes (1-D operands are reshaped by
the frontend, as NumPy's matmul rules say)."""
from __future__ import annotations

import numpy as np

from ..graph import Check
from ..types import TensorType
from .base import Kind, OpDef, broadcast_dims


def _matmul_infer(types, params):
    a, b = types
    batch, checks = broadcast_dims([a.shape[:-2], b.shape[:-2]], "batch axes of matmul")
    checks.append(Check("eq", a.shape[-1], b.shape[-2],
                        "matmul: Input operand 1 has a mismatch in its core dimension 0"))
    dtype = np.matmul.resolve_dtypes((a.dtype, b.dtype, None))[-1]
    return [TensorType(dtype, batch + (a.shape[-2], b.shape[-1]))], checks


OPS = {"matmul": OpDef("matmul", Kind.LINALG, _matmul_infer,
                       lambda a, p, sh: [np.asarray(np.matmul(a[0], a[1]))])}
