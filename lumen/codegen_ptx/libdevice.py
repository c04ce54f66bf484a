"""libdevice: NVIDIA's math library as LLVM bitcode (``__nv_expf``, ``__nv_log1p``, ...), the
GPU's libm. Where it is found, and which math functions the scalar lowering takes from it.

The scalar lowering (`codegen_llvm.lower.scalar`) asks its context for ``math_functions``: the
CPU answers with the inline, vectorisable `mathlib` versions and plain libm calls; the GPU
context answers with `FUNCTIONS`, which call libdevice. Every libm function and every LLVM
math intrinsic the scalar rules use that the NVPTX back end cannot select (llvm.sin, llvm.pow,
llvm.exp, ... abort LLVM there) is in that table; the intrinsics NVPTX implements itself
(fabs, sqrt, floor, copysign, maximum, ...) stay intrinsics.
"""
from __future__ import annotations

import functools
import glob
import math
import os
import site
import sys

import llvmlite.ir as ir

from ..errors import DeviceError

_FILE = "libdevice.10.bc"

#: libm / LLVM intrinsic name -> libdevice base name (``__nv_<base>`` for float64,
#: ``__nv_<base>f`` for float32), by arity.
_UNARY = ("cbrt", "expm1", "log1p", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
          "asinh", "acosh", "atanh", "erf", "erfc", "lgamma", "exp", "exp2", "log", "log2",
          "log10", "sin", "cos")
#: fmod stands for LLVM's frem too: NVPTX expands frem to x - y*trunc(x/y), which is not
#: exact once the quotient is large, where NumPy's fmod is.
_BINARY = ("atan2", "hypot", "pow", "fmod")


def _call(base):
    def emit(ctx, *args):
        ty = args[0].type
        name = f"__nv_{base}{'f' if ty == ir.FloatType() else ''}"
        return ctx.builder.call(ctx.function(name, ty, [ty] * len(args)), list(args))
    return emit


def _hypot(ctx, x, y):
    """float64 hypot as max * sqrt(1 + (min/max)**2): libdevice's ``__nv_hypot`` rounds up to
    inf just below the largest double, where NumPy's result is finite. float32 keeps
    ``__nv_hypotf``, whose results match NumPy's across the edge values."""
    if x.type == ir.FloatType():
        return _call("hypot")(ctx, x, y)
    b = ctx.builder
    ax, ay = (b.call(ctx.intrinsic("llvm.fabs", x.type), [v]) for v in (x, y))
    big = b.call(ctx.intrinsic("llvm.maxnum", x.type, 2), [ax, ay])
    small = b.call(ctx.intrinsic("llvm.minnum", x.type, 2), [ax, ay])
    one, inf = ir.Constant(x.type, 1.0), ir.Constant(x.type, math.inf)
    r = b.fdiv(small, big)
    t = b.fmul(big, b.call(ctx.intrinsic("llvm.sqrt", x.type), [
        b.call(ctx.intrinsic("llvm.fma", x.type, 3), [r, r, one])]))
    t = b.select(b.fcmp_ordered("==", big, ir.Constant(x.type, 0.0)), big, t)
    t = b.select(b.fcmp_unordered("uno", x, y), ir.Constant(x.type, math.nan), t)
    return b.select(b.fcmp_ordered("==", big, inf), inf, t)   # inf beats nan, as in C99


FUNCTIONS = {name: _call(name) for name in _UNARY + _BINARY}
FUNCTIONS["hypot"] = _hypot


def search_paths() -> list[str]:
    """Folders that may hold libdevice, in the order they are tried: ``$CUDA_HOME`` (and
    ``$CUDA_PATH``), the CUDA toolkits under /usr/local, then the NVIDIA pip packages
    (``nvidia/cuda_nvcc``) in every site-packages folder."""
    roots = [os.environ[v] for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    roots += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    folders = [os.path.join(r, "nvvm", "libdevice") for r in roots]
    packages = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
    folders += [os.path.join(p, "nvidia", "cuda_nvcc", "nvvm", "libdevice") for p in packages]
    return list(dict.fromkeys(folders))


@functools.cache
def path() -> str:
    """The libdevice bitcode file; `DeviceError` when there is none."""
    folders = search_paths()
    for folder in folders:
        candidate = os.path.join(folder, _FILE)
        if os.path.isfile(candidate):
            return candidate
    raise DeviceError(f"lumen's GPU backend needs NVIDIA's libdevice ({_FILE}) for math "
                      f"functions and found none; looked in: {', '.join(folders[:4])}, ... "
                      "Install the CUDA toolkit or the nvidia-cuda-nvcc pip package, or set "
                      "CUDA_HOME to the toolkit's root.")


@functools.cache
def bitcode() -> bytes:
    with open(path(), "rb") as f:
        return f.read()
