"""From a traced graph to something callable: passes, code generation, loading."""
from __future__ import annotations

from ..codegen_llvm.program import lower_graph
from ..codegen_llvm.target import assembly
from ..ir.printer import format_graph
from ..passes.pipeline import optimize
from ..runtime.executor import Executable
from . import pytree


class CompiledEntry:
    """A compiled specialisation: its size guards, the executable and the result structure."""

    def __init__(self, graph, optimized, executable, out_tree, options):
        self.options = options
        self.guards = list(graph.guards.items())
        self.int_guards = list(graph.int_guards)
        self.executable = executable
        self.out_tree = out_tree
        self.graph, self.optimized = graph, optimized
        self.captured = list(graph.captured)

    def guards_hold(self, arrays) -> bool:
        """The sizes (and Python-int ranges) this specialisation assumed hold for ``arrays``."""
        if self.int_guards:
            from .jit import int_range
            if any(int_range(int(arrays[pos])) != r for pos, r in self.int_guards):
                return False
        if not self.guards:
            return True
        shapes = [a.shape for a in arrays]
        return all(d.evaluate(shapes) == v for d, v in self.guards)

    def call(self, arrays):
        outs = self.executable.run(arrays + self.captured if self.captured else arrays)
        if self.options.get("debug"):
            from .debug import verify_call
            verify_call(self, arrays, outs, self.options)
        if self.out_tree == pytree.LEAF:
            return outs[0]
        return pytree.unflatten(self.out_tree, outs)


def compile_graph(graph, out_tree, options) -> CompiledEntry:
    optimized = optimize(graph, fastmath=options.get("fastmath", False),
                         check=options.get("debug", False))
    executable = Executable(lower_graph(optimized), len(graph.outputs))
    return CompiledEntry(graph, optimized, executable, out_tree, options)


class Lowered:
    """The stages of one compilation, for reading (``f.lower(*args)``)."""

    def __init__(self, graph, options):
        self.graph = graph
        self.options = options
        self._optimized = None
        self._executable = None

    def ir(self) -> str:
        return format_graph(self.graph)

    def optimized_graph(self):
        if self._optimized is None:
            self._optimized = optimize(self.graph, fastmath=self.options.get("fastmath", False),
                                       check=True)
        return self._optimized

    def optimized_ir(self) -> str:
        return format_graph(self.optimized_graph())

    def llvm_ir(self) -> str:
        return lower_graph(self.optimized_graph())

    def _compiled(self):
        if self._executable is None:
            self._executable = Executable(self.llvm_ir(), len(self.graph.outputs))
        return self._executable

    def optimized_llvm_ir(self) -> str:
        return str(self._compiled().module)

    def asm(self) -> str:
        return assembly(self._compiled().module)
