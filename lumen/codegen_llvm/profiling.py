"""Timing counters compiled into a program for `lumen.profile` (the codegen half; the table is
`lumen.frontend.profile`).

With the ``profile`` option, `program` times each node whose lowering loops, branches or calls
out (a kernel, a BLAS call, a scan, a scatter...): straight-line code (views, scalar arithmetic)
costs less than the two clock reads that would time it, and is left out. Loop and branch bodies
are timed as a whole each time they run, and their nodes like the top level's, so a loop's row
can show what its time is made of. Record 0 times the whole call, from the argument checks to
the results, so that the table can say what lies outside every node.

The module holds two globals that Python reads once the code is loaded (`read`):

- ``lumen_profile_counters``: per record, nanoseconds spent and times run (``[2 x i64]``),
  added atomically, so that calls from several threads do not lose counts;
- ``lumen_profile_records``: what each record is, as NUL-terminated JSON (``what``, ``kind``,
  ``op``, ``loc``, ``parent``: the index of the enclosing record, None at the top level), so
  that code loaded from the disk cache, whose graph is not at hand, still describes itself.

The clock is ``clock_gettime(CLOCK_MONOTONIC)``: nanoseconds, read in ~20 ns through the vDSO.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import time

import llvmlite.ir as ir

from ..ir.ops import BODY_PARAMS, CONTROL, OPS
from ..ir.ops.kernel import KERNEL_OPS
from .llvmtypes import i8, i32, i64

COUNTERS, RECORDS = "lumen_profile_counters", "lumen_profile_records"
#: the most scalar op names a kernel's row lists before an ellipsis
_KERNEL_OPS_SHOWN = 5
_TIMESPEC = ir.LiteralStructType([i64, i64])      # struct timespec {tv_sec, tv_nsec} (64-bit)


class _Region:
    """A node or a body being lowered; it gets a record index once it is known to be timed
    (at its end, or earlier when something timed inside it needs its index as a parent)."""

    __slots__ = ("index", "info", "node", "parent")

    def __init__(self, info, parent, node=None):
        self.info, self.parent, self.node, self.index = info, parent, node, None


class Profiler:
    """The counters of one program being lowered (``ctx.profiler``); `finish` completes the
    module once every node is lowered and the number of records is known."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.records = [dict(what=ctx.module.name, kind="call", op=None, loc=None, parent=None)]
        self._open: list = []           # the regions being lowered, innermost last
        self._bodies_seen: dict = {}    # control node region -> body keys lowered so far
        module = ctx.module
        self._now = ir.Function(module, ir.FunctionType(i64, []), "lumen_profile_now")
        self._stop = ir.Function(module, ir.FunctionType(ir.VoidType(), [i32, i64]),
                                 "lumen_profile_stop")
        for fn in (self._now, self._stop):
            fn.linkage = "internal"
        self._call_start = ctx.builder.call(self._now, [])

    def _index(self, region) -> int:
        if region.index is None:
            parent = None if region.parent is None else self._index(region.parent)
            region.index = len(self.records)
            self.records.append(dict(region.info, parent=parent))
        return region.index

    @contextlib.contextmanager
    def node(self, node):
        """Time the code lowered inside for ``node``, if it does work (see the module doc)."""
        region = _Region(dict(what=describe(node), kind=OPS[node.op].kind.value, op=node.op,
                              loc=node.loc), self._open[-1] if self._open else None, node)
        with self._timed(region, always=False):
            yield

    @contextlib.contextmanager
    def body(self, graph):
        """Time one run of a loop or branch body of the control node being lowered."""
        owner = self._open[-1]
        seen = self._bodies_seen.setdefault(owner, [])
        keys = [k for k in BODY_PARAMS[owner.node.op] if owner.node.params[k] is graph]
        key = next((k for k in keys if k not in seen), keys[-1] if keys else "body")
        seen.append(key)
        region = _Region(dict(what=key, kind="body", op=None, loc=owner.info["loc"]), owner)
        with self._timed(region, always=True):
            yield

    @contextlib.contextmanager
    def _timed(self, region, always):
        """Emit the code inside; then, if it is to be timed, a clock read before it (inserted
        where the builder stood) and one after it that adds to the region's counters."""
        ctx = self.ctx
        block = ctx.builder.block
        before = block.instructions[-1] if block.instructions else None
        n_blocks = len(ctx.fn.blocks)
        self._open.append(region)
        yield
        self._open.pop()
        start = block.instructions.index(before) + 1 if before is not None else 0
        worked = region.index is not None or len(ctx.fn.blocks) > n_blocks or any(
            isinstance(i, ir.CallInstr) for i in block.instructions[start:])
        if not (always or worked):
            return
        at = ir.IRBuilder(block)
        if before is None:
            at.position_at_start(block)
        else:
            at.position_after(before)
        t0 = at.call(self._now, [])
        # the insertion moved the block's contents past the builder's place: lowering code
        # appends, so it goes back to the end of its block
        ctx.builder.position_at_end(ctx.builder.block)
        ctx.builder.call(self._stop, [ir.Constant(i32, self._index(region)), t0])

    def finish(self):
        """Stop the whole call's clock (at the builder, after the results are made) and define
        the counters, the record descriptions and the clock functions."""
        ctx = self.ctx
        ctx.builder.call(self._stop, [ir.Constant(i32, 0), self._call_start])
        module = ctx.module
        table_type = ir.ArrayType(ir.ArrayType(i64, 2), len(self.records))
        counters = ir.GlobalVariable(module, table_type, COUNTERS)
        counters.initializer = ir.Constant(table_type, None)
        text = bytearray(json.dumps(self.records).encode()) + b"\0"
        text_type = ir.ArrayType(i8, len(text))
        records = ir.GlobalVariable(module, text_type, RECORDS)
        records.global_constant, records.initializer = True, ir.Constant(text_type, text)

        b = ir.IRBuilder(self._now.append_basic_block())
        clock = ctx.function("clock_gettime", i32, [i32, _TIMESPEC.as_pointer()])
        spec = b.alloca(_TIMESPEC)
        b.call(clock, [ir.Constant(i32, time.CLOCK_MONOTONIC), spec])
        seconds, nanoseconds = (b.load(b.gep(spec, [ir.Constant(i32, 0), ir.Constant(i32, k)]))
                                for k in (0, 1))
        b.ret(b.add(b.mul(seconds, ir.Constant(i64, 1_000_000_000)), nanoseconds))

        b = ir.IRBuilder(self._stop.append_basic_block())
        record, t0 = self._stop.args
        elapsed = b.sub(b.call(self._now, []), t0)
        for field, amount in ((0, elapsed), (1, ir.Constant(i64, 1))):
            slot = b.gep(counters, [ir.Constant(i32, 0), record, ir.Constant(i32, field)])
            b.atomic_rmw("add", slot, amount, "monotonic")
        b.ret_void()


