"""Memory for large result arrays, reused once the caller drops the arrays.

A fresh 64 MiB result costs its first touch: 16,384 page faults and the kernel zeroing every
page, ~5 ms here, as long as computing ``a + 1`` into it (NumPy's ``np.add(a, 1)`` takes
11.0 ms, ``np.add(a, 1, out=o)`` 6.1). So results from 1 MiB to 256 MiB get their memory from
a small pool: the array's base is a capsule whose destructor puts the block back when the
last reference to the array goes, and the next call's result of a similar size takes it,
already mapped. At most `SLOTS` blocks wait in the pool; a block taken serves a result of
between half and all of its capacity. Smaller results come from ``PyArray_Empty`` as before.

The functions are compiled once per process into a module that is never unloaded (a capsule
may outlive every compiled function; `symbols.compile_for_good`) and are called by name,
``lumen_result_array``, so the object code of compiled functions stays free of addresses.
"""
from __future__ import annotations

import llvmlite.ir as ir

from .buffer_cache import HEADER, KEEP_MAX, advise_huge_pages
from .context import ALIGNED, C_CONTIGUOUS, WRITEABLE
from .llvmtypes import i8p, i32, i64, i64p

SLOTS = 4
#: Results from this size on come from the pool (smaller ones would take its few slots from
#: the large results it is for).
POOL_MIN = 1 << 20
#: The flags of a new result array
_CARRAY = C_CONTIGUOUS | ALIGNED | WRITEABLE
NAME = "lumen_result_array"


class _Declarations:
    """Externals of the pool module, declared once (the interface `advise_huge_pages` uses)."""

    def __init__(self, module):
        self.module = module

    def function(self, name, ret, args):
        fn = self.module.globals.get(name)
        return fn if fn is not None else ir.Function(self.module, ir.FunctionType(ret, args), name)


def _const(n):
    return ir.Constant(i64, n)


def _null():
    return ir.Constant(i8p, None)


def _put_back(ext, b, slots, block):
    """Store ``block`` in the first empty slot, or free it when every slot holds one."""
    for k in range(SLOTS):
        slot = b.gep(slots, [_const(0), _const(k)])
        swapped = b.extract_value(b.cmpxchg(slot, _null(), block, "acq_rel", "monotonic"), 1)
        with b.if_then(swapped):
            b.ret_void()
    b.call(ext.function("free", ir.VoidType(), [i8p]), [block])
    b.ret_void()


def _release(ext, slots) -> ir.Function:
    """``void release(capsule)``: the capsule destructor, giving the block back."""
    fn = ir.Function(ext.module, ir.FunctionType(ir.VoidType(), [i8p]), "lumen_result_release")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    get = ext.function("PyCapsule_GetPointer", i8p, [i8p, i8p])
    _put_back(ext, b, slots, b.call(get, [fn.args[0], _null()]))
    return fn


def _give_back(ext, slots) -> ir.Function:
    fn = ir.Function(ext.module, ir.FunctionType(ir.VoidType(), [i8p]), "lumen_result_give_back")
    fn.linkage = "internal"
    _put_back(ext, ir.IRBuilder(fn.append_basic_block("entry")), slots, fn.args[0])
    return fn


