"""`lumen.profile`: where the time of a compiled function goes, per kernel, matrix product and loop.

The function is compiled a second time with timing counters in its native code
(`lumen.codegen_llvm.profiling`): a separate `Jitted` whose options say ``profile``, so that the
profiled code has its own memory cache entries and its own disk cache key, and the function
itself keeps running uninstrumented code. The counters live in each loaded specialisation and
add up over calls; the table reads them, merging the rows of a node that several
specialisations share (a call with another dtype or layout compiles the program again).
"""
from __future__ import annotations

import functools
import inspect

from ..codegen_llvm import profiling
from ..errors import UnsupportedError
from .jit import Jitted, jit

#: What the table calls the bodies of a control node that has several (a node with one body
#: shows that body's rows right under its own, and its run count as steps).
_BODY_NAMES = {"cond": "condition", "body": "body", "vjp": "backward steps",
               "true": "true branch", "false": "false branch"}
_OUTSIDE = "outside nodes (argument checks, result copies)"
_MAX_WHAT = 60      # the widest ``what`` column: longer names are cut
#: `lumen.jit`'s options and their defaults
_JIT_DEFAULTS = {name: p.default for name, p in inspect.signature(jit).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY}


def profile(fn, **options):
    """Profile ``fn``, a NumPy function or a `lumen.jit` function: ``p = lumen.profile(f)``.

    ``p(*args)`` runs ``fn`` compiled as `lumen.jit` compiles it (``options`` are jit's
    keyword arguments, by default those of ``fn`` when it is jitted), with a clock read
    around each node of the optimised program that does work: fused kernels, matrix products
    (``gemm``, ``matmul``), loops and branches (``scan``, ``while_loop``, ``cond``) and their
    bodies' nodes. The results are the function's; the times add up over calls.

    ``print(p)`` or ``p.report()`` shows one row per node, in program order: what it is,
    how many times it ran, its total and mean time, its share of the time spent in compiled
    code, and the user's source line that created it. A loop's row holds its body's rows,
    indented, and says how many steps it made per call. A last row has the time spent outside
    every node (checking arguments, making results). ``p.stats()`` gives the same rows as
    dicts, ``p.reset()`` zeroes the counters (the code stays compiled).

    Timing costs two clock reads (~40 ns) per node run, so nodes inside loops with very short
    steps read slower than they run unprofiled; the function itself (``fn``) is not affected:
    profiled code is compiled and cached apart from it.

    Example::

        p = lumen.profile(train_step)
        for batch in batches:
            params = p(params, *batch)
        p.report()
    """
    if isinstance(fn, Jitted):
        options = {**fn.options, "static_argnums": tuple(fn.static_argnums),
                   "static_argnames": tuple(fn.static_argnames), **options}
        del options["profile"]
        fn = fn.fn
    return Profiled(fn, {**_JIT_DEFAULTS, **options})


