"""The GPU executor (``device="gpu"``, SPEC §5): the optimised graph run on CuPy arrays.

The graph's kernels are one PTX module (`codegen_ptx`), loaded once per GPU architecture into
a ``cupy.RawModule`` (the memory cache below is keyed by the module's NVVM IR and the
architecture). A call walks the optimised graph on the host: NumPy arguments are copied to the
device, CuPy arguments are used in place, each kernel node is one launch of its entry point,
every other node is done by CuPy (`gpu_ops`: views, indexing, control flow as host loops over
the bodies' launches) or by cuBLAS (`gpu_blas`). Launches are asynchronous: the call returns
CuPy arrays without waiting for the GPU, except where a value must be read back (`gpu_ops`) or
a kernel that can fail (a negative integer power) ran -- its error word is read at the end of
the call. From the second call with the same argument shapes, the walk is replaced by a CUDA
graph of it where that pays (`gpu_replay`).

Like the CPU's native code, the call returns NotImplemented, having done nothing, for
arguments of another signature than the one it was compiled for (dtype, ndim, length-1 axes;
any memory layout is read in place).
"""
from __future__ import annotations

import atexit
import builtins
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading

import numpy as np

from ..codegen_ptx.program import kernel_nodes, nvvm_module
from ..codegen_ptx.target import compile_ptx, identity
from ..devices import gpu, gpu_arch
from ..errors import UnsupportedError
from ..ir.ops import nested_nodes
from . import gpu_ops
from .gpu_blas import Blas
from .gpu_launch import launch
from .gpu_replay import Replays, reads_on_host

_modules: dict = {}
_lock = threading.Lock()


