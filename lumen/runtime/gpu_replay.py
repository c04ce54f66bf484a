"""A whole GPU call replayed as one CUDA graph.

The executor walks the optimised graph on the host, and each node costs it 10-30 us (the
output's allocation, the launch's arguments, a cuBLAS call): a training step of 60 nodes spends
more time there than the GPU spends computing. So once a function has been called twice with
the same argument shapes, the executor captures the call (CUDA stream capture) into a graph of
its launches, products and copies, and later calls with those shapes replay it: the arguments
are copied into the graph's own input buffers, the graph is launched, and its results come
back as one fresh block (the graph packs them there). What the graph touches is allocated from
a memory pool that only it uses, so the addresses recorded in it stay its own.

A call is replayed only where that pays (the copies it adds against the host time it saves:
`pays`) and where the graph can be captured: no node that reads a device value on the host
(``while``, ``cond``) and no CuPy call that refuses capture; a function whose capture fails
runs as before.
"""
from __future__ import annotations

import threading

import numpy as np

from ..ir.ops import nested_nodes
from . import gpu_ops

#: Host time an eager call spends per node it runs, and the device copy rate assumed (bytes
#: per us): a replay pays when its copies take less than half the host time it saves.
HOST_US_PER_NODE, COPY_BYTES_PER_US = 10.0, 1.0e6
#: Argument shapes captured per function (each holds its buffers); others run eagerly.
MAX_REPLAYS = 8
#: Shapes remembered per function for the choice (seen once, or declined): a function called
#: with ever new shapes starts over from this many.
MAX_SHAPES = 1024
#: Alignment of each result in the packed block (bytes).
ALIGN = 256
_DEVICE_TO_DEVICE = 3


def reads_on_host(graph) -> bool:
    """Whether ``graph`` (bodies included) has a node the host must wait for."""
    return any(node.op in gpu_ops.HOST_READS for node in nested_nodes(graph))


def pays(nodes_run: int, nbytes: int) -> bool:
    """Whether replaying a call that ran ``nodes_run`` nodes and moves ``nbytes`` of arguments
    and results pays for copying those bytes."""
    return nbytes / COPY_BYTES_PER_US < nodes_run * HOST_US_PER_NODE / 2


class Replays:
    """An executable's replays by device and argument shapes: the first call with new shapes
    runs eagerly and is measured, the second is captured where replaying pays; shapes where it
    does not, or whose capture failed (``not_captured`` says why), run eagerly from then on."""

    def __init__(self, executable):
        self.executable = executable
        self.replays: dict = {}
        self.first_calls: dict = {}
        self.declined: set = set()
        self.not_captured: dict = {}
        self.lock = threading.Lock()

    def get(self, arrays):
        """The replay for ``arrays`` (the call's device arguments), capturing it on the second
        call with their shapes; None: run eagerly."""
        key = self._key(arrays)
        replay = self.replays.get(key)
        if replay is not None or key not in self.first_calls:
            return replay
        with self.lock:
            seen = self.first_calls.pop(key, None)
            if seen is None:                        # another thread took it
                return self.replays.get(key)
            if pays(*seen) and len(self.replays) < MAX_REPLAYS:
                try:
                    replay = self.replays[key] = Replay(self.executable, arrays)
                except Exception as exc:   # a CuPy call that refuses capture: eager
                    self.not_captured[key] = f"{type(exc).__name__}: {exc}"
            if replay is None:
                self._make_room()
                self.declined.add(key)
        return replay

    def observe(self, arrays, nodes_run, results):
        """Note an eager call with new argument shapes."""
        key = self._key(arrays)
        if key not in self.replays and key not in self.declined:
            self._make_room()
            self.first_calls[key] = (nodes_run, sum(a.nbytes for a in arrays)
                                     + sum(r.nbytes for r in results))

    def _make_room(self):
        """Forget every shape seen once or declined when there are `MAX_SHAPES` of them."""
        if len(self.first_calls) + len(self.declined) >= MAX_SHAPES:
            self.first_calls.clear()
            self.declined.clear()
            self.not_captured.clear()

    def _key(self, arrays):
        """The current device and the arguments' shapes (a graph runs where it was captured)."""
        return (self.executable.cp.cuda.Device().id, *(a.shape for a in arrays))


class Replay:
    """One captured call: input buffers, the CUDA graph, and the block it packs results into."""

    def __init__(self, executable, arrays):
        self.executable = executable
        self.cp = cp = executable.cp
        self.pool = cp.cuda.MemoryPool()
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.lock = threading.Lock()
        self.done = cp.cuda.Event(disable_timing=True)
        executable.device.matmul.handle()           # looked up before: not during the capture
        with cp.cuda.using_allocator(self.pool.malloc), self.stream:
            self.inputs = [cp.empty(a.shape, a.dtype) for a in arrays]
            self.stream.begin_capture()
            try:
                run, outs = executable.walk(self.inputs)
                self._pack(outs)
            except BaseException:
                try:
                    self.stream.end_capture()
                except Exception:
                    pass
                raise
            self.graph = self.stream.end_capture()
        self.index_errors = run.index_errors
        self.may_have_failed = run.may_have_failed
        self.done.record(self.stream)

    def _pack(self, outs):
        """Copy the results into one block (in the graph), each at an aligned offset."""
        cp = self.cp
        self.layout, total = [], 0
        for a in outs:
            self.layout.append((a.shape, a.dtype, total))
            total += -(-a.nbytes // ALIGN) * ALIGN
        self.nbytes = max(total, 1)
        self.packed = cp.empty(self.nbytes, np.uint8)
        for a, (shape, dtype, offset) in zip(outs, self.layout):
            if a.size:
                cp.ndarray(shape, dtype, self.packed.data + offset)[...] = a

    def __call__(self, arrays):
        """Run the call on ``arrays`` -> its results (fresh arrays)."""
        cp = self.cp
        stream = cp.cuda.get_current_stream()
        memcpy = cp.cuda.runtime.memcpyAsync
        with self.lock:
            stream.wait_event(self.done)      # the last replay, maybe on another stream, ended
            for src, dst in zip(arrays, self.inputs):
                if not dst.size:
                    continue
                if src.flags.c_contiguous:
                    memcpy(dst.data.ptr, src.data.ptr, dst.nbytes, _DEVICE_TO_DEVICE, stream.ptr)
                else:
                    dst[...] = src
            self.graph.launch(stream)
            block = cp.empty(self.nbytes, np.uint8)
            memcpy(block.data.ptr, self.packed.data.ptr, self.nbytes, _DEVICE_TO_DEVICE,
                   stream.ptr)
            self.done.record(stream)
            gpu_ops.raise_index_errors(self.index_errors)
        if self.may_have_failed:
            self.executable.raise_flagged()
        return [cp.ndarray(shape, dtype, block.data + offset)
                for shape, dtype, offset in self.layout]
