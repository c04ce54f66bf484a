"""A CPU stand-in for a GPU, so that the PTX backend's kernels and its launch code run -- and
are checked against NumPy -- on a machine without one.

The NVVM IR of a graph's kernels is compiled for the host instead of NVPTX: global and shared
memory become ordinary memory, libdevice's ``__nv_<f>`` the C library's ``<f>``, and the PTX
special registers, ``bar.sync`` and ``shfl.sync.down`` calls into Python. A launch runs each
block's threads as OS threads (blocks one after another), so barriers and warp shuffles behave
as on a GPU: every thread of a warp must reach a shuffle, every thread of a block a barrier, or
the emulation hangs (a barrier timeout turns that into an error). Kernels without either run
their threads one after another. Blocks are capped at
`MAX_BLOCK` threads and the grid at `MAX_GRID` blocks: the kernels must be (and are meant to be)
correct for any grid and any multiple of 32 threads, and small ones make the grid-stride
loops and the shared-memory path run.
"""
from __future__ import annotations

import ctypes
import re
import threading

import llvmlite.binding as llvm
import numpy as np

from lumen.codegen_llvm.target import LoadedModule, compile_objects

WARP, MAX_BLOCK, MAX_GRID = 32, 64, 2
_TIMEOUT = 60.0
_here = threading.local()


class _Block:
    """What the threads of one block share: its barrier and each warp's shuffle buffers."""

    def __init__(self, threads):
        self.barrier = threading.Barrier(threads, timeout=_TIMEOUT)
        warps = threads // WARP
        self.warp_barriers = [threading.Barrier(WARP, timeout=_TIMEOUT) for _ in range(warps)]
        self.buffers = [[[0] * WARP, [0] * WARP] for _ in range(warps)]


def _register(name, ctype, fn):
    callback = ctype(fn)
    _callbacks.append(callback)
    llvm.add_symbol(name, ctypes.cast(callback, ctypes.c_void_p).value)


def _shfl_down(mask, value, delta, clamp):
    """A warp's values ``delta`` lanes up; double-buffered, so one barrier per shuffle."""
    lane, warp = _here.tid % WARP, _here.tid // WARP
    phase = _here.phase = 1 - _here.phase
    buffer = _here.block.buffers[warp][phase]
    buffer[lane] = value
    _here.block.warp_barriers[warp].wait()
    return buffer[lane + delta] if lane + delta <= clamp else value


_callbacks: list = []
_SREG = {"tid.x": lambda: _here.tid, "ntid.x": lambda: _here.ntid,
         "ctaid.x": lambda: _here.ctaid, "nctaid.x": lambda: _here.nctaid}
for _name, _fn in _SREG.items():
    _register(f"emu_{_name.replace('.', '_')}", ctypes.CFUNCTYPE(ctypes.c_int32), _fn)
_register("emu_barrier", ctypes.CFUNCTYPE(None), lambda: _here.block.barrier.wait())
_register("emu_shfl_down", ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_int32] * 4), _shfl_down)


def host_ir(nvvm_ir: str) -> str:
    text = nvvm_ir.replace(" addrspace(1)", "").replace(" addrspace(3)", "")
    text = re.sub(r"llvm\.nvvm\.read\.ptx\.sreg\.(\w+)\.x", r"emu_\1_x", text)
    text = text.replace("llvm.nvvm.barrier0", "emu_barrier")
    text = text.replace("llvm.nvvm.shfl.sync.down.i32", "emu_shfl_down")
    return text.replace('@"__nv_', '@"')


def _synchronising(nvvm_ir: str) -> set:
    """Names of the kernels that use barriers or shuffles (the others' threads can run one
    after another)."""
    found, current = set(), None
    for line in nvvm_ir.splitlines():
        if line.startswith("define "):
            current = re.search(r'@"([^"]+)"', line).group(1)
        elif current and ("llvm.nvvm.barrier0" in line or "llvm.nvvm.shfl" in line):
            found.add(current)
    return found


class EmulatedModule:
    """The kernels of one NVVM module, compiled for the host; ``get_function(name)`` gives a
    callable launched as a CuPy RawKernel is: ``f(grid, block, args)``."""

    def __init__(self, nvvm_ir: str):
        self.loaded = LoadedModule(compile_objects(host_ir(nvvm_ir)))
        self.synchronising = _synchronising(nvvm_ir)

    def get_function(self, name):
        return _EmulatedKernel(self, self.loaded.address(name), name in self.synchronising)


class _EmulatedKernel:
    def __init__(self, module, address, synchronising):
        self.module, self.address = module, address      # the module keeps the code loaded
        self.synchronising = synchronising

    def __call__(self, grid, block, args):
        (n_blocks,), (threads,) = grid, block
        assert threads % WARP == 0 and 0 < threads <= 1024 and n_blocks > 0
        threads, n_blocks = min(threads, MAX_BLOCK), min(n_blocks, MAX_GRID)
        types = [ctypes.c_void_p if isinstance(a, np.ndarray) else ctypes.c_int64 for a in args]
        values = [a.ctypes.data if isinstance(a, np.ndarray) else int(a) for a in args]
        function = ctypes.CFUNCTYPE(None, *types)(self.address)
        for ctaid in range(n_blocks):
            self._run_block(function, values, ctaid, n_blocks, threads)

    def _run_block(self, function, values, ctaid, n_blocks, threads):
        block, errors = _Block(threads), []

        def thread(tid):
            _here.tid, _here.ntid, _here.ctaid, _here.nctaid = tid, threads, ctaid, n_blocks
            _here.block, _here.phase = block, 0
            try:
                function(*values)
            except Exception as e:  # noqa: BLE001 - reported by the launching thread
                errors.append(e)
        if not self.synchronising:
            for t in range(threads):
                thread(t)
            return
        workers = [threading.Thread(target=thread, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors, errors
