"""Parallel loops through the OpenMP runtime (DESIGN.md decision 5).

A loop over ``n`` units (the outer iterations of a kernel, or the chunks of a reduction) becomes
a *region*: a function ``void region(i8 *captures)`` of the module, which ``GOMP_parallel`` runs
on every thread of a team; each thread takes a static block of the units, found with
``omp_get_thread_num`` / ``omp_get_num_threads``. The region's code is emitted as if it were
inline, with the entry function's values; afterwards each value it uses from the entry (base
pointers, strides, sizes, the error-code slot) is *captured*: the entry stores it into a struct
and the region loads it back in its first block. The lowering code stays the same whether a loop
runs inline or in a region, and no value can be forgotten.

When the work is under the fork threshold (``lumen_fork_work``: `THRESHOLD`, or more where
waking the team costs more, symbols.py), a loop of cheap operations moves less data than
``lumen_fork_bytes`` (where waking is slow, another core fetches the data far slower than the
calling core reads it again), one thread is asked for or there is a single unit, the entry
calls the region itself (thread 0 of a team of 1: every unit): the same code, the same
numbers, no fork. The thresholds and the thread count are read at run time
(``lumen_num_threads``), so neither the compiled code nor its cache key depends on them.

Nothing in a region touches a Python object or the C-API: an error flagged there (an index out of
bounds, a negative integer power) goes to the region's own code slot, merged into the entry's by
an atomic max when its units are done; the entry raises it after the region, as for a loop.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import llvmlite.ir as ir
from llvmlite.ir.instructions import ExtractValue, GEPInstr, InsertValue

from ..passes.fuse import CHEAP_OPS
from .llvmtypes import i8p, i32, i64

#: Work (points x `element_cost`) under which a loop runs on the calling thread alone: there,
#: waking the team (a few microseconds) costs more than the threads save. Where waking it costs
#: more, the threshold the code compares with at run time is higher (``lumen_fork_work``).
THRESHOLD = 1 << 17
#: Cost of one scalar op outside `CHEAP_OPS` (exp, tanh, division...) against a cheap one's 1.
EXPENSIVE_OP = 8
#: Reductions of a whole space are summed in chunks of about this much work, at most
#: MAX_CHUNKS of them (so that many threads can share them).
CHUNK_WORK, MAX_CHUNKS = 1 << 13, 64

_REGION = ir.FunctionType(ir.VoidType(), [i8p])
#: The name every region's function starts with (`module_split` moves them between modules).
REGION_NAME = "lumen_region"
#: The regions whose loops follow indices (gathers, scatters, iota): LLVM's vectorisers find
#: nothing to widen there, and `target` compiles them with the glue's short pipeline.
PLAIN_REGION_NAME = "lumen_plain_region"
#: The same for the strided copy functions (`loops.strided_copy_function`), loops too.
COPY_NAME = "lumen.copy."


def element_cost(body) -> int:
    """Work per point of a kernel body: one for the loads and stores, plus its scalar ops."""
    return 1 + sum(1 if s.op in CHEAP_OPS else EXPENSIVE_OP for s in body.ops)


#: Bytes a point of a loop moves at least (a float32 read, one written).
MIN_BYTES_PER_POINT = 8


class Work(NamedTuple):
    """A loop's work (an i64: points x cost), and for a loop of cheap operations, whose time is
    its memory traffic, the bytes it moves at least (an i64; None for the others)."""
    amount: object
    data_bytes: object


def work_of(ctx, space_vals, cost):
    """The `Work` of a loop over ``space_vals`` at ``cost`` per point, or None when the loop is
    not to run in parallel: ``cost`` None, the function compiled with ``parallel=False``, or
    sizes fixed at compile time that make too little work."""
    if cost is None or not ctx.parallel or not space_vals:
        return None
    if all(isinstance(v, ir.Constant) for v in space_vals):     # sizes known when compiling
        if cost * math.prod(v.constant for v in space_vals) < THRESHOLD:
            return None
    points = ctx.count(space_vals)
    data = ctx.builder.mul(points, ctx.i64(MIN_BYTES_PER_POINT)) if cost <= EXPENSIVE_OP \
        else None
    return Work(ctx.builder.mul(points, ctx.i64(cost)), data)


def parallel_range(ctx, n, emit, work=None, vectorise=True):
    """Emit the loop over units [0, n) that ``emit(lo, hi)`` writes for units [lo, hi) (with
    i64 bounds) in a region, whose units the threads split when ``work`` reaches `THRESHOLD`;
    without ``work`` the entry calls it on its own thread. Either way the loop leaves the
    entry, which is glue optimised by a short pipeline (`target`): loops are where LLVM's
    vectorisers pay, except those that follow indices (``vectorise=False``:
    `PLAIN_REGION_NAME`). Inside a region already, the loop is emitted where the builder is."""
    if ctx.fn is not ctx.entry:
        emit(ctx.i64(0), n)
        return
    name = REGION_NAME if vectorise else PLAIN_REGION_NAME
    fn = ir.Function(ctx.module, _REGION, ctx.module.get_unique_name(name))
    fn.linkage = "internal"
    shared_errcode, n_flags = ctx.errcode, len(ctx.pending_errors)
    with ctx.function_body(fn):
        b = ctx.builder
        thread = b.sext(b.call(ctx.function("lumen_omp_get_thread_num", i32, []), []), i64)
        team = b.sext(b.call(ctx.function("lumen_omp_get_num_threads", i32, []), []), i64)
        emit(*block_bounds(ctx, thread, team, n))
        if len(ctx.pending_errors) > n_flags:
            code = b.load(ctx.errcode)
            with b.if_then(b.icmp_signed("!=", code, ir.Constant(i32, 0))):
                b.atomic_rmw("max", shared_errcode, code, "monotonic")
        b.ret_void()
        captured = _capture(fn)
    _launch(ctx, fn, captured, n, work)


def block_bounds(ctx, k, parts, n):
    """Bounds [lo, hi) of block ``k`` when [0, n) is cut into ``parts`` near-equal blocks."""
    b = ctx.builder
    lo = b.sdiv(b.mul(n, k), parts)
    hi = b.sdiv(b.mul(n, b.add(k, ctx.i64(1))), parts)
    return lo, hi


def chunk_count(ctx, units, work):
    """Into how many chunks a reduction over ``units`` is cut: one per `CHUNK_WORK` of work, at
    least 1, at most `MAX_CHUNKS` and ``units``. It depends on the sizes only, never on the
    thread count, so the partial results and the rounding of their sum do not either."""
    b = ctx.builder

    def clamp(x, bound, keep_smaller):
        return b.select(b.icmp_signed("<" if keep_smaller else ">", x, bound), x, bound)
    count = clamp(b.sdiv(work.amount, ctx.i64(CHUNK_WORK)), ctx.i64(MAX_CHUNKS), True)
    return clamp(clamp(count, units, True), ctx.i64(1), False)


def _launch(ctx, fn, captured, n, work):
    """In the entry: store the captured values, then run the region on the team, or call it
    on this thread alone: always without ``work``, and where its work is under the fork
    threshold, or a loop of cheap operations moves less data than ``lumen_fork_bytes``."""
    b = ctx.builder
    data = ir.Constant(i8p, None)
    if captured:
        struct = ctx.alloca(ir.LiteralStructType([v.type for v in captured]), "captures")
        for k, v in enumerate(captured):
            b.store(v, b.gep(struct, [ir.Constant(i32, 0), ir.Constant(i32, k)]))
        data = b.bitcast(struct, i8p)
    if work is None:
        b.call(fn, [data])
        return
    threads = b.load(run_time_setting(ctx.module, "lumen_num_threads", i32))
    fork = b.and_(b.icmp_signed(">=", work.amount,
                                b.load(run_time_setting(ctx.module, "lumen_fork_work", i64))),
                  b.and_(b.icmp_signed(">", threads, ir.Constant(i32, 1)),
                         b.icmp_signed(">", n, ctx.i64(1))))
    if work.data_bytes is not None:
        fork = b.and_(fork, b.icmp_signed(">=", work.data_bytes, b.load(
            run_time_setting(ctx.module, "lumen_fork_bytes", i64))))
    run = ctx.function("lumen_GOMP_parallel", ir.VoidType(), [fn.type, i8p, i32, i32])
    with b.if_else(fork) as (team, alone):
        with team:
            b.call(run, [fn, data, threads, ir.Constant(i32, 0)])
        with alone:
            b.call(fn, [data])


def run_time_setting(module, name, ty):
    """The run-time setting ``name`` (symbols.py: the thread count, the fork threshold), an
    external global of ``module``, declared once."""
    var = module.globals.get(name)
    if var is None:
        var = ir.GlobalVariable(module, ty, name=name)
        var.linkage = "external"
    return var


# -- capture ----------------------------------------------------------------------------------

def _capture(fn) -> list:
    """Make ``fn`` load each value it uses from another function from the struct its argument
    points to (loads appended to its first block); returns those values, in struct order."""
    outside = {}
    for instr in _instructions(fn):
        for v in _operands(instr):
            if _defined_outside(v, fn):
                outside.setdefault(id(v), v)
    values = list(outside.values())
    if not values:
        return values
    b = ir.IRBuilder(fn.blocks[0])
    struct = b.bitcast(fn.args[0], ir.LiteralStructType([v.type for v in values]).as_pointer())
    loaded = {id(v): b.load(b.gep(struct, [ir.Constant(i32, 0), ir.Constant(i32, k)]))
              for k, v in enumerate(values)}
    for instr in _instructions(fn):
        for v in _operands(instr):
            if id(v) in loaded:
                _replace(instr, v, loaded[id(v)])
    return values


def _instructions(fn):
    return [instr for block in fn.blocks for instr in block.instructions]


def _operands(instr):
    if isinstance(instr, ir.PhiInstr):
        return [v for v, _ in instr.incomings]
    return list(instr.operands)


def _defined_outside(v, fn) -> bool:
    if isinstance(v, ir.Instruction):
        return v.function is not fn
    return isinstance(v, ir.Argument) and v.parent is not fn


def _replace(instr, old, new):
    instr.replace_usage(old, new)
    # the instructions that print operands kept in attributes of their own
    if isinstance(instr, GEPInstr):
        instr.pointer, instr.indices = instr.operands[0], list(instr.operands[1:])
    elif isinstance(instr, ExtractValue):
        instr.aggregate = instr.operands[0]
    elif isinstance(instr, InsertValue):
        instr.aggregate, instr.value = instr.operands
