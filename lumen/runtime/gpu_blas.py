"""Matrix products on the GPU through cuBLAS, called by lumen itself.

CuPy refuses any cuBLAS call while a stream is being captured into a CUDA graph, which the
executor does to replay a whole call (`gpu_replay`); cuBLAS itself records its kernels into the
graph like any other launch. So the executor binds ``cublasSgemm_v2`` / ``cublasDgemm_v2`` of
the library CuPy loaded (ctypes) and calls them on the current stream, captured or not, with
CuPy's handle for the thread. Products other than float32 / float64 matrices (and vectors)
are CuPy's ``matmul``.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

#: cuBLAS's operations on an operand and its host pointer mode.
OP_N, OP_T, POINTER_HOST = 0, 1, 0
_GEMM = {np.dtype(np.float32): ("cublasSgemm_v2", ctypes.c_float),
         np.dtype(np.float64): ("cublasDgemm_v2", ctypes.c_double)}
_INT_MAX = 2**31 - 1


def library_path() -> str | None:
    """The file of the cuBLAS library loaded in this process (Linux's memory map), or None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if path.rsplit("/", 1)[-1].startswith("libcublas.so"):
                    return path
    except OSError:
        pass
    return None


def operand(cp, x):
    """(cuBLAS operation, leading dimension, array) reading ``x`` (r x c) as the column-major
    c x r matrix that the swapped product C^T = B^T A^T takes: in place where ``x`` is row- or
    column-major with a positive leading stride that cuBLAS's int holds, else a C-contiguous
    copy."""
    r, c = x.shape
    size = x.itemsize
    s0, s1 = x.strides
    if (c == 1 or s1 == size) and (r == 1 or (s0 > 0 and s0 % size == 0 and s0 // size >= c)):
        op, ld = OP_N, max(c, s0 // size if r > 1 else c, 1)
    elif (r == 1 or s0 == size) and (c == 1 or (s1 > 0 and s1 % size == 0 and s1 // size >= r)):
        op, ld = OP_T, max(r, s1 // size if c > 1 else r, 1)
    else:
        op, ld = OP_N, 0
    if ld and ld <= _INT_MAX:
        return op, ld, x
    return OP_N, max(c, 1), cp.ascontiguousarray(x)


class Blas:
    """``blas(a, b)`` -> ``a @ b`` on the current stream (float32 / float64 by cuBLAS)."""

    def __init__(self, cp):
        self.cp = cp
        cp.cuda.device.get_cublas_handle()          # CuPy loads cuBLAS with its first handle
        path = library_path()
        self.lib = ctypes.CDLL(path) if path else None
        if self.lib is not None:
            self.lib.cublasSetStream_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            self.lib.cublasSetPointerMode_v2.argtypes = [ctypes.c_void_p, ctypes.c_int]
            for name, _ in _GEMM.values():
                # handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc
                p, i = ctypes.c_void_p, ctypes.c_int
                getattr(self.lib, name).argtypes = [p, i, i, i, i, i, p, p, i, p, i, p, p, i]
        self.local = threading.local()

    def handle(self) -> int:
        """This thread's cuBLAS handle on the current device (CuPy's, looked up once: CuPy
        refuses to hand it out during a capture)."""
        handles = self.local.__dict__.setdefault("handles", {})
        device = self.cp.cuda.Device().id
        h = handles.get(device)
        if h is None:
            h = handles[device] = self.cp.cuda.device.get_cublas_handle()
        return h

    def __call__(self, a, b):
        cp = self.cp
        if (self.lib is None or a.dtype != b.dtype or a.dtype not in _GEMM
                or not 1 <= a.ndim <= 2 or not 1 <= b.ndim <= 2):
            return cp.matmul(a, b)
        shape = a.shape[:-1] + b.shape[1:]
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        (m, k), n = a2.shape, b2.shape[1]
        if max(m, n, k) > _INT_MAX:
            return cp.matmul(a, b)
        out = cp.empty((m, n), a.dtype)
        if k == 0:
            out.fill(0)
        elif out.size:
            self._gemm(a2, b2, out)
        return out.reshape(shape)

    def _gemm(self, a, b, out):
        (m, k), n = a.shape, b.shape[1]
        op_a, lda, a = operand(self.cp, a)
        op_b, ldb, b = operand(self.cp, b)
        name, scalar = _GEMM[a.dtype]
        one, zero = scalar(1), scalar(0)
        handle = self.handle()
        lib = self.lib
        _check(lib.cublasSetStream_v2(handle, self.cp.cuda.get_current_stream().ptr), "SetStream")
        _check(lib.cublasSetPointerMode_v2(handle, POINTER_HOST), "SetPointerMode")
        _check(getattr(lib, name)(handle, op_b, op_a, n, m, k, ctypes.byref(one), b.data.ptr,
                                  ldb, a.data.ptr, lda, ctypes.byref(zero), out.data.ptr, n),
               name)


def _check(status, what):
    if status:
        raise RuntimeError(f"cuBLAS {what} failed (status {status})")
