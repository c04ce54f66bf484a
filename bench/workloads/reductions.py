"""W2: reductions — a row-wise logsumexp (reduce, broadcast back, reduce) and a full sum of squares."""
import numpy as np

from ..harness import Workload, default_bytes_moved

F32 = dict(rtol=1e-5, atol=1e-6)


# ---- W2a: logsumexp along axis 1 ---------------------------------------------------------------

def w2a(x):
    m = x.max(1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(1, keepdims=True))


def _w2a_numba(inputs):
    import numba
    dt = inputs[0].dtype.type

    @numba.njit(parallel=True, fastmath=False)
    def f(x):
        n, k = x.shape
        out = np.empty((n, 1), dtype=x.dtype)
        for i in numba.prange(n):
            m = x[i, 0]
            for j in range(1, k):
                if x[i, j] > m:
                    m = x[i, j]
            s = dt(0)
            for j in range(k):
                s += np.exp(x[i, j] - m)
            out[i, 0] = m + np.log(s)
        return out
    return f


def _w2a_jax(inputs):
    import jax.numpy as jnp

    def f(x):
        m = x.max(1, keepdims=True)
        return m + jnp.log(jnp.exp(x - m).sum(1, keepdims=True))
    return f


def _w2a_pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    x = pt.matrix(dtype=inputs[0].dtype)
    m = x.max(axis=1, keepdims=True)
    return pytensor.function([x], m + pt.log(pt.exp(x - m).sum(axis=1, keepdims=True)))


def _w2a_torch(inputs):
    import torch

    def f(x):
        m = x.amax(1, keepdim=True)
        return m + torch.log(torch.exp(x - m).sum(1, keepdim=True))
    return f


# ---- W2b: ((a-b)**2).sum() ---------------------------------------------------------------------

def w2b(a, b):
    return ((a - b) ** 2).sum()


def _w2b_numba(inputs):
    # A plain `s += d*d` prange reduction keeps one float32 accumulator per thread and drifts far
    # from NumPy's pairwise sum at 2**24 elements; like NumPy, sum blocks and then the partial sums.
    import numba
    dt = inputs[0].dtype.type
    block = 1024

    @numba.njit(parallel=True, fastmath=False)
    def f(a, b):
        n = a.shape[0]
        nb = (n + block - 1) // block
        part = np.empty(nb, dtype=a.dtype)
        for k in numba.prange(nb):
            s = dt(0)
            for i in range(k * block, min(n, (k + 1) * block)):
                d = a[i] - b[i]
                s += d * d
            part[k] = s
        while part.shape[0] > 1:
            m = part.shape[0]
            mb = (m + 63) // 64
            nxt = np.empty(mb, dtype=a.dtype)
            for k in range(mb):
                s = dt(0)
                for i in range(k * 64, min(m, (k + 1) * 64)):
                    s += part[i]
                nxt[k] = s
            part = nxt
        return part[0]
    return f


def _w2b_jax(inputs):
    return lambda a, b: ((a - b) ** 2).sum()


def _w2b_pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    a, b = (pt.vector(dtype=x.dtype) for x in inputs)
    return pytensor.function([a, b], ((a - b) ** 2).sum())


def _w2b_torch(inputs):
    return lambda a, b: ((a - b) ** 2).sum()


WORKLOADS = [
    Workload(name="W2a", family="reductions",
             expr="m + np.log(np.exp(x - m).sum(1, keepdims=True)), m = x.max(1, keepdims=True)",
             dtype=np.float32, shape=(4096, 4096), quick_shape=(256, 1024), n_inputs=1, reference=w2a,
             bytes_moved=default_bytes_moved,
             impls={"numba": _w2a_numba, "jax": _w2a_jax, "pytensor": _w2a_pytensor, "torch": _w2a_torch},
             notes={"numba": "(row loop: max, then sequential sum of exp)"}, **F32),
    Workload(name="W2b", family="reductions", expr="((a-b)**2).sum()", dtype=np.float32, shape=(2**24,),
             quick_shape=(2**18,), n_inputs=2, reference=w2b, bytes_moved=default_bytes_moved,
             impls={"numba": _w2b_numba, "jax": _w2b_jax, "pytensor": _w2b_pytensor, "torch": _w2b_torch},
             notes={"numba": "(blocked float32 sum: 1024-element blocks, then partials)"}, **F32),
]
