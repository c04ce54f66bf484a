"""Work buffers kept from one call of a compiled function to the next.

A fresh multi-megabyte buffer costs a page fault per 4 KiB on first touch, every call (a
fifth of an RNN gradient's time at H = 1000). Smaller ones can too: glibc returns the top of
its heap to the kernel once more than 128 KiB is free there, so a call that frees its
80 KiB buffers gives the pages back and the next call faults them in again. The BiLSTM-CRF
step ran in 3.6 ms instead of 1.9 in a process whose heap nothing else had grown (one that
loaded its code from the disk cache). Each top-level or loop-preheader buffer site of a
function gets a global cell; a call takes the cell's buffer with an atomic exchange (so
concurrent calls never share one: a call that finds the cell empty allocates) and puts it
back on exit. Buffers from one page (below that, malloc's bins serve them without the
kernel) to 256 MiB are kept; larger ones are not worth holding on to between calls.

A kept block starts with a 64-byte header holding its capacity; the data follows it. Fresh
blocks of 4 MiB or more ask for transparent huge pages on their 2 MiB-aligned interior, as
NumPy does for its arrays.
"""
from __future__ import annotations

import llvmlite.ir as ir

from .llvmtypes import i8p, i32, i64

HEADER = 64
KEEP_MIN, KEEP_MAX = 1 << 12, 1 << 28
HUGE_BUFFER, HUGE_PAGE, MADV_HUGEPAGE = 1 << 22, 1 << 21, 14


def new_cell(module: ir.Module, name: str) -> ir.GlobalVariable:
    """A module-private cell holding the block kept by one buffer site (null: none)."""
    cell = ir.GlobalVariable(module, i8p, module.get_unique_name(f"kept.{name}"))
    cell.linkage = "internal"
    cell.initializer = ir.Constant(i8p, None)
    return cell


def take_function(ctx) -> ir.Function:
    """``i8* take(i8** cell, i64 nbytes)``: the kept block's data if it is big enough, else a
    fresh block's (null when out of memory)."""
    fn = ctx.module.globals.get("lumen.buffer_take")
    if fn is not None:
        return fn
    fn = ir.Function(ctx.module, ir.FunctionType(i8p, [i8p.as_pointer(), i64]), "lumen.buffer_take")
    fn.linkage = "internal"
    fn.attributes.add("noinline")     # called at every buffer site: once in the object code
    cell, nbytes = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    free = ctx.function("free", ir.VoidType(), [i8p])
    kept = b.atomic_rmw("xchg", cell, ir.Constant(i8p, None), "acq_rel")
    with b.if_then(b.icmp_unsigned("!=", kept, ir.Constant(i8p, None))):
        capacity = b.load(b.bitcast(kept, i64.as_pointer()))
        with b.if_then(b.icmp_unsigned(">=", capacity, nbytes)):
            b.ret(b.gep(kept, [ir.Constant(i64, HEADER)]))
        b.call(free, [kept])
    total = b.add(nbytes, ir.Constant(i64, HEADER))
    block = b.call(ctx.function("malloc", i8p, [i64]), [total])
    with b.if_then(b.icmp_unsigned("==", block, ir.Constant(i8p, None))):
        b.ret(block)
    b.store(nbytes, b.bitcast(block, i64.as_pointer()))
    advise_huge_pages(ctx, b, block, total)
    b.ret(b.gep(block, [ir.Constant(i64, HEADER)]))
    return fn


def release_function(ctx) -> ir.Function:
    """``void release(i8** slot, i8** cell)``: free the buffer in ``slot`` and clear the slot;
    with a ``cell``, a block of the kept sizes goes back there instead (freeing the one another
    call put there meanwhile).

    Every buffer is released through its slot's address, so the slots stay in memory: promoted
    to registers, each slot became a phi at the cleanup block over every way out of the
    function (an error check per allocation), and those phis alone took a sixth of the compile
    time of an MLP training step."""
    fn = ctx.module.globals.get("lumen.buffer_release")
    if fn is not None:
        return fn
    fn = ir.Function(ctx.module, ir.FunctionType(ir.VoidType(), [i8p.as_pointer()] * 2),
                     "lumen.buffer_release")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    slot, cell = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    free = ctx.function("free", ir.VoidType(), [i8p])
    null = ir.Constant(i8p, None)
    data = b.load(slot)
    b.store(null, slot)
    with b.if_then(b.icmp_unsigned("==", data, null)):
        b.ret_void()
    with b.if_then(b.icmp_unsigned("==", cell, ir.Constant(cell.type, None))):
        b.call(free, [data])
        b.ret_void()
    block = b.gep(data, [ir.Constant(i64, -HEADER)])
    capacity = b.load(b.bitcast(block, i64.as_pointer()))
    small = b.icmp_unsigned("<", capacity, ir.Constant(i64, KEEP_MIN))
    large = b.icmp_unsigned(">", capacity, ir.Constant(i64, KEEP_MAX))
    with b.if_then(b.or_(small, large)):
        b.call(free, [block])
        b.ret_void()
    old = b.atomic_rmw("xchg", cell, block, "acq_rel")
    with b.if_then(b.icmp_unsigned("!=", old, null)):
        b.call(free, [old])
    b.ret_void()
    return fn


def advise_huge_pages(ctx, b, block, nbytes):
    """Ask for transparent huge pages on the 2 MiB-aligned interior of a block of 4 MiB or
    more (``ctx`` declares ``madvise``)."""
    with b.if_then(b.icmp_unsigned(">=", nbytes, ir.Constant(i64, HUGE_BUFFER))):
        addr = b.ptrtoint(block, i64)
        start = b.and_(b.add(addr, ir.Constant(i64, HUGE_PAGE - 1)), ir.Constant(i64, -HUGE_PAGE))
        length = b.and_(b.sub(b.add(addr, nbytes), start), ir.Constant(i64, -HUGE_PAGE))
        with b.if_then(b.icmp_signed(">", length, ir.Constant(i64, 0))):
            madvise = ctx.function("madvise", i32, [i8p, i64, i32])
            b.call(madvise, [b.inttoptr(start, i8p), length, ir.Constant(i32, MADV_HUGEPAGE)])
