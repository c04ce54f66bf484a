"""From a traced graph to something callable.

When the disk cache holds the graph's object code, loading it is all there is to do; otherwise
the passes optimise the graph, code generation lowers it, LLVM compiles it to object code, and
the disk cache keeps that. The optimiser and the code generator are imported on first use
(`_optimize`, `_lower`), so that a warm start never pays for importing them (~25 ms)."""
from __future__ import annotations

import threading

from ..codegen_llvm.symbols import compile_small_products, link_small_products, resolve_dots
from ..codegen_llvm.target import (assembly, compile_objects, disk_cache_info, host_features,
                                    link_runtime, optimise, runtime_linked)
from ..ir.dims import size_test
from ..ir.printer import format_graph
from ..runtime import disk_cache
from ..runtime.executor import Executable
from . import pytree
from .cache_key import cache_key


class CompiledEntry:
    """A compiled specialisation: its size guards, the executable and the result structure.
    ``optimized`` is None when the code came from the disk cache (``from_disk``).

    ``function`` takes the call's leaves (arrays and Python scalars) and returns the result
    arrays, one as itself, several as a tuple; `results` rebuilds the structure the traced
    function returned, and is None where that is what ``function`` returns already.
    ``native_guards``: ``function`` tests the size guards itself (returning NotImplemented)."""

    def __init__(self, graph, optimized, executable, out_tree, options, from_disk=False,
                 native_guards=False):
        self.options = options
        self.from_disk = from_disk
        self.native_guards = native_guards
        self.guards = list(graph.guards.items())
        self._sizes_hold = size_test(graph.guards) if graph.guards else None
        self.int_guards = list(graph.int_guards)
        self.executable = executable
        self.function = executable.function
        self.out_tree = out_tree
        self.n_outputs = len(graph.outputs)
        as_returned = pytree.LEAF if self.n_outputs == 1 else ("tuple", (pytree.LEAF,) * self.n_outputs)
        self.results = None if out_tree == as_returned else self._rebuild
        self.graph, self.optimized = graph, optimized
        self.captured = list(graph.captured)

    def guards_hold(self, arrays) -> bool:
        """The sizes (and Python-int ranges) this specialisation assumed hold for ``arrays``."""
        if self.int_guards:
            from .jit import int_range
            if any(int_range(int(arrays[pos])) != r for pos, r in self.int_guards):
                return False
        if self._sizes_hold is None:
            return True
        return self._sizes_hold([a.shape for a in arrays])

    def try_call(self, arrays, leaves):
        """`call` where this specialisation fits the call, else NotImplemented. Its native
        code tests the size guards itself (``native_guards``): then Python does not."""
        if self.int_guards or not self.native_guards:
            return self.call(arrays, leaves) if self.guards_hold(arrays) else NotImplemented
        out = self.function(*leaves)
        return out if out is NotImplemented else self._finish(arrays, out)

    def call(self, arrays, leaves):
        """Run on ``leaves``, the call's leaves as the native code takes them (``arrays``:
        the same as arrays, which the guards held for)."""
        out = self.function(*leaves)
        if out is NotImplemented:
            if any(hasattr(a, "__cuda_array_interface__") for a in arrays):
                raise TypeError(f"{self.graph.name} was compiled with device='cpu' and takes "
                                "NumPy arrays, not GPU arrays: copy them to the host "
                                "(cupy.asnumpy) or use lumen.jit(..., device='gpu')")
            raise AssertionError(f"lumen: the code compiled for {self.graph.name} refused "
                                 "arguments of its own signature")
        return self._finish(arrays, out)

    def _finish(self, arrays, out):
        """The native code's ``out`` as the traced function returned it (checked against
        NumPy in debug mode)."""
        if self.options.get("debug"):
            from .debug import verify_call
            outs = [out] if self.n_outputs == 1 else list(out)
            if self.options.get("device") == "gpu":
                from ..runtime.gpu import to_host
                arrays, outs = to_host(arrays), to_host(outs)
            verify_call(self, arrays, outs, self.options)
        return out if self.results is None else self.results(out)

    def _rebuild(self, out):
        return pytree.unflatten(self.out_tree, (out,) if self.n_outputs == 1 else out)


