"""The host target: llvmlite initialisation, the target machine (host CPU name and features,
-O2 plus vectorisers), optimisation, object code, and loading object code into an MCJIT engine.

Every compiled program goes through object code (`compile_object`) and is loaded from it
(`LoadedModule`), whether it was just compiled or read back from the disk cache: one path, and
the bytes cached are exactly the bytes that ran."""
from __future__ import annotations

import functools
import threading

import llvmlite
import llvmlite.binding as llvm

#: One lock for LLVM's global context: CPU and GPU (codegen_ptx) compiles alike.
LLVM_LOCK = threading.Lock()


@functools.cache
def _initialise():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    from .symbols import register_symbols
    register_symbols()
    return True


def _new_target_machine():
    _initialise()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, reloc="pic", codemodel="jitdefault")


@functools.cache
def target_machine():
    """The shared host target machine (for optimising and emitting; never given to an engine,
    which takes ownership of the one it gets)."""
    return _new_target_machine()


def triple() -> str:
    return llvm.get_process_triple()


@functools.cache
def identity() -> dict:
    """What object code compiled here depends on besides its IR: the target triple, the host
    CPU's name and features, the llvmlite / LLVM versions and the BLAS the code calls, whose
    integer width its calls are compiled for (part of the disk cache key)."""
    from .symbols import blas
    return {"triple": triple(), "cpu": llvm.get_host_cpu_name(), "blas": blas().source,
            "features": llvm.get_host_cpu_features().flatten(), "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info))}


def optimise(llvm_ir: str):
    """Parse, verify and optimise a module -> `llvmlite.binding.ModuleRef`."""
    tm = target_machine()
    with LLVM_LOCK:
        module = llvm.parse_assembly(llvm_ir)
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        module.verify()
        # -O2 with the vectorisers and interleaving but no unrolling: the kernels run as fast
        # as at -O3 (they unroll themselves where it pays: blocked reductions), and compiling
        # takes a fifth less (measured on the MLP and LSTM-CRF training steps)
        pto = llvm.create_pipeline_tuning_options(speed_level=2)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_interleaving = True
        pto.loop_unrolling = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(module, pb)
    return module


def compile_object(llvm_ir: str) -> bytes:
    """Optimise a module and emit its relocatable object code for the host."""
    module = optimise(llvm_ir)
    with LLVM_LOCK:
        return target_machine().emit_object(module)


class LoadedModule:
    """Object code linked into memory (external names resolve through `symbols`); keeps its
    engine alive as long as the functions are used."""

    def __init__(self, object_code: bytes):
        with LLVM_LOCK:
            self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _new_target_machine())
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
            self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def global_address(self, name: str) -> int:
        """The address of global variable ``name``; 0 where the module defines none."""
        return self.engine.get_global_value_address(name)


def assembly(module) -> str:
    return target_machine().emit_assembly(module)
