"""The host target: llvmlite initialisation, the target machine (host CPU name and features),
optimisation (-O2 plus vectorisers for loops, a short pipeline for glue and for loops that
follow indices), code generation (the glue at LLVM's fast level), object code, and loading
object code into an MCJIT engine.

Every compiled program goes through object code (`compile_objects`: one object per part of the
module, compiled at once) and is loaded from it (`LoadedModule`), whether it was just compiled
or read back from the disk cache: one path, and the bytes cached are exactly the bytes that ran."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import llvmlite
import llvmlite.binding as llvm
from llvmlite.binding import ffi

from .module_split import split

#: One lock for LLVM's global context: CPU and GPU (codegen_ptx) compiles alike.
LLVM_LOCK = threading.Lock()


@functools.cache
def _initialise():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


_runtime_lock = threading.Lock()
_runtime_linked = False


def link_runtime():
    """Register the names generated code calls (`symbols.register_symbols`: the C-API, BLAS,
    OpenMP and lumen's runtime support), once per process, before the first program is
    linked; compiling needs none of them. Any thread may call it: a second caller waits for
    the first (`compile.compile_graph` starts it on a thread of its own while a program
    compiles)."""
    global _runtime_linked
    with _runtime_lock:
        if not _runtime_linked:
            from .symbols import register_symbols
            register_symbols()
            _runtime_linked = True


def runtime_linked() -> bool:
    return _runtime_linked


#: LLVM's code generation level per optimisation pipeline (`_pipeline`). The glue is calls and
#: branches, already optimised: LLVM's fast instruction selector and register allocator
#: compile it in a third of the time (the MLP training step's glue: 17 ms against 50 ms), and
#: calls ran as fast (``x + y`` on 4 elements, the LSTM-CRF training step's 50 scan steps).
#: Loops, and runtime support emitted without passes (pipeline None), get the full level.
CODEGEN_LEVEL = {"glue": 0, "plain": 3, "loops": 3, None: 3}


def _new_target_machine(opt=3):
    """``opt``: the code generation level (`CODEGEN_LEVEL`). Static relocations (absolute
    addresses the loader fills in): position-independent code
    of the large code model reaches its constants through GOT-relative offsets, which
    RuntimeDyld computes against the first loaded object's GOT, so every later part of a
    program (`compile_objects`) read its constants from the wrong place."""
    _initialise()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=host_cpu(), features=host_features(),
                                        opt=opt, reloc="static", codemodel="jitdefault")


@functools.cache
def host_cpu() -> str:
    """The host CPU's LLVM name ("znver5", "skylake-avx512", ...)."""
    return llvm.get_host_cpu_name()


@functools.cache
def host_features() -> str:
    """The host CPU's features, as LLVM's flattened string ("+avx2,+avx512f,...")."""
    return llvm.get_host_cpu_features().flatten()


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
    return {"triple": triple(), "cpu": host_cpu(), "blas": blas().source,
            "features": host_features(), "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info))}


@functools.cache
def lumen_build() -> str:
    """sha256 over the path and text of every source file of the lumen package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:     # the relative path; relpath() costs ~0.3 ms here
                    h.update(path[len(root) + 1:].encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def code_key(what: dict) -> str:
    """Hex sha256 disk cache key of the code ``what`` (JSON values) describes, compiled by this
    lumen (`lumen_build`) for this target (`identity`)."""
    parts = dict(what, lumen=lumen_build(), target=identity())
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _pipeline(tm, kind):
    """-> (pass builder, module pass manager) of optimisation pipeline ``kind``.

    "loops": -O2 with the vectorisers and interleaving but no unrolling: the kernels run as fast
    as at -O3 (they unroll themselves where it pays: blocked reductions), and compiling takes a
    fifth less (measured on the MLP and LSTM-CRF training steps). "glue" (a program's entry,
    whose loops are elsewhere: `module_split`): promoting the stack slots to registers,
    combining, simplifying the branches and numbering the values is what pays there; -O2
    spent 0.09 s of the MLP training step's cold start on it against 0.02 s, and its object
    code was 6 % larger. "plain" (loops that follow indices: gathers, scatters, iota) takes the
    same passes: the vectorisers found nothing to widen there (the MLP training step's three:
    46 ms under -O2, 17 ms so)."""
    if kind in ("glue", "plain"):
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=0))
        mpm = llvm.create_new_module_pass_manager()
        for add in (mpm.add_sroa_pass, mpm.add_instruction_combine_pass,
                    mpm.add_simplify_cfg_pass, mpm.add_new_gvn_pass,
                    mpm.add_dead_code_elimination_pass):
            add()
        return pb, mpm
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_interleaving = True
    pto.loop_unrolling = False
    pb = llvm.create_pass_builder(tm, pto)
    return pb, pb.getModulePassManager()


def _optimised(llvm_ir: str, tm, context, lib, pipeline):
    """Parse, verify and optimise (with `_pipeline` ``pipeline``, if not None) a module for
    ``tm`` in ``context``, calling LLVM through ``lib`` (`_unlocked_library` or llvmlite's
    locked one) -> `ModuleRef`."""
    with ffi.OutputString() as error:
        module = llvm.ModuleRef(lib.LLVMPY_ParseAssembly(
            context, ctypes.c_char_p(llvm_ir.encode()), error), context)
        if error:
            module.close()
            raise RuntimeError(f"LLVM IR parsing error\n{error}")
    try:
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        with ffi.OutputString() as error:
            if lib.LLVMPY_VerifyModule(module, error):
                raise RuntimeError(str(error))
        if pipeline is not None:
            pb, mpm = _pipeline(tm, pipeline)
            lib.LLVMPY_RunNewModulePassManager(mpm, module, pb)
    except BaseException:
        module.close()
        raise
    return module


def optimise(llvm_ir: str) -> list:
    """Each part of a module (`module_split.split`), parsed, verified and optimised in LLVM's
    global context as `compile_objects` optimises it -> (`ModuleRef`, pipeline) per part (for
    reading the optimised IR and assembly; `compile_objects` compiles)."""
    with LLVM_LOCK:
        return [(_optimised(part.text, target_machine(), llvm.get_global_context(), ffi.lib,
                            part.pipeline), part.pipeline) for part in split(llvm_ir)]


def compile_objects(llvm_ir: str, passes=True) -> list[bytes]:
    """Optimise a module and emit its relocatable object code for the host: one object per
    part of `module_split.split`, the parts compiled at once on as many cores as this process
    may use (a program's compile time is mostly LLVM's, which runs per part). Without
    ``passes``, the IR is emitted as written (code generation still optimises)."""
    _initialise()
    parts = split(llvm_ir)
    workers = min(len(parts), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
    pipelines = [part.pipeline if passes else None for part in parts]
    if workers == 1:
        return [_compile_part(part.text, pipeline) for part, pipeline in zip(parts, pipelines)]
    with ThreadPoolExecutor(workers, thread_name_prefix="lumen-compile") as pool:
        futures = {i: pool.submit(_compile_part, parts[i].text, pipelines[i])  # longest first
                   for i in sorted(range(len(parts)), key=lambda i: -parts[i].work)}
        return [futures[i].result() for i in range(len(parts))]


def _unlocked_library():
    """llvmlite's library without its lock where llvmlite exposes it, else with it."""
    try:
        return ffi.lib._lib
    except AttributeError:
        return ffi.lib


def _compile_part(llvm_ir: str, pipeline) -> bytes:
    """One module to object code (``pipeline``: `_optimised`'s), in an LLVM context, target
    machine and pass builder of its own, so that several run at once.

    llvmlite holds one process-wide lock around every call into LLVM, because its modules share
    LLVM's global context. Nothing here is shared with another thread (distinct contexts may be
    used concurrently: LLVM's rule), so the long calls (parse, verify, optimise, emit) go to
    llvmlite's library directly, and ctypes releases the GIL while they run; the short ones
    (creating and disposing of the objects) still take the lock."""
    lib = _unlocked_library()
    tm = _new_target_machine(CODEGEN_LEVEL[pipeline])
    context = llvm.create_context()
    try:
        module = _optimised(llvm_ir, tm, context, lib, pipeline)
        try:
            with ffi.OutputString() as error:
                buffer = lib.LLVMPY_TargetMachineEmitToMemory(tm, module, 1, error)
                if not buffer:
                    raise RuntimeError(str(error))
            try:
                return ctypes.string_at(lib.LLVMPY_GetBufferStart(buffer),
                                        lib.LLVMPY_GetBufferSize(buffer))
            finally:
                lib.LLVMPY_DisposeMemoryBuffer(buffer)
        finally:
            module.close()
    finally:
        context.close()


def disk_cache_info(name: str) -> dict:
    """What a disk cache entry of code compiled here records besides the code (for
    ``python -m lumen cache info``)."""
    from .. import __version__
    target = identity()
    return dict(name=name, lumen=__version__,
                **{k: target[k] for k in ("triple", "cpu", "llvm", "llvmlite")})


class LoadedModule:
    """Object code (a program's parts) linked into memory: external names resolve through
    `symbols` and each other; keeps its engine alive as long as the functions are used.
    ``runtime``: lumen's own support code, which `symbols` links while registering names."""

    def __init__(self, objects, runtime=False):
        if not runtime:
            link_runtime()
            from .symbols import link_small_products
            link_small_products(objects)
        with LLVM_LOCK:
            self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _new_target_machine())
            for object_code in objects:
                self.engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
            self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def global_address(self, name: str) -> int:
        """The address of global variable ``name``; 0 where the module defines none."""
        return self.engine.get_global_value_address(name)


def assembly(parts) -> str:
    """The machine code of `optimise`'s parts, each generated at its level as it runs."""
    return "".join(_new_target_machine(CODEGEN_LEVEL[pipeline]).emit_assembly(module)
                   for module, pipeline in parts)