def compile_graph(graph, out_tree, options) -> CompiledEntry:
    """Load ``graph``'s object code from the disk cache, or optimise and compile it (and save
    it there); both give the same `Executable`."""
    if options.get("device", "cpu") == "gpu":
        return _compile_gpu(graph, out_tree, options)
    use_disk = options.get("cache", True) and options.get("device", "cpu") == "cpu" \
        and disk_cache.enabled()
    key = cache_key(graph, options) if use_disk else None
    objects = disk_cache.load(key) if key else None
    optimized = None
    if objects is None:
        from ..codegen_llvm.product_plan import dots_letters, product_letters
        letters = product_letters(graph)
        if not runtime_linked() or letters:     # on another core while this program compiles
            threading.Thread(target=_link_runtime_quietly, args=(letters, ()),
                             daemon=True).start()
        optimized = _optimize(graph, options, check=options.get("debug", False))
        dots = dots_letters(optimized, host_features())          # the products that remain
        if dots:
            threading.Thread(target=_link_runtime_quietly, args=((), dots), daemon=True).start()
        objects = compile_objects(_lower(optimized, options))
        if key:
            disk_cache.store(key, objects, **disk_cache_info(graph.name))
    executable = Executable(objects, graph.captured, graph.name)
    return CompiledEntry(graph, optimized, executable, out_tree, options,
                         from_disk=optimized is None, native_guards=True)


def _link_runtime_quietly(letters, dots):
    """`link_runtime`, the small matrix products of these dtypes and the dot products of
    those (`product_plan`), on a thread of its own. The small products are compiled first:
    their LLVM runs without the interpreter lock while this program is lowered, where
    registering the runtime's symbols, which needs the lock, would wait for it (the W7 step's
    cold start, medians of alternating runs: 0.264 s against 0.305 on two cores, 0.399 against
    0.447 on one). A failure there is not lost: linking the program calls the first two again,
    and raises what that attempt raises; where the dot products fail, `resolve_dots` warns
    once and BLAS runs the products they would have."""
    try:
        compile_small_products(letters)         # needs no symbols: before registering them
        link_runtime()
        link_small_products(letters=letters)
        for letter in sorted(dots):
            resolve_dots(letter)
    except Exception:
        pass


def _compile_gpu(graph, out_tree, options) -> CompiledEntry:
    """device='gpu': the optimised graph, its kernels as PTX, run by the GPU executor
    (`runtime.gpu`); DeviceError, before any pass runs, when there is no GPU."""
    from ..devices import gpu
    gpu()
    from ..runtime.gpu import gpu_executable
    optimized = _optimize(graph, options, check=options.get("debug", False))
    return CompiledEntry(graph, optimized, gpu_executable(optimized, graph), out_tree, options)


def _optimize(graph, options, check):
    from ..passes.pipeline import optimize
    return optimize(graph, fastmath=options.get("fastmath", False), check=check)


def _lower(optimized, options) -> str:
    """LLVM IR of the optimised graph, after the CPU-only sibling fusions (`cpu_fusions`); the
    GPU and ``.ptx()`` lower the graph as the pipeline left it."""
    from ..codegen_llvm.program import lower_graph
    return lower_graph(cpu_fusions(optimized), parallel=options.get("parallel", True),
                       profile=options.get("profile", False))


def cpu_fusions(graph):
    """``graph`` and its loops' and branches' bodies with backward products and weight updates
    merged (`fuse_matvec_siblings`), and elementwise kernels with reductions of their values
    (`fuse_reduce_siblings`)."""
    from ..passes.matvec_siblings import fuse_matvec_siblings
    from ..passes.rebuild import map_bodies
    from ..passes.reduce_siblings import fuse_reduce_siblings
    return fuse_reduce_siblings(fuse_matvec_siblings(map_bodies(graph, cpu_fusions)))


class Lowered:
    """The stages of one compilation, for reading (``f.lower(*args)``)."""

    def __init__(self, graph, options):
        self.graph = graph
        self.options = options
        self._optimized = None
        self._modules = None

    def ir(self) -> str:
        return format_graph(self.graph)

    def optimized_graph(self):
        if self._optimized is None:
            self._optimized = _optimize(self.graph, self.options, check=True)
        return self._optimized

    def optimized_ir(self) -> str:
        return format_graph(self.optimized_graph())

    def llvm_ir(self) -> str:
        return _lower(self.optimized_graph(), self.options)

    def _llvm_parts(self):
        if self._modules is None:
            self._modules = optimise(self.llvm_ir())
        return self._modules

    def ptx(self, arch=None) -> str:
        """PTX of every kernel of the optimised graph, as one module whose entry points are
        ``<function name>_k0``, ``_k1``, ... in program order (loop and branch bodies
        included), for ``arch`` (``"sm_90"``; default: the GPU's, ``sm_80`` without one). The
        same for ``device="cpu"`` functions: both backends lower the same kernels."""
        from ..codegen_ptx.program import lower_program
        from ..codegen_ptx.target import DEFAULT_ARCH
        from ..devices import gpu_arch
        return lower_program(self.optimized_graph(), arch or gpu_arch() or DEFAULT_ARCH).ptx

    def asm(self) -> str:
        return assembly(self._llvm_parts())