@functools.cache
def _ptx_folder() -> str:
    """Where this process writes its PTX for ``cupy.RawModule(path=...)`` (removed at exit)."""
    folder = tempfile.mkdtemp(prefix="lumen-ptx-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def load_module(cp, ir_text, launches, arch):
    """The ``cupy.RawModule`` of NVVM module ``ir_text`` (whose kernels are ``launches``) for
    ``arch``; its PTX is compiled once per (NVVM IR, architecture, LLVM version) in this
    process."""
    text = ir_text + json.dumps(identity(arch), sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()
    with _lock:
        module = _modules.get(key)
        if module is None:
            ptx = compile_ptx(ir_text, [spec.name for spec in launches.values()], arch)
            path = os.path.join(_ptx_folder(), f"{key}.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            module = _modules[key] = cp.RawModule(path=path)
    return module


class GpuDevice:
    """What the executor uses of the device: ``cp``, the CuPy module; ``scatter_add``,
    ``cupy.add.at`` (``cupyx.scatter_add`` before CuPy 13); ``max_blocks``, the largest grid
    launched (grid-stride loops cover the rest); ``matmul(a, b)``, the matrix product
    (`gpu_blas.Blas`); ``graphs``, whether calls may be captured and replayed as CUDA graphs
    (`gpu_replay`)."""

    def __init__(self, cp, scatter_add, max_blocks, matmul, graphs):
        self.cp, self.scatter_add, self.max_blocks = cp, scatter_add, max_blocks
        self.matmul, self.graphs = matmul, graphs


def gpu_executable(optimized, traced) -> GpuExecutable:
    """``optimized`` (the optimised form of ``traced``) compiled for the current GPU;
    `DeviceError` without one, `UnsupportedError` naming a node the GPU cannot run."""
    cp = gpu()
    node = unsupported_node(optimized)
    if node is not None:
        raise UnsupportedError(f"{node.op} (at {node.loc or node.op}) has no GPU "
                               "implementation in lumen; use device='cpu' for this function")
    ir_text, launches, errors = nvvm_module(optimized)
    module = load_module(cp, ir_text, launches, gpu_arch())
    device = GpuDevice(cp, _scatter_add(cp),
                       32 * cp.cuda.Device().attributes["MultiProcessorCount"], _blas(cp), True)
    return GpuExecutable(device, optimized, traced, module, launches, errors)


@functools.cache
def _blas(cp):
    """The process's `Blas` (its cuBLAS binding is made once)."""
    return Blas(cp)


def _scatter_add(cp):
    """``out[key] += values`` with repeated keys summed, in the installed CuPy's spelling."""
    if hasattr(cp.add, "at"):
        return cp.add.at
    import cupyx
    return cupyx.scatter_add


class Sizes:
    """The call's value of each symbolic size (`Dim`), computed once."""

    __slots__ = ("shapes", "known")

    def __init__(self, shapes):
        self.shapes, self.known = shapes, {}

    def __call__(self, d) -> int:
        v = self.known.get(d)
        if v is None:
            v = self.known[d] = d.evaluate(self.shapes)
        return v


def unsupported_node(graph):
    """The first node of ``graph`` (bodies included) the GPU cannot run, or None."""
    return next((node for node in nested_nodes(graph)
                 if node.op != "kernel" and node.op not in gpu_ops.OPS), None)


class GpuExecutable:
    """One compiled graph on ``device`` (a `GpuDevice`); ``function(*leaves)`` runs it.
    ``module`` holds the kernels (``get_function(name)`` -> a launchable kernel) of
    ``launches``, the graph's `KernelLaunch`es; ``errors`` are the kernels' error codes."""

    def __init__(self, device, optimized, traced, module, launches, errors):
        self.device = device
        self.cp = cp = device.cp
        self.kernels = {node: (module.get_function(spec.name), spec, {})
                        for node, spec in launches.items()}
        assert set(self.kernels) == set(kernel_nodes(optimized))
        self.errors = errors
        self.graph = optimized
        n_leaves = len(traced.inputs) - len(traced.captured)
        self.leaf_types = [v.type for v in traced.inputs[:n_leaves]]
        self.captured = [cp.asarray(a) for a in traced.captured]
        self.constants = {}
        self.err = cp.zeros(1, dtype=np.int32)
        #: whether a node reads device values on the host to decide what runs next
        self.steered = reads_on_host(optimized)
        self.replays = Replays(self) if device.graphs and not self.steered else None
        self.function = self.call

    def call(self, *leaves):
        if len(leaves) != len(self.leaf_types) or not all(
                _accepts(self.cp, t, leaf) for t, leaf in zip(self.leaf_types, leaves)):
            return NotImplemented
        arrays = [self._to_device(leaf, t) for leaf, t in zip(leaves, self.leaf_types)]
        replay = self.replays.get(arrays) if self.replays is not None else None
        if replay is not None:
            results = replay(arrays)
        else:
            run, outs = self.walk(arrays)
            gpu_ops.raise_index_errors(run.index_errors)
            if run.may_have_failed:
                self.raise_flagged()
            results = self._fresh(outs, arrays + self.captured)
            if self.replays is not None:
                self.replays.observe(arrays, run.nodes_run, results)
        return results[0] if len(results) == 1 else tuple(results)

    def walk(self, arrays):
        """Launch the graph on the call's device ``arrays`` (no checks read back) -> (the
        `GpuRun`, its outputs)."""
        arrays = arrays + self.captured
        run = GpuRun(self)
        return run, run.graph(self.graph, arrays, Sizes([a.shape for a in arrays]))

    def constant(self, node):
        """A ``const`` node's value on the device (copied there once)."""
        a = self.constants.get(node)
        if a is None:
            a = self.constants[node] = self.cp.asarray(node.params["value"].array)
        return a

    def _to_device(self, leaf, t):
        cp = self.cp
        if type(leaf) is cp.ndarray:
            return leaf
        if type(leaf) in (int, float):
            return cp.full((), leaf, dtype=t.dtype)
        return cp.asarray(np.asarray(leaf))

    def raise_flagged(self):
        """Raise the error a kernel of this call flagged, if any (reads the error word:
        synchronises)."""
        code = int(self.err[0])
        if code:
            self.err.fill(0)
            exc, message = self.errors[code]
            raise getattr(builtins, exc)(message)

    def _fresh(self, outs, arrays):
        """The results, none of them an argument, a constant, a view of one or another
        result: those are copied."""
        taken = {id(a) for a in arrays} | {id(a) for a in self.constants.values()}
        results = []
        for a in outs:
            if id(a) in taken or a.base is not None:
                a = a.copy()
            taken.add(id(a))
            results.append(a)
        return results


class GpuRun:
    """One call in progress: runs graphs (the function's and its bodies) node by node."""

    def __init__(self, executable):
        self.executable = executable
        self.cp = executable.cp
        self.scatter_add = executable.device.scatter_add
        self.matmul = executable.device.matmul
        self.constant = executable.constant
        self.steered = executable.steered
        self.may_have_failed = False
        #: nodes run so far, bodies' once per iteration (what replaying the call would save)
        self.nodes_run = 0
        #: (device flag, message) of every integer-array index check of the call so far
        self.index_errors = []

    def graph(self, graph, arrays, sizes):
        """Run ``graph`` on device ``arrays`` -> its outputs. Every size check of its nodes is
        done first, as in compiled CPU code."""
        for node in graph.nodes:
            for check in node.checks:
                a, b = sizes(check.a), sizes(check.b)
                if not check.holds(a, b):
                    raise check.error(f"{check.what} ({node.op} at {node.loc or node.op})")
        ex = self.executable
        self.nodes_run += len(graph.nodes)
        env = dict(zip(graph.inputs, arrays))
        for node in graph.nodes:
            inputs = [env[v] for v in node.inputs]
            if node.op == "kernel":
                function, spec, plans = ex.kernels[node]
                outs = [launch(self.cp, function, node, spec, inputs, sizes, ex.err,
                               ex.device.max_blocks, plans)]
                self.may_have_failed |= spec.can_fail
            else:
                outs = gpu_ops.OPS[node.op](self, node, inputs, sizes)
            env.update(zip(node.outputs, outs))
        return [env[v] for v in graph.outputs]


def _accepts(cp, t, leaf) -> bool:
    """Whether ``leaf`` is an argument of type ``t`` (as `lumen.frontend.jit` makes types)."""
    kind = type(leaf)
    if t.weak:
        if t.dtype.kind == "f":
            return kind is float
        lo, hi = (-2**63, 2**63) if t.dtype.kind == "i" else (2**63, 2**64)
        return kind is int and lo <= leaf < hi
    if kind is not cp.ndarray and kind is not np.ndarray:
        if not isinstance(leaf, (np.generic, bool)):
            return False
        leaf = np.asarray(leaf)
    return leaf.dtype == t.dtype and tuple(n == 1 for n in leaf.shape) == t.broadcastable


def to_host(values) -> list:
    """NumPy copies of device arrays (other values as they are), for the debug mode's check."""
    return [v.get() if hasattr(v, "__cuda_array_interface__") else v for v in values]
