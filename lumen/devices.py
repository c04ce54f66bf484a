"""Which devices this process can run on (SPEC §5).

CuPy is imported only when a GPU is asked about (`gpu`, `devices`), never by ``import lumen``.
"""
from __future__ import annotations

import functools

from .errors import DeviceError

KNOWN = ("cpu", "gpu")


def devices() -> list[str]:
    """The available devices: always ``"cpu"``; ``"gpu"`` when CuPy is installed and sees a
    CUDA GPU."""
    return ["cpu"] + (["gpu"] if _gpu_problem() is None else [])


def require(device: str) -> None:
    """Check a ``device=`` option's value. A GPU need not be present to compile for one
    (PTX can be generated anywhere); running there needs `gpu`."""
    if device not in KNOWN:
        raise DeviceError(f"unknown device {device!r}; lumen knows {list(KNOWN)}, and "
                          f"this process can run on {devices()}")


def gpu():
    """The ``cupy`` module, once a CUDA GPU is known to be usable; `DeviceError` saying why
    not otherwise."""
    problem = _gpu_problem()
    if problem is not None:
        raise DeviceError(f"device='gpu': {problem}; use device='cpu', or inspect PTX without "
                          "a GPU with f.lower(*args).ptx()")
    import cupy
    return cupy


def gpu_arch() -> str | None:
    """The current GPU's architecture as PTX names it (``sm_90``), or None without a GPU."""
    if _gpu_problem() is not None:
        return None
    import cupy
    from .codegen_ptx.target import arch_for
    return arch_for(cupy.cuda.Device().compute_capability)


@functools.cache
def _gpu_problem() -> str | None:
    """Why the GPU cannot be used (None when it can)."""
    try:
        import cupy
    except ImportError:
        return ("CuPy is not installed (lumen launches GPU kernels through CuPy: pip install "
                "cupy-cuda12x, or the package for your CUDA version)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - CUDA's own errors (no driver, no device) vary
        return f"CUDA reports no usable GPU ({type(e).__name__}: {e})"
    if count == 0:
        return "CUDA sees no GPU"
    return None
