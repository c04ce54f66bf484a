"""G: W1 on the GPU (`lumen.jit(..., device="gpu")`) in GB/s, next to CuPy's own fused
elementwise kernel (`cupy.ElementwiseKernel`) and the device's copy bandwidth (a CuPy array
copy, G0); G3, W3's MLP training step on the GPU, next to the hand-written NumPy step run by
CuPy (cuBLAS products, one CuPy kernel per NumPy operation). Inputs live on the device; every
call is waited for (`harness.GpuAdapter`). On a machine without a GPU the lumen rows say
"no GPU" (cupy's "not installed" without CuPy); NumPy's row is the CPU baseline."""
import numpy as np

from ..harness import Workload, default_bytes_moved
from . import mlp
from .elementwise import F32, F64, N_QUICK, w1a, w1b

#: elements per array: 8 times W1's 2**24. At 2**24 a call on an H200 is ~30 us of memory
#: traffic and ~60 us of launch and synchronisation, so GB/s would measure the latency
N = 2**27

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


def _lumen_mlp(inputs):
    import lumen
    return lumen.jit(mlp.lumen_step, device="gpu")


def _cupy_mlp(inputs):
    import cupy
    return lambda x, y, *params: mlp.numpy_step(x, y, *params, xp=cupy)


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
WORKLOADS += [
    mlp.MlpWorkload(
        name=w.name.replace("W3.", "G3."), family="gpu", expr=w.expr, dtype=w.dtype, shape=w.shape,
        quick_shape=w.quick_shape, n_inputs=w.n_inputs, reference=w.reference,
        make_inputs=w.make_inputs, impls={"lumen": _lumen_mlp, "cupy": _cupy_mlp},
        notes={"numpy": mlp.NOTES["numpy"], "lumen": mlp.NOTES["lumen"],
               "cupy": "(NumPy's hand-written backprop run by CuPy)"},
        device="gpu", rtol=w.rtol, atol=w.atol, chain_from=w.chain_from)
    for w in mlp.WORKLOADS]