def node_timer(ctx, node):
    """Time ``node``'s lowering when the program is profiled."""
    return contextlib.nullcontext() if ctx.profiler is None else ctx.profiler.node(node)


def body_timer(ctx, graph):
    """Time each run of body ``graph`` when the program is profiled."""
    return contextlib.nullcontext() if ctx.profiler is None else ctx.profiler.body(graph)


def describe(node) -> str:
    """What a row calls ``node``: ``kernel subtract·exp f32[?,?]`` (its scalar ops, then its
    reduction and epilogue), ``gemm f32[?,?]``, ``scan`` (a control node: the table adds its
    steps); a `kernel_matvec` adds ``+ matvec`` and the product's type, a `kernel_map_reduce`
    ``+ map`` and its kept values' type."""
    if node.op in KERNEL_OPS:
        p = node.params
        names = [s.op for s in p["body"].ops]
        if p.get("reduce") is not None:
            names.append(p["reduce"].op)
        if p.get("epilogue") is not None:
            names += [s.op for s in p["epilogue"].ops]
        names = list(dict.fromkeys(names)) or ["copy"]
        if len(names) > _KERNEL_OPS_SHOWN:
            names = names[:_KERNEL_OPS_SHOWN] + ["…"]
        text = f"kernel {'·'.join(names)} {node.outputs[0].type.text()}"
        if node.op == "kernel_matvec":
            text += f" + matvec {node.outputs[1].type.text()}"
        elif node.op == "kernel_map_reduce":
            text += f" + map {node.outputs[1].type.text()}"
        return text
    if len(node.outputs) == 1 and node.op not in CONTROL:
        return f"{node.op} {node.out.type.text()}"
    return node.op


def read(loaded) -> list[dict] | None:
    """The records of a loaded module, each with its ``ns`` and ``count`` so far; None for code
    compiled without profiling."""
    address = loaded.global_address(RECORDS)
    if not address:
        return None
    records = json.loads(ctypes.string_at(address))
    counters = _counters(loaded, len(records))
    return [dict(r, ns=counters[2 * k], count=counters[2 * k + 1]) for k, r in enumerate(records)]


def reset(loaded) -> None:
    """Zero the counters of a loaded profiled module."""
    n = len(json.loads(ctypes.string_at(loaded.global_address(RECORDS))))
    ctypes.memset(ctypes.addressof(_counters(loaded, n)), 0, 16 * n)


def _counters(loaded, n):
    return (ctypes.c_int64 * (2 * n)).from_address(loaded.global_address(COUNTERS))
