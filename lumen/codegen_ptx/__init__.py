"""GPU code generation: the optimised graph's `Kernel` nodes -> NVVM IR -> PTX.

The kernels are lowered from the same `Kernel` IR and the same scalar rules as on the CPU
(`codegen_llvm.lower.scalar`, with libdevice for the math functions), into one module per
graph (`program`), and assembled to PTX by llvmlite's NVPTX target (`target`). Nothing here
imports CuPy or runs anything: the GPU runtime (`lumen.runtime.gpu`) launches the kernels.
This package is imported only when PTX is asked for (``device="gpu"``, ``Lowered.ptx()``).
"""
