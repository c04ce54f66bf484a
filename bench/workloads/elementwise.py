"""W1: elementwise expressions over long 1-D arrays (memory-bound; fusion avoids temporaries)."""
import numpy as np

from ..harness import Workload, default_bytes_moved

N, N_QUICK = 2**24, 2**18

# tolerances: float32 1e-5 (SPEC §1); atol covers an FMA-contracted a*b+c near cancellation
F32 = dict(rtol=1e-5, atol=1e-5)
F64 = dict(rtol=1e-10, atol=1e-12)   # transcendental float64 (SPEC §1)


# ---- W1a: a*b + c ------------------------------------------------------------------------------

def w1a(a, b, c):
    return a * b + c


def _w1a_numba(inputs):
    import numba

    @numba.njit(parallel=True, fastmath=False)
    def f(a, b, c):
        out = np.empty_like(a)
        for i in numba.prange(a.shape[0]):
            out[i] = a[i] * b[i] + c[i]
        return out
    return f


def _w1a_jax(inputs):
    return lambda a, b, c: a * b + c


def _w1a_pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    a, b, c = (pt.vector(dtype=x.dtype) for x in inputs)
    return pytensor.function([a, b, c], a * b + c)


def _w1a_torch(inputs):
    return lambda a, b, c: a * b + c


# ---- W1b: tanh(a)*b + exp(-c*c) ----------------------------------------------------------------

def w1b(a, b, c):
    return np.tanh(a) * b + np.exp(-c * c)


def _w1b_numba(inputs):
    import numba

    @numba.njit(parallel=True, fastmath=False)
    def f(a, b, c):
        out = np.empty_like(a)
        for i in numba.prange(a.shape[0]):
            out[i] = np.tanh(a[i]) * b[i] + np.exp(-c[i] * c[i])
        return out
    return f


def _w1b_jax(inputs):
    import jax.numpy as jnp
    return lambda a, b, c: jnp.tanh(a) * b + jnp.exp(-c * c)


def _w1b_pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    a, b, c = (pt.vector(dtype=x.dtype) for x in inputs)
    return pytensor.function([a, b, c], pt.tanh(a) * b + pt.exp(-c * c))


def _w1b_torch(inputs):
    import torch
    return lambda a, b, c: torch.tanh(a) * b + torch.exp(-c * c)


WORKLOADS = [
    Workload(name="W1a", family="elementwise", expr="a*b + c", dtype=np.float32, shape=(N,),
             quick_shape=(N_QUICK,), n_inputs=3, reference=w1a, bytes_moved=default_bytes_moved,
             impls={"numba": _w1a_numba, "jax": _w1a_jax, "pytensor": _w1a_pytensor, "torch": _w1a_torch},
             **F32),
]
for _dt, _tol in ((np.float32, F32), (np.float64, F64)):
    WORKLOADS.append(
        Workload(name=f"W1b.f{np.dtype(_dt).itemsize * 8}", family="elementwise",
                 expr="np.tanh(a)*b + np.exp(-c*c)", dtype=_dt, shape=(N,), quick_shape=(N_QUICK,),
                 n_inputs=3, reference=w1b, bytes_moved=default_bytes_moved,
                 impls={"numba": _w1b_numba, "jax": _w1b_jax, "pytensor": _w1b_pytensor, "torch": _w1b_torch},
                 **_tol))
