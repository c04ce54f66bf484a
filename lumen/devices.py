"""Which devices this process can run on (SPEC §5)."""
from __future__ import annotations

from .errors import DeviceError


def devices() -> list[str]:
    """The available devices: always ``"cpu"``; ``"gpu"`` once the GPU backend can run here."""
    return ["cpu"]


def require(device: str) -> None:
    if device == "cpu":
        return
    if device == "gpu":
        raise DeviceError("device='gpu': lumen's GPU backend is not available in this build "
                          "(it needs the codegen_ptx backend, CuPy and a CUDA GPU); use "
                          "device='cpu'")
    raise DeviceError(f"unknown device {device!r}; available: {devices()}")
