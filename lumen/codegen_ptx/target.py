"""The NVPTX target: NVVM IR text -> PTX text for one GPU architecture, with libdevice linked in.

A module's IR declares the libdevice functions it calls; `compile_ptx` links libdevice into it,
makes every function but the kernels internal (so the optimiser drops the hundreds of
libdevice functions no kernel calls and inlines the rest), optimises at -O3 and emits PTX.
"""
from __future__ import annotations

import functools

import llvmlite
import llvmlite.binding as llvm

from ..codegen_llvm.target import LLVM_LOCK
from ..errors import DeviceError
from . import libdevice

TRIPLE = "nvptx64-nvidia-cuda"
#: The architecture PTX is generated for when no GPU is present (Ampere; runs on later GPUs
#: too, the driver compiles PTX forward).
DEFAULT_ARCH = "sm_80"
#: Compute capabilities LLVM's NVPTX back end names (a newer device gets PTX for the newest
#: of these below its own, which its driver compiles forward).
KNOWN_ARCHS = (60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90)


@functools.cache
def _initialise():
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    # NVPTX fuses a*b + c into one fma by default; lumen keeps each operation IEEE-rounded
    # (as on the CPU, and as NumPy computes), so nothing is contracted unless written so
    llvm.set_option("lumen", "-nvptx-fma-level=0")
    return True


@functools.cache
def target_machine(arch: str):
    _initialise()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(cpu=arch, opt=3)


def data_layout() -> str:
    return str(target_machine(DEFAULT_ARCH).target_data)


def arch_for(compute_capability) -> str:
    """``sm_XY`` for a device's compute capability (``"90"`` or 90)."""
    cc = int(compute_capability)
    known = [a for a in KNOWN_ARCHS if a <= cc]
    if not known:
        raise DeviceError(f"GPU of compute capability {cc / 10:.1f}: lumen's GPU backend needs "
                          f"{KNOWN_ARCHS[0] / 10:.1f} or newer")
    return f"sm_{known[-1]}"


def identity(arch: str) -> dict:
    """What PTX compiled here depends on besides its IR (the kernel cache key)."""
    return {"triple": TRIPLE, "arch": arch, "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info))}


def compile_ptx(nvvm_ir: str, kernels, arch: str = DEFAULT_ARCH) -> str:
    """PTX text of the module ``nvvm_ir`` whose entry points are the functions named in
    ``kernels``, for architecture ``arch`` (``sm_80``, ``sm_90``, ...)."""
    tm = target_machine(arch)
    with LLVM_LOCK:
        module = llvm.parse_assembly(nvvm_ir)
        module.verify()
        if any(f.is_declaration and f.name.startswith("__nv_") for f in module.functions):
            lib = llvm.parse_bitcode(libdevice.bitcode())
            lib.triple, lib.data_layout = module.triple, module.data_layout
            module.link_in(lib)
        keep = set(kernels)
        for f in module.functions:
            if not f.is_declaration and f.name not in keep:
                f.linkage = llvm.Linkage.internal
        for g in module.global_variables:
            if not g.is_declaration:
                g.linkage = llvm.Linkage.internal
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(module, pb)
        return tm.emit_assembly(module)
