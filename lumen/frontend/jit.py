"""`lumen.jit`: trace on first call per signature, compile, then call native code."""
from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading

import numpy as np

from ..errors import TracingError, UnsupportedError
from ..ir.dims import Dim, guard_sink
from ..ir.equal_sizes import assume_traced_equalities
from ..ir.types import SUPPORTED_DTYPES, TensorType
from ..ir.verify import verify
from . import pytree
from .compile import Lowered, compile_graph
from .creation import symbolic_constructors
from .gc_pause import gc_paused
from .numpy_random_guard import numpy_random_refused
from .trace import Trace, to_value
from .tracer import Tracer

_SUPPORTED = frozenset(SUPPORTED_DTYPES)
_NO_KWARGS: dict = {}


def jit(fn=None, *, static_argnums=(), static_argnames=(), device="cpu", parallel=True,
        cache=True, donate_argnums=(), fastmath=False, debug=False):
    """Compile a NumPy function. Usable bare (``@lumen.jit``) or with options.

    A compiled function is specialised on each argument's dtype, ndim, length-1 axes and
    layout, never on other sizes. ``static_argnums`` / ``static_argnames`` name arguments passed
    as Python values (hashable; a new value retraces).

    ``fastmath=True`` also allows rewrites that are not IEEE-exact: ``x - x -> 0`` and
    ``x * 0 -> 0`` (wrong for inf and NaN), ``x + 0 -> x`` (wrong for -0.0), reassociation of
    constants. Without it every rewrite keeps IEEE results, except the stabilising ones, which
    return the mathematically right value where the naive formula overflows or cancels.
    ``debug=True`` (or ``LUMEN_DEBUG=1``) checks every call against a NumPy reference
    interpreter and names the rewrite behind any difference (`lumen.VerificationError`).

    ``donate_argnums`` names positional arguments (negative from the last) whose arrays the
    caller gives up: a result of an array's dtype and shape computed elementwise from it by the
    last step that reads it (``w - lr * g``, or BLAS's ``w - lr * x.T @ d``) is written over it
    and returned as that very array, so that ``params = step(params, x)`` updates in place. An
    array that may not be written, or that shares memory with another argument, keeps its
    values and the result is a new array. Ignored on the GPU and with ``debug=True``.
    """
    options = dict(static_argnums=static_argnums, static_argnames=static_argnames, device=device,
                   parallel=parallel, cache=cache, donate_argnums=donate_argnums,
                   fastmath=fastmath, debug=debug)
    if fn is None:
        return functools.partial(jit, **options)
    return Jitted(fn, **options)


def _as_tuple(x):
    return (x,) if isinstance(x, (int, str)) else tuple(x)


