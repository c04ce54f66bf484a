"""The kernels of an optimised graph -> one PTX module.

Every ``kernel`` node of the graph, those inside loop and branch bodies included, becomes one
entry point of a single NVVM module, lowered from the same `Kernel` IR and scalar rules as on
the CPU. Everything else in the graph (matrix products, movement, indexing, control flow) runs
on the host's side of the GPU runtime through CuPy (`lumen.runtime.gpu`), not as PTX.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..ir.ops import nested_nodes
from ..ir.ops.kernel import used_inputs
from .context import KernelContext
from .elementwise import lower_map
from .reduce import lower_reduce
from .target import DEFAULT_ARCH, compile_ptx


@dataclass(frozen=True)
class KernelLaunch:
    """What the runtime needs to launch one kernel node: the entry point's name, whether it
    reduces, the inputs whose strides it takes (in the order of its parameters: those the body
    reads, aligned to the space; for a reduction also those the epilogue reads, aligned to the
    output), and whether it can flag an error."""
    name: str
    reduces: bool
    body_inputs: tuple
    epilogue_inputs: tuple
    can_fail: bool


@dataclass
class PtxProgram:
    """The PTX module of a graph's kernels (``ptx``, for ``arch``), how to launch each kernel
    node, and the errors the kernels can flag: code -> (exception class name, message)."""
    ptx: str
    arch: str
    launches: dict
    errors: dict


def kernel_nodes(graph) -> list:
    """The graph's kernel nodes, those in nested bodies included, in program order."""
    return [node for node in nested_nodes(graph) if node.op == "kernel"]


def nvvm_module(graph):
    """(NVVM IR text, {node: KernelLaunch}, errors) of the graph's kernels."""
    prefix = re.sub(r"\W", "_", graph.name) or "lumen"
    ctx = KernelContext(graph.name)
    launches = {}
    for i, node in enumerate(kernel_nodes(graph)):
        name = f"{prefix}_k{i}"
        reduces = node.params["reduce"] is not None
        (lower_reduce if reduces else lower_map)(ctx, node, name)
        epilogue = node.params.get("epilogue") if reduces else None
        launches[node] = KernelLaunch(
            name, reduces, tuple(sorted(used_inputs(node.params["body"]))),
            tuple(sorted(used_inputs(epilogue, n_lead=1))),
            ctx.flagged)
    errors = {code: (exc, message) for code, exc, message in ctx.errors}
    return str(ctx.module), launches, errors


def lower_program(graph, arch: str = DEFAULT_ARCH) -> PtxProgram:
    ir_text, launches, errors = nvvm_module(graph)
    ptx = compile_ptx(ir_text, [launch.name for launch in launches.values()], arch)
    return PtxProgram(ptx, arch, launches, errors)
