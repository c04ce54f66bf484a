"""The primitives that are not kernels, on the GPU: each as CuPy does it on the host's side
(matrix products through lumen's cuBLAS calls, movement as views where CuPy can, indexing,
running sums) and control flow as a host loop whose steps launch the body's kernels.

``OPS[op](run, node, inputs, sizes) -> outputs``: ``run`` is the executor (`GpuRun`: ``cp`` is
CuPy, ``scatter_add`` is ``cupy.add.at``, ``matmul`` the matrix product (`gpu_blas`),
``run.graph(body, arrays, sizes)`` runs a nested graph, ``run.constant(node)`` is a ``const``
node's array on the device), ``inputs`` are device arrays and ``sizes`` evaluates a `Dim`
for this call. Nothing here mutates an array it did not create.

Reading a value back to the host synchronises with the GPU; only two things do: a ``while``
condition and a ``cond`` predicate (the host must know them to go on: `HOST_READS`), and the
bounds checks of integer-array indices at the end of the call (an index out of bounds is an
IndexError, as on the CPU, never an access outside the array: until then a gather's index is
wrapped around by CuPy, a scatter's clipped to the axis). In a function with a ``while`` or a
``cond`` a scatter's check is read before it writes, so that no decision on the host sees
values written through a clipped index.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import control
from ..ir.ops.movement import slice_key

#: The nodes that read a device value on the host to decide what runs next.
HOST_READS = frozenset({"while", "while_grad", "cond"})


def _reshape(run, node, ins, sizes):
    return [ins[0].reshape(tuple(sizes(d) for d in node.params["shape"]))]


def _transpose(run, node, ins, sizes):
    return [ins[0].transpose(node.params["perm"])]


def _broadcast_to(run, node, ins, sizes):
    return [run.cp.broadcast_to(ins[0], tuple(sizes(d) for d in node.params["shape"]))]


def _slice(run, node, ins, sizes):
    # asarray: indexing every axis by an integer gives CuPy a 0-d array but NumPy (the test
    # emulator's stand-in for CuPy) a scalar, which a kernel launch cannot pass as a pointer
    return [run.cp.asarray(ins[0][slice_key(node.params["specs"], sizes)])]


def _concatenate(run, node, ins, sizes):
    return [run.cp.concatenate(ins, axis=node.params["axis"])]


def _outside(node, x, indices):
    """(device flag, message) for each integer-array index: whether one is outside [-n, n)."""
    start = node.params["start"]
    for k, idx in enumerate(indices):
        if idx.size:
            n = x.shape[start + k]
            outside = idx >= n if idx.dtype.kind == "u" else (idx < -n) | (idx >= n)
            yield outside.any(), (f"index out of bounds for axis {start + k} with size {n} "
                                  f"in {node.loc or node.op}")


def raise_index_errors(flags) -> None:
    """Raise the IndexError of the first (device flag, message) whose flag is set (reads the
    flags back: synchronises)."""
    for outside, message in flags:
        if bool(outside):
            raise IndexError(message)


def _key(node, indices):
    return (slice(None),) * node.params["start"] + tuple(indices)


def _gather(run, node, ins, sizes):
    """A read: CuPy wraps an index outside the array around; the check is read at the end of
    the call (`GpuRun.index_errors`)."""
    x, *idx = ins
    run.index_errors.extend(_outside(node, x, idx))
    return [x[_key(node, idx)]]


def _scatter(run, node, ins, sizes):
    """A write: its index checked at the end of the call and clipped to the axis until then,
    or checked before it writes where the host steers the call (`GpuRun.steered`)."""
    x, v, *idx = ins
    flags = list(_outside(node, x, idx))
    if run.steered:
        raise_index_errors(flags)
    else:
        run.index_errors.extend(flags)
        idx = [_clipped(run.cp, i, x.shape[node.params["start"] + k]) for k, i in enumerate(idx)]
    out = x.copy()
    if node.params["mode"] == "add":      # gradients of x[idx]: float32 or float64
        run.scatter_add(out, _key(node, idx), v)
    else:
        out[_key(node, idx)] = v
    return [out]


def _clipped(cp, idx, n):
    """``idx`` with every index inside an axis of ``n`` (negative ones counting from its end)."""
    if not idx.size:
        return idx
    return cp.minimum(idx, n - 1) if idx.dtype.kind == "u" else cp.clip(idx, -n, n - 1)


def _update_slice(run, node, ins, sizes):
    x, v = ins
    out = x.copy()
    out[slice_key(node.params["specs"], sizes)] = v
    return [out]


def _matmul(run, node, ins, sizes):
    return [run.matmul(*ins).astype(node.out.dtype, copy=False)]


def _gemm(run, node, ins, sizes):
    a, b, c = ins
    alpha, beta = node.params["alpha"], node.params["beta"]
    out = run.matmul(a, b)
    if alpha != 1:
        out *= out.dtype.type(alpha)
    if beta:
        out += out.dtype.type(beta) * c
    return [out]


def _iota(run, node, ins, sizes):
    return [run.cp.arange(sizes(node.params["size"]), dtype=node.params["dtype"])]


def _dim(run, node, ins, sizes):
    return [run.cp.full((), sizes(node.params["dim"]), dtype=np.int64)]


def _cumulative(name):
    def run_it(run, node, ins, sizes):
        fn = getattr(run.cp, name)
        return [fn(ins[0], axis=node.params["axis"], dtype=node.out.dtype)]
    return run_it


def _control(run_op, extra=lambda run, sizes: ()):
    """A control-flow node run on the host by its shared semantics (`ir.ops.control`), its
    bodies' kernels launched on the device; ``extra`` gives run_op's CuPy-side arguments."""
    def run_it(run, node, ins, sizes):
        def evaluate(graph, arrays):
            return run.graph(graph, arrays, sizes)
        return run_op(node.params, list(ins), evaluate, *extra(run, sizes))
    return run_it


OPS = {
    "reshape": _reshape, "transpose": _transpose, "broadcast_to": _broadcast_to,
    "slice": _slice, "concatenate": _concatenate,
    "gather": _gather, "scatter": _scatter, "update_slice": _update_slice,
    "matmul": _matmul, "gemm": _gemm,
    "const": lambda run, node, ins, sizes: [run.constant(node)],
    "iota": _iota, "dim": _dim,
    "cumsum": _cumulative("cumsum"), "cumprod": _cumulative("cumprod"),
    "scan": _control(control.run_scan, lambda run, sizes: (sizes, run.cp.empty)),
    "while": _control(control.run_while), "cond": _control(control.run_cond),
    "while_grad": _control(control.run_while_grad, lambda run, sizes: (
        lambda a, dtype: run.cp.zeros(a.shape, dtype),)),
}
