"""Launching one kernel node on the GPU: its output array, grid, block and arguments, in the
parameter order `codegen_ptx.elementwise.map_params` / `codegen_ptx.reduce.reduce_params`
define. Sizes come from the call's `Sizes`; strides are the arrays' own (CuPy views of any
layout are read in place)."""
from __future__ import annotations

import math

import numpy as np

#: Threads per block of elementwise kernels.
BLOCK = 256
#: Most threads per block of a reduction (one block per output element): many outputs use
#: smaller blocks so that more of them run at once.
REDUCE_BLOCK_FEW, REDUCE_BLOCK_MANY = 1024, 256
#: Launch plans kept per kernel node (a function called with ever new sizes starts over).
MAX_PLANS = 64
_i64 = np.int64


def aligned_strides(arr, space) -> list[int]:
    """Byte strides of ``arr`` broadcast to the sizes ``space`` (0 along broadcast axes)."""
    n, k = len(space), arr.ndim
    return [0 if axis < n - k or arr.shape[axis - (n - k)] == 1 else
            arr.strides[axis - (n - k)] for axis in range(n)]


def _flat_ok(arr, strides, space) -> bool:
    """Whether ``arr`` can be read at i * (its last aligned stride) for point i of ``space``:
    a broadcast scalar, or C-contiguous with the space's shape and a last axis longer than 1
    (a length-1 axis is given stride 0)."""
    return not any(strides) or (arr.flags.c_contiguous and tuple(arr.shape) == tuple(space)
                                and strides[-1] == arr.itemsize)


def launch(cp, function, node, launch_spec, inputs, sizes, err, max_blocks, plans):
    """Run kernel ``node`` (its compiled ``function``) on device arrays ``inputs``; -> its
    output, a new C-contiguous array (no synchronisation). ``plans`` holds the node's launch
    plans by iteration space and input layouts: a call with the layouts of an earlier one
    only allocates its output and launches."""
    space = tuple(sizes(d) for d in node.params["space"])
    key = (space, tuple((a.shape, a.strides) for a in inputs))
    plan = plans.get(key)
    if plan is None:
        if len(plans) >= MAX_PLANS:
            plans.clear()
        plan = plans[key] = _plan(node, launch_spec, inputs, space, sizes, max_blocks)
    out_shape, grid, block, tail = plan
    out = cp.empty(out_shape, node.out.dtype)
    if grid:
        function(grid, block, (out, *inputs, err, *tail))
    return out


def _plan(node, launch_spec, inputs, space, sizes, max_blocks):
    """(output shape, grid, block, the integer arguments after ``err``) of a launch; a grid of
    () where the output is empty."""
    out_shape = tuple(sizes(d) for d in node.out.type.shape)
    n_out = math.prod(out_shape)
    if n_out == 0:
        return out_shape, (), (), ()
    body_strides = [aligned_strides(inputs[k], space) for k in launch_spec.body_inputs]
    if not launch_spec.reduces:
        flat = all(_flat_ok(inputs[k], s, space)
                   for k, s in zip(launch_spec.body_inputs, body_strides))
        tail = [n_out, int(flat), *space] + [s for strides in body_strides for s in strides]
        return out_shape, (min(-(-n_out // BLOCK), max_blocks),), (BLOCK,), tuple(map(_i64, tail))
    axes = sorted(node.params["reduce"].axes)
    n_red = math.prod(space[a] for a in axes)
    cap = REDUCE_BLOCK_MANY if n_out >= max_blocks // 8 else REDUCE_BLOCK_FEW
    block = max(32, min(cap, 1 << max(n_red - 1, 0).bit_length()))
    tail = [n_out, n_red, *out_shape, *(space[a] for a in axes)]
    tail += [s for strides in body_strides for s in strides]
    tail += [s for k in launch_spec.epilogue_inputs for s in aligned_strides(inputs[k], out_shape)]
    return out_shape, (min(n_out, max_blocks),), (block,), tuple(map(_i64, tail))