class Jitted:
    def __init__(self, fn, *, static_argnums, static_argnames, device, parallel, cache,
                 donate_argnums, fastmath, debug, profile=False):
        if device != "cpu":
            from ..devices import require
            require(device)
        self.fn = fn
        functools.update_wrapper(self, fn)
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters)
        self.static_argnums = frozenset(
            {i % len(params) if params else i for i in _as_tuple(static_argnums)} |
            {params.index(n) for n in _as_tuple(static_argnames) if n in params})
        self.static_argnames = frozenset(_as_tuple(static_argnames)) | \
            {params[i] for i in self.static_argnums if i < len(params)}
        self.donate_argnums = _as_tuple(donate_argnums)
        self.options = dict(device=device, parallel=parallel, cache=cache,
                            donate_argnums=_as_tuple(donate_argnums), fastmath=fastmath,
                            debug=debug or os.environ.get("LUMEN_DEBUG", "") not in ("", "0"),
                            profile=profile)     # timing counters, for lumen.profile
        self._cache: dict = {}
        self._lock = threading.Lock()
        self._stats = {"compiles": 0, "memory_hits": 0, "disk_hits": 0}
        # (native function, result rebuilder or None) of the specialisations a call with
        # positional leaves only can try blindly (`_fast_path`), in the order they were made
        self._fast: tuple = ()
        self._fast_hits = 0

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        # The common call -- positional arrays and Python scalars, no static arguments -- asks
        # each specialisation's native code in turn: it checks every argument against its
        # signature and returns NotImplemented for another, so that no Python work is spent
        # on flattening or keys (x + y on small arrays: ~0.3 µs per call instead of ~4).
        if not kwargs:
            for function, results in self._fast:
                out = function(*args)
                if out is not NotImplemented:
                    self._fast_hits += 1
                    return out if results is None else results(out)
        prepared = self._prepare(args, kwargs)
        if prepared is None:
            return self.fn(*args, **kwargs)      # called from traced code: inline it
        key, arrays, leaves, dynamic, statics = prepared
        for entry in self._cache.get(key, ()):
            out = entry.try_call(arrays, leaves)
            if out is not NotImplemented:
                self._stats["memory_hits"] += 1
                return out
        return self._compile(key, arrays, dynamic, statics).call(arrays, leaves)

    def _prepare(self, args, kwargs):
        """Split the call into static values and the dynamic pytree ``(args, kwargs)``;
        parameters left out keep the function's own defaults. -> (key, arrays, leaves,
        dynamic, statics): ``arrays`` are the dynamic leaves as arrays, ``leaves`` as the native
        code takes them (Python ints and floats themselves)."""
        if kwargs:
            bound = self.signature.bind(*args, **kwargs)
            args, kwargs = bound.args, bound.kwargs
        if self.static_argnums or kwargs:
            statics = tuple((i, a) for i, a in enumerate(args) if i in self.static_argnums) + \
                tuple((k, kwargs[k]) for k in sorted(kwargs) if k in self.static_argnames)
            dynamic = (tuple(a for i, a in enumerate(args) if i not in self.static_argnums),
                       {k: v for k, v in kwargs.items() if k not in self.static_argnames})
        else:                                    # the common call: positional arrays only
            statics, dynamic = (), (args, _NO_KWARGS)
        leaves, treedef = pytree.flatten(dynamic)
        arrays, specs = [], []
        for k, leaf in enumerate(leaves):
            if type(leaf) is Tracer:
                return None                      # inside a trace: the caller inlines
            a, spec = _leaf_spec(leaf, k, treedef)
            arrays.append(a)
            specs.append(spec)
            if spec[0] != "weak":
                leaves[k] = a
        key = (treedef, statics, tuple(specs))
        if statics:
            try:
                hash(key)
            except TypeError:
                raise TypeError("static arguments of a lumen.jit function must be hashable") from None
        return key, arrays, leaves, dynamic, statics

    def _lookup(self, key, arrays):
        for entry in self._cache.get(key, ()):
            if entry.guards_hold(arrays):
                return entry
        return None

    def _compile(self, key, arrays, dynamic, statics):
        with self._lock:
            entry = self._lookup(key, arrays)
            if entry is not None:
                return entry
            with gc_paused():
                graph, out_tree = self._trace(arrays, dynamic, statics)
                entry = compile_graph(graph, out_tree, self.options)
            self._cache.setdefault(key, []).append(entry)
            self._stats["disk_hits" if entry.from_disk else "compiles"] += 1
            if self._fast_path(key, entry):
                self._fast += ((entry.function, entry.results),)
            return entry

    def _fast_path(self, key, entry) -> bool:
        """Whether `__call__` may try ``entry`` on any call without keyword arguments: it takes
        the positional arguments as its leaves (no static arguments, no containers), and its
        native argument checks are all the checking it needs (size guards it tests itself,
        no int-range guards, no debug mode)."""
        treedef, statics, specs = key
        positional = ("tuple", (("tuple", (pytree.LEAF,) * len(specs)), ("dict", (), ())))
        return (treedef == positional and not statics and not self.static_argnums
                and (entry.native_guards or not entry.guards) and not entry.int_guards
                and not self.options["debug"])

    def precompile(self, *args, **kwargs):
        """Compile ahead of time, without running, for arguments given as `lumen.ShapeDtype`
        specs (anywhere in the argument pytrees) or as example arrays and scalars. The code
        goes to the memory cache and, unless it is off, the disk cache."""
        from .precompile import stand_ins
        args, kwargs = stand_ins((args, kwargs))
        prepared = self._prepare(args, kwargs)
        if prepared is None:
            raise TypeError("precompile() takes specs or concrete arrays, not traced values")
        key, arrays, _, dynamic, statics = prepared
        if self._lookup(key, arrays) is None:
            self._compile(key, arrays, dynamic, statics)

    # -- tracing --------------------------------------------------------------------------------
    def _trace(self, arrays, dynamic, statics):
        leaves, treedef = pytree.flatten(dynamic)
        names = _arg_names(self.signature, self.static_argnums, treedef)
        trace = Trace(getattr(self.fn, "__name__", "fn"))
        tracers = []
        for pos, (a, name) in enumerate(zip(arrays, names)):
            weak = type(leaves[pos]) in (int, float)
            dims = tuple(Dim.const(1) if n == 1 else Dim.input(pos, axis, n)
                         for axis, n in enumerate(a.shape))
            v = trace.builder.add_input(TensorType(a.dtype, dims, weak), name)
            if type(leaves[pos]) is int:
                trace.int_ranges[v] = (pos, int_range(leaves[pos]))
            t = Tracer(v)
            trace.argument_ids.add(id(t))
            tracers.append(t)
        traced_args, traced_kwargs = pytree.unflatten(treedef, tracers)
        traced_args, static = list(traced_args), dict(statics)
        call_args = [static[i] if i in static else traced_args.pop(0)
                     for i in range(len(traced_args) + sum(isinstance(k, int) for k in static))]
        call_kwargs = {**traced_kwargs, **{k: v for k, v in static.items() if isinstance(k, str)}}
        with trace, guard_sink() as sink, symbolic_constructors(), numpy_random_refused():
            result = self.fn(*call_args, **call_kwargs)
            out_leaves, out_tree = pytree.flatten(result)
            out_values = [to_value(o) for o in out_leaves]
        graph = trace.builder.build(out_values, sink.guards)
        assume_traced_equalities(graph)
        graph.input_contiguous = [bool(a.flags.c_contiguous) for a in arrays + trace.captured]
        graph.captured = trace.captured
        graph.int_guards = sorted(trace.int_ranges[v] for v in trace.used_int_ranges)
        graph.donated = self._donated_leaves(treedef, statics, leaves)
        verify(graph)
        return graph, out_tree

    def _donated_leaves(self, treedef, statics, leaves) -> frozenset:
        """Positions of the array leaves of the positional arguments in ``donate_argnums``
        (not on the GPU, nor in debug mode, whose check reruns the call on the arguments)."""
        if not self.donate_argnums or self.options["debug"] or self.options["device"] != "cpu":
            return frozenset()
        static = {i for i, _ in statics if isinstance(i, int)}
        positional = treedef[1][0][1]
        n_args = len(positional) + len(static)
        wanted = {i + n_args if i < 0 else i for i in self.donate_argnums}
        originals = (i for i in itertools.count() if i not in static)
        donated, start = set(), 0
        for sub, original in zip(positional, originals):
            count = len(pytree.leaf_paths(sub))
            if original in wanted:
                donated.update(k for k in range(start, start + count)
                               if isinstance(leaves[k], np.ndarray))
            start += count
        return frozenset(donated)

    # -- introspection --------------------------------------------------------------------------
    def lower(self, *args, **kwargs):
        """The compilation stages for these arguments: ``.ir()``, ``.optimized_ir()``,
        ``.llvm_ir()``, ``.asm()``, ``.ptx()``."""
        prepared = self._prepare(args, kwargs)
        if prepared is None:
            raise TypeError("lower() takes concrete arrays, not traced values")
        _, arrays, _, dynamic, statics = prepared
        graph, out_tree = self._trace(arrays, dynamic, statics)
        return Lowered(graph, self.options)

    def cache_info(self):
        """Counts of compiles, of calls served from the memory cache, and of specialisations
        loaded from the disk cache instead of compiled."""
        return dict(self._stats, memory_hits=self._stats["memory_hits"] + self._fast_hits)


