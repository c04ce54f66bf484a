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


def _gemm_infer(types, params):
    a, b, c = types
    (out,), checks = _matmul_infer([a, b], params)
    if not (a.dtype == b.dtype == c.dtype and a.dtype.kind == "f"):
        raise TypeError("gemm takes floating-point operands of one dtype")
    for axis, d in enumerate(c.shape):
        target = out.shape[out.ndim - c.ndim + axis]
        if d.value != 1 and d != target:
            checks.append(Check("expand", d, target, "gemm: the added term must broadcast to the product"))
    return [out], checks


def _gemm_reference(arrays, params, shapes):
    a, b, c = arrays
    alpha, beta = params["alpha"], params["beta"]
    out = alpha * np.matmul(a, b)
    if beta:
        out = out + beta * c
    return [np.asarray(out, dtype=a.dtype)]


OPS = {
    "matmul": OpDef("matmul", Kind.LINALG, _matmul_infer,
                    lambda a, p, sh: [np.asarray(np.matmul(a[0], a[1]))]),
    # alpha * (a @ b) + beta * c in one BLAS call (c broadcast to the product's shape)
    "gemm": OpDef("gemm", Kind.LINALG, _gemm_infer, _gemm_reference),
}
