"""G: W1 on the GPU (`lumen.jit(..., device="gpu")`) in GB/s, next to CuPy's own fused
elementwise kernel (`cupy.ElementwiseKernel`) and the device's copy bandwidth (a CuPy array
copy, G0). Inputs live on the device; every call is waited for (`harness.GpuAdapter`). On a
machine without a GPU the lumen rows say "no GPU" (cupy's "not installed" without CuPy);
NumPy's row is the CPU baseline."""
import numpy as np

from ..harness import Workload, default_bytes_moved
from .elementwise import F32, F64, N, N_QUICK, w1a, w1b

# scalar C code of each expression for cupy.ElementwiseKernel (T: the inputs' type)
_W1A_C = "out = a * b + c"
_W1B_C = "out = tanh(a) * b + exp(-c * c)"


def _lumen(reference):
    def build(inputs):
        import lumen
        return lumen.jit(reference, device="gpu")
    return build


def _cupy_kernel(body, name):
    def build(inputs):
        import cupy
        return cupy.ElementwiseKernel("T a, T b, T c", "T out", body, name)
    return build


def copy(x):
    return x.copy()


def _cupy_copy(inputs):
    return lambda x: x.copy()


_NOTE = {"cupy": "cupy.ElementwiseKernel (one fused kernel)"}

WORKLOADS = [
    Workload(name="G0.copy", family="gpu", expr="x.copy()", dtype=np.float32, shape=(N,),
             quick_shape=(N_QUICK,), n_inputs=1, reference=copy, bytes_moved=default_bytes_moved,
             impls={"lumen": _lumen(copy), "cupy": _cupy_copy},
             notes={"cupy": "ndarray.copy: the device's copy bandwidth"}, device="gpu", **F32),
    Workload(name="G1a", family="gpu", expr="a*b + c", dtype=np.float32, shape=(N,),
             quick_shape=(N_QUICK,), n_inputs=3, reference=w1a, bytes_moved=default_bytes_moved,
             impls={"lumen": _lumen(w1a), "cupy": _cupy_kernel(_W1A_C, "w1a")}, notes=_NOTE,
             device="gpu", **F32),
]
for _dt, _tol in ((np.float32, F32), (np.float64, F64)):
    WORKLOADS.append(
        Workload(name=f"G1b.f{np.dtype(_dt).itemsize * 8}", family="gpu",
                 expr="np.tanh(a)*b + np.exp(-c*c)", dtype=_dt, shape=(N,), quick_shape=(N_QUICK,),
                 n_inputs=3, reference=w1b, bytes_moved=default_bytes_moved,
                 impls={"lumen": _lumen(w1b), "cupy": _cupy_kernel(_W1B_C, "w1b")}, notes=_NOTE,
                 device="gpu", **_tol))