def _arg_names(signature, static_argnums, treedef):
    """Readable names of the dynamic leaves, for the printed IR (``x``, ``params_w``)."""
    params = [n for i, n in enumerate(signature.parameters) if i not in static_argnums]
    args_tree, kwargs_tree = treedef[1]
    names = []
    for i, sub in enumerate(args_tree[1]):
        base = params[i] if i < len(params) else f"arg{i}"
        names += [f"{base}{p}" if p else base for p in pytree.leaf_paths(sub)]
    for key, sub in zip(kwargs_tree[1], kwargs_tree[2]):
        names += [f"{key}{p}" if p else key for p in pytree.leaf_paths(sub)]
    return [n.replace("[", "_").replace("]", "").replace("'", "") for n in names]


def _leaf_spec(leaf, position, treedef):
    """-> (array passed to native code, hashable specialisation key)."""
    t = type(leaf)
    if t is np.ndarray:
        a = leaf
    elif t is float:
        return np.asarray(leaf, np.float64), ("weak", "f")
    elif t is int:
        if -2**63 <= leaf < 2**63:
            return np.asarray(leaf, np.int64), ("weak", "i")
        if 0 <= leaf < 2**64:
            return np.asarray(leaf, np.uint64), ("weak", "u")
        raise OverflowError(f"Python int {leaf} does not fit in 64 bits")
    elif t is bool or t is np.bool_:
        return np.asarray(leaf, np.bool_), (np.dtype(bool), 0, (), True)
    elif isinstance(leaf, (np.generic, np.ndarray)):
        a = np.asarray(leaf)
    elif hasattr(leaf, "__cuda_array_interface__"):     # a CuPy array (device="gpu")
        if leaf.dtype not in _SUPPORTED:
            raise UnsupportedError(f"argument {_path(position, treedef)}: dtype {leaf.dtype} "
                                   "is not supported by lumen")
        return leaf, (leaf.dtype, leaf.ndim, _broadcast_pattern(leaf.shape),
                      bool(leaf.flags.c_contiguous))
    elif isinstance(leaf, complex):
        raise UnsupportedError(f"argument {position}: complex numbers are not supported by lumen")
    else:
        raise TypeError(f"argument {_path(position, treedef)} of a lumen.jit function must be a "
                        f"NumPy array, a Python or NumPy scalar, or a tuple/list/dict of them; "
                        f"got {type(leaf).__name__}")
    dtype = a.dtype
    if dtype not in _SUPPORTED:
        if dtype.kind == "c":
            raise UnsupportedError(f"argument {_path(position, treedef)}: complex arrays are not "
                                   "supported by lumen")
        if dtype.isnative or dtype.newbyteorder("=") not in _SUPPORTED:
            raise UnsupportedError(f"argument {_path(position, treedef)}: dtype {dtype} is not "
                                   "supported by lumen")
        a = a.astype(dtype.newbyteorder("="))
        dtype = a.dtype
    flags = a.flags
    if not flags.aligned:
        a = a.copy()
        flags = a.flags
    return a, (dtype, a.ndim, _broadcast_pattern(a.shape), flags.c_contiguous)


