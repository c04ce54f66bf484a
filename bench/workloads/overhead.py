"""W6: per-call overhead — ``x + y`` on two 4-element float64 arrays, where the arithmetic is
nothing and the time is what a call costs: checking the arguments, finding the compiled code,
allocating the result. The time column is in ms like every workload's (0.0003 ms = 0.3 µs).

numba runs plain ``njit`` here (a parallel loop would add its thread pool's start to every
call); pytensor's function is called with ``trust_input`` (its documented way to skip the
Python-side input checks), the fastest call each offers."""
import numpy as np

from ..harness import Workload

SHAPE = (4,)


def add(x, y):
    return x + y


def _numba(inputs):
    import numba
    return numba.njit(add)


def _jax(inputs):
    return add


def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt
    x, y = (pt.vector(dtype=a.dtype) for a in inputs)
    f = pytensor.function([x, y], x + y)
    f.trust_input = True
    return f


def _torch(inputs):
    return add


WORKLOADS = [
    Workload(name="W6", family="overhead", expr="x + y", dtype=np.float64, shape=SHAPE,
             quick_shape=SHAPE, n_inputs=2, reference=add, rtol=1e-12, atol=0.0,
             impls={"numba": _numba, "jax": _jax, "pytensor": _pytensor, "torch": _torch},
             notes={"numba": "(W6: plain njit(), no prange)", "pytensor": "trust_input=True"}),
]