class Profiled:
    """A function compiled with timing counters (`profile`)."""

    def __init__(self, fn, options):
        if options["device"] != "cpu":
            raise UnsupportedError("lumen.profile times code compiled for the CPU; profile "
                                   "the function with device='cpu'")
        functools.update_wrapper(self, fn)
        self._jitted = Jitted(fn, **options, profile=True)

    def __call__(self, *args, **kwargs):
        return self._jitted(*args, **kwargs)

    def lower(self, *args, **kwargs):
        """The compilation stages of the profiled code (its ``.llvm_ir()`` shows the counters)."""
        return self._jitted.lower(*args, **kwargs)

    def cache_info(self):
        return self._jitted.cache_info()

    def reset(self):
        """Zero the counters of every specialisation compiled so far."""
        for loaded in self._loaded():
            profiling.reset(loaded)

    def stats(self) -> list[dict]:
        """The table's rows, in program order, as dicts: ``what`` (``kernel tanh f32[?,?]``,
        ``gemm f32[?,?]``, ``scan (100 steps)``), ``kind`` (the primitive's kind: ``kernel``,
        ``linalg``, ``control``, ... ; ``body`` for a loop or branch body, ``other`` for the
        time outside every node), ``op`` (the primitive), ``loc`` (``file.py:LINE`` or None),
        ``depth`` (0 at the top level, 1 inside a loop ...), ``calls`` (times run), ``time``
        (seconds in all), ``mean`` (seconds per run), ``share`` (of the total time, 0 to 1;
        the depth-0 rows add up to 1) and ``steps`` (a loop's mean steps per call, else None).
        """
        return self._rows()[0]

    def _rows(self):
        """-> (`stats` rows, calls, nanoseconds in compiled code), from one reading."""
        root, calls, total_ns = self._tree()
        rows = []
        for row in root.children.values():
            _flatten(row, 0, rows)
        outside = total_ns - sum(r.ns for r in root.children.values())
        if calls:
            rows.append(dict(what=_OUTSIDE, kind="other", op=None, loc=None, depth=0,
                             calls=calls, ns=outside, steps=None))
        for r in rows:
            ns = r.pop("ns")
            r.update(time=ns * 1e-9, mean=ns * 1e-9 / r["calls"] if r["calls"] else 0.0,
                     share=ns / total_ns if total_ns else 0.0)
        return rows, calls, total_ns

    def report(self, file=None):
        """Print the table (to ``file``, by default standard output)."""
        print(self.table(), file=file)

    def table(self) -> str:
        """The table `report` prints."""
        name = getattr(self, "__name__", "function")
        rows, calls, total_ns = self._rows()
        if not calls:
            return f"lumen.profile({name}): no calls yet"
        summary = (f"lumen.profile({name}): {calls} call{'s' * (calls != 1)}, "
                   f"{_time(total_ns * 1e-9)} in compiled code, "
                   f"{_time(total_ns * 1e-9 / calls)} per call")
        lines = [summary]
        whats = [_clip("  " * r["depth"] + r["what"]) for r in rows]
        width = max(len(w) for w in whats + ["what"])
        lines.append(f"{'what':<{width}}  {'calls':>8}  {'total':>9}  {'mean':>9}  {'share':>6}  line")
        for w, r in zip(whats, rows):
            lines.append(f"{w:<{width}}  {r['calls']:>8}  {_time(r['time']):>9}  "
                         f"{_time(r['mean']) if r['calls'] else '-':>9}  "
                         f"{100 * r['share']:>5.1f}%  {r['loc'] or ''}".rstrip())
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def _loaded(self):
        return [entry.executable.loaded for entries in self._jitted._cache.values()
                for entry in entries]

    def _tree(self):
        """The specialisations' records merged into one tree: a row per node, keyed among its
        siblings by what it is, its line and its rank among equal ones. -> (root, calls, ns)."""
        root = _Row(None)
        calls = total_ns = 0
        for loaded in self._loaded():
            records = profiling.read(loaded)
            rows, ranks = {}, {}
            for index, record in enumerate(records):
                if record["kind"] == "call":
                    calls += record["count"]
                    total_ns += record["ns"]
                    continue
                parent = rows.get(record["parent"], root)
                what = (record["what"], record["loc"])
                rank = ranks[parent, what] = ranks.get((parent, what), -1) + 1
                row = parent.children.setdefault((*what, rank), _Row(record))
                row.ns += record["ns"]
                row.count += record["count"]
                rows[index] = row
        return root, calls, total_ns


class _Row:
    __slots__ = ("children", "count", "ns", "record")

    def __init__(self, record):
        self.record, self.ns, self.count, self.children = record, 0, 0, {}


def _flatten(row, depth, out):
    """Append ``row`` and its descendants as stats dicts (with ``ns``, not yet seconds). A
    node with a single body lists that body's rows as its own; with several, each body is a
    row of its own."""
    r = row.record
    bodies = [c for c in row.children.values() if c.record["kind"] == "body"]
    steps = next((c.count / row.count for c in bodies if c.record["what"] == "body" and row.count),
                 None)
    what = r["what"] if steps is None else f"{r['what']} ({_steps(steps)} steps)"
    if r["kind"] == "body":
        what = _BODY_NAMES.get(what, what)
    out.append(dict(what=what, kind=r["kind"], op=r["op"], loc=r["loc"], depth=depth,
                    calls=row.count, ns=row.ns, steps=steps))
    if len(bodies) == 1:
        children = list(bodies[0].children.values())
    else:
        children = list(row.children.values())
    for child in children:
        _flatten(child, depth + 1, out)


def _steps(steps: float) -> str:
    return str(int(steps)) if steps == int(steps) else f"{steps:.1f}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_WHAT else text[:_MAX_WHAT - 1] + "…"


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if unit != "s" else f"{seconds:.3f} s"
    return f"{seconds * 1e9:.0f} ns"