_patterns: dict = {}


def _broadcast_pattern(shape) -> tuple:
    """Which axes of ``shape`` have length 1, remembered per shape (a call with many arrays
    spent a third of its key-building time on these tuples)."""
    pattern = _patterns.get(shape)
    if pattern is None:
        if len(_patterns) >= 4096:
            _patterns.clear()
        pattern = _patterns[shape] = tuple([n == 1 for n in shape])
    return pattern


def int_range(n: int):
    """(bits of the narrowest signed type holding n, same for unsigned or None). When tracing
    checks a Python int argument against a narrow integer dtype (NEP 50: an OverflowError, or an
    exact comparison), the compiled function is specialised on this range."""
    signed = next((b for b in (8, 16, 32, 64) if -2 ** (b - 1) <= n < 2 ** (b - 1)), None)
    unsigned = next((b for b in (8, 16, 32, 64) if 0 <= n < 2 ** b), None)
    return signed, unsigned


def _path(position, treedef):
    """How the user would name dynamic leaf ``position`` (``0``, ``1[2]``, ``w['b']``)."""
    args_tree, kwargs_tree = treedef[1]
    paths = []
    for i, sub in enumerate(args_tree[1]):
        paths += [f"{i}{p}" for p in pytree.leaf_paths(sub)]
    for key, sub in zip(kwargs_tree[1], kwargs_tree[2]):
        paths += [f"{key}{p}" for p in pytree.leaf_paths(sub)]
    return paths[position] if position < len(paths) else str(position)


__all__ = ["jit", "Jitted", "TracingError"]
