"""From a traced graph to something callable.

When the disk cache holds the graph's object code, loading it is all there is to do; otherwise
the passes optimise the graph, code generation lowers it, LLVM compiles it to object code, and
the disk cache keeps that. The optimiser and the code generator are imported on first use
(`_optimize`, `_lower`), so that a warm start never pays for importing them (~25 ms)."""
from __future__ import annotations

from ..codegen_llvm.target import assembly, compile_object, identity, optimise
from ..ir.printer import format_graph
from ..runtime import disk_cache
from ..runtime.executor import Executable
from . import pytree
from .cache_key import cache_key


class CompiledEntry:
    """A compiled specialisation: its size guards, the executable and the result structure.
    ``optimized`` is None when the code came from the disk cache (``from_disk``)."""

    def __init__(self, graph, optimized, executable, out_tree, options, from_disk=False):
        self.options = options
        self.from_disk = from_disk
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
    """Load ``graph``'s object code from the disk cache, or optimise and compile it (and save
    it there); both give the same `Executable`."""
    use_disk = options.get("cache", True) and options.get("device", "cpu") == "cpu" \
        and disk_cache.enabled()
    key = cache_key(graph, options) if use_disk else None
    object_code = disk_cache.load(key) if key else None
    optimized = None
    if object_code is None:
        optimized = _optimize(graph, options, check=options.get("debug", False))
        object_code = compile_object(_lower(optimized))
        if key:
            from .. import __version__
            target = identity()
            disk_cache.store(key, object_code, name=graph.name, lumen=__version__,
                             **{k: target[k] for k in ("triple", "cpu", "llvm", "llvmlite")})
    executable = Executable(object_code, len(graph.outputs))
    return CompiledEntry(graph, optimized, executable, out_tree, options,
                         from_disk=optimized is None)


def _optimize(graph, options, check):
    from ..passes.pipeline import optimize
    return optimize(graph, fastmath=options.get("fastmath", False), check=check)


def _lower(optimized) -> str:
    from ..codegen_llvm.program import lower_graph
    return lower_graph(optimized)


class Lowered:
    """The stages of one compilation, for reading (``f.lower(*args)``)."""

    def __init__(self, graph, options):
        self.graph = graph
        self.options = options
        self._optimized = None
        self._module = None

    def ir(self) -> str:
        return format_graph(self.graph)

    def optimized_graph(self):
        if self._optimized is None:
            self._optimized = _optimize(self.graph, self.options, check=True)
        return self._optimized

    def optimized_ir(self) -> str:
        return format_graph(self.optimized_graph())

    def llvm_ir(self) -> str:
        return _lower(self.optimized_graph())

    def _llvm_module(self):
        if self._module is None:
            self._module = optimise(self.llvm_ir())
        return self._module

    def asm(self) -> str:
        return assembly(self._llvm_module())
