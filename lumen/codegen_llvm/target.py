"""The host target: llvmlite initialisation, the target machine (host CPU name and features,
-O3), optimisation and loading of modules into an MCJIT engine."""
from __future__ import annotations

import functools
import threading

import llvmlite.binding as llvm

_lock = threading.Lock()


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


def optimise(llvm_ir: str):
    """Parse, verify and optimise a module at -O3 -> `llvmlite.binding.ModuleRef`."""
    tm = target_machine()
    with _lock:
        module = llvm.parse_assembly(llvm_ir)
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        module.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(module, pb)
    return module


class LoadedModule:
    """Machine code in memory; keeps its engine alive as long as the functions are used."""

    def __init__(self, module):
        with _lock:
            self.engine = llvm.create_mcjit_compiler(module, _new_target_machine())
            self.engine.finalize_object()
        self.module = module

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)


def assembly(module) -> str:
    return target_machine().emit_assembly(module)