def _take(ext, slots) -> ir.Function:
    """``i8* take(i64 nbytes)``: a pooled block of capacity in [nbytes, 2 nbytes], else a fresh
    64-byte aligned one (null when out of memory). The capacity is in the block's header."""
    fn = ir.Function(ext.module, ir.FunctionType(i8p, [i64]), "lumen_result_take")
    fn.linkage = "internal"
    nbytes = fn.args[0]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    give_back = ext.module.globals["lumen_result_give_back"]
    for k in range(SLOTS):
        block = b.atomic_rmw("xchg", b.gep(slots, [_const(0), _const(k)]), _null(), "acq_rel")
        with b.if_then(b.icmp_unsigned("!=", block, _null())):
            capacity = b.load(b.bitcast(block, i64p))
            fits = b.and_(b.icmp_unsigned(">=", capacity, nbytes),
                          b.icmp_unsigned("<=", capacity, b.shl(nbytes, _const(1))))
            with b.if_then(fits):
                b.ret(block)
            b.call(give_back, [block])
    total = b.and_(b.add(nbytes, _const(HEADER + 63)), _const(-64))
    block = b.call(ext.function("aligned_alloc", i8p, [i64, i64]), [_const(64), total])
    with b.if_then(b.icmp_unsigned("==", block, _null())):
        b.ret(block)
    b.store(nbytes, b.bitcast(block, i64p))
    advise_huge_pages(ext, b, block, total)
    b.ret(block)
    return fn


def _result_array(ext, take, give_back, release):
    """``PyObject* lumen_result_array(i32 nd, i64* dims, PyArray_Descr* descr, i64 nbytes)``: a
    new C-contiguous array (``descr``'s reference is stolen, as by ``PyArray_Empty``); null
    with a Python exception set on failure."""
    fn = ir.Function(ext.module, ir.FunctionType(i8p, [i32, i64p, i8p, i64]), NAME)
    nd, dims, descr, nbytes = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    outside = b.or_(b.icmp_unsigned("<", nbytes, _const(POOL_MIN)),
                    b.icmp_unsigned(">", nbytes, _const(KEEP_MAX)))
    with b.if_then(outside):
        empty = ext.function("lumen_PyArray_Empty", i8p, [i32, i64p, i8p, i32])
        b.ret(b.call(empty, [nd, dims, descr, ir.Constant(i32, 0)]))
    block = b.call(take, [nbytes])
    with b.if_then(b.icmp_unsigned("==", block, _null())):
        b.call(ext.function("Py_DecRef", ir.VoidType(), [i8p]), [descr])
        b.ret(b.call(ext.function("PyErr_NoMemory", i8p, []), []))
    array_type = ir.GlobalVariable(ext.module, ir.IntType(8), "lumen_PyArray_Type")
    new = ext.function("lumen_PyArray_NewFromDescr", i8p,
                       [i8p, i8p, i32, i64p, i64p, i8p, i32, i8p])
    data = b.gep(block, [_const(HEADER)])
    arr = b.call(new, [array_type, descr, nd, dims, ir.Constant(i64p, None), data,
                       ir.Constant(i32, _CARRAY), _null()])
    with b.if_then(b.icmp_unsigned("==", arr, _null())):
        b.call(give_back, [block])
        b.ret(arr)
    capsule = b.call(ext.function("PyCapsule_New", i8p, [i8p, i8p, i8p]),
                     [block, _null(), b.bitcast(release, i8p)])
    with b.if_then(b.icmp_unsigned("==", capsule, _null())):
        b.call(give_back, [block])
        b.call(ext.function("Py_DecRef", ir.VoidType(), [i8p]), [arr])
        b.ret(_null())
    set_base = ext.function("lumen_PyArray_SetBaseObject", i32, [i8p, i8p])
    failed = b.icmp_signed("<", b.call(set_base, [arr, capsule]), ir.Constant(i32, 0))
    with b.if_then(failed):       # the capsule's reference was stolen: it frees the block
        b.call(ext.function("Py_DecRef", ir.VoidType(), [i8p]), [arr])
        b.ret(_null())
    b.ret(arr)


def module_ir() -> str:
    module = ir.Module("lumen_result_pool")
    ext = _Declarations(module)
    slots = ir.GlobalVariable(module, ir.ArrayType(i8p, SLOTS), "lumen_result_slots")
    slots.linkage = "internal"
    slots.initializer = ir.Constant(ir.ArrayType(i8p, SLOTS), None)
    give_back = _give_back(ext, slots)
    _result_array(ext, _take(ext, slots), give_back, _release(ext, slots))
    return str(module)
