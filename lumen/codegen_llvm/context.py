"""State shared while one graph is lowered into one entry function.

The entry function is a CPython ``METH_FASTCALL`` function,
``PyObject *lumen_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs)``, that the
executor wraps into a builtin: called straight from Python, it costs tens of nanoseconds where
a ctypes call costs half a microsecond. ``args`` are the call's flattened arguments; the code
first checks that each is what it was compiled for (an ndarray of this dtype, ndim, broadcast
pattern and layout, or a Python scalar) and returns ``NotImplemented``, having done nothing,
when one is not, so that a call can try it blindly. ``self`` is a tuple whose first items are
the captured constant arrays. The code reads struct fields directly; result arrays are created
with NumPy's ``PyArray_Empty`` and returned, one as itself, several as a tuple; on an error it
returns NULL with a Python exception set. Intermediate buffers come from ``malloc`` and are
freed after their last use, and on every exit path.
"""
from __future__ import annotations

import contextlib
import sys

import llvmlite.ir as ir
import numpy as np

from ..ir.dims import Dim, prod
from . import buffer_cache
from .counted_loop import counted_loop
from .folding_builder import FoldingBuilder
from .llvmtypes import i1, i8, i8p, i32, i64, i64p, memory_type, value_type

# PyObject / PyArrayObject / PyArray_Descr field offsets on 64-bit CPython and NumPy 2
# (DESIGN.md, facts); the flag bits are NumPy's NPY_ARRAY_C_CONTIGUOUS and NPY_ARRAY_ALIGNED.
OB_TYPE, TUPLE_ITEMS, FLOAT_VALUE = 8, 24, 16
ARRAY_DATA, ARRAY_ND, ARRAY_DIMS, ARRAY_STRIDES, ARRAY_DESCR, ARRAY_FLAGS = 16, 24, 32, 40, 56, 64
DESCR_BYTEORDER, DESCR_TYPE_NUM = 26, 28
C_CONTIGUOUS, ALIGNED, WRITEABLE = 0x1, 0x100, 0x400
#: the byte order character of a dtype that is not the machine's (its arrays are converted first)
_FOREIGN_ORDER = ord(">" if sys.byteorder == "little" else "<")

_NUMPY_TYPENUM = {np.dtype(t).name: np.dtype(t).num for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64")}
#: every type number whose arrays have that dtype (int64 is both NumPy's long and long long)
_ACCEPTED_TYPENUMS = {name: sorted({np.dtype(c).num for c in np.typecodes["All"]
                                    if np.dtype(c) == np.dtype(name)})
                      for name in _NUMPY_TYPENUM}


class Arr:
    """An array at run time: data pointer, sizes and byte strides (LLVM values), plus what is
    known at compile time: dtype, symbolic dims, whether it is C-contiguous, and which buffer
    slot owns its memory (None for inputs, outputs and constants)."""

    __slots__ = ("data", "shape", "strides", "dtype", "dims", "contiguous", "owner")

    def __init__(self, data, shape, strides, dtype, dims, contiguous, owner=None):
        self.data, self.shape, self.strides = data, list(shape), list(strides)
        self.dtype, self.dims = np.dtype(dtype), tuple(dims)
        self.contiguous, self.owner = contiguous, owner

    @property
    def ndim(self):
        return len(self.shape)


class _Frame:
    __slots__ = ("slots", "preheader")

    def __init__(self, preheader):
        self.slots, self.preheader = [], preheader


class Context:
    def __init__(self, name: str, parallel: bool = True):
        self.module = ir.Module(name)
        self.parallel = parallel        # loops may run on several threads (parallel.py)
        self.profiler = None            # times the nodes when profiling (profiling.py)
        fnty = ir.FunctionType(i8p, [i8p, i8p.as_pointer(), i64])
        self.entry = self.fn = ir.Function(self.module, fnty, "lumen_entry")
        self.self_tuple, self.args, self.nargs = self.fn.args
        self.alloca_block = self.fn.append_basic_block("allocas")
        self.builder = FoldingBuilder(self.fn.append_basic_block("body"))
        self.cleanup_block = self.fn.append_basic_block("cleanup")
        self._alloca_builder = ir.IRBuilder(self.alloca_block)
        self.status = self.alloca(i32, "status")
        self._alloca_builder.store(ir.Constant(i32, 0), self.status)
        self.errcode = self.alloca(i32, "errcode")
        self._alloca_builder.store(ir.Constant(i32, 0), self.errcode)
        self.pending_errors: list = []
        self.dim_values: dict = {}
        self.buffer_slots: list = []
        self._sizes: dict = {}      # buffer slot -> its byte size (a Dim)
        self._pool: dict = {}       # byte size -> slots of dead buffers
        self._kept: dict = {}       # buffer slot -> its cell in buffer_cache
        self._frames: list = []     # per loop-body nesting level: the slots it allocated
        self._strings: dict = {}
        self._functions: dict = {}
        self._results: dict = {}    # output position -> slot of its array (null until made)
        self.argument_objects = []  # the call's arguments (objects), in order
        self._mismatch = None       # the block that returns NotImplemented

    # -- small helpers ------------------------------------------------------------------------
    @staticmethod
    def i64(n: int):
        return ir.Constant(i64, int(n))

    def alloca(self, ty, name=""):
        return self._alloca_builder.alloca(ty, name=name)

    def function(self, name, ret, args, attrs=()):
        """Declare (once) an external function."""
        fn = self._functions.get(name)
        if fn is None:
            fn = self.module.globals.get(name) or ir.Function(self.module, ir.FunctionType(ret, args), name)
            for a in attrs:
                fn.attributes.add(a)
            self._functions[name] = fn
        return fn

    def intrinsic(self, name, ty, nargs=1):
        return self.function(f"{name}.{_suffix(ty)}", ty, [ty] * nargs)

    def cstring(self, text: str):
        g = self._strings.get(text)
        if g is None:
            data = bytearray(text.encode("utf-8")) + b"\0"
            ty = ir.ArrayType(i8, len(data))
            g = ir.GlobalVariable(self.module, ty, name=f"str{len(self._strings)}")
            g.global_constant, g.linkage, g.initializer = True, "private", ir.Constant(ty, data)
            self._strings[text] = g
        return self.builder.bitcast(g, i8p)

    def field(self, obj, offset: int, ty):
        b = self.builder
        return b.load(b.bitcast(b.gep(obj, [self.i64(offset)]), ty.as_pointer()))

    def python_object(self, name: str):
        """The address of a static Python object (a type, ``True``, ``NotImplemented``) as an
        ``i8*``, resolved by name when the object code is loaded (`symbols`)."""
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, i8, name=name)
            g.linkage = "external"
        return g

    # -- errors -------------------------------------------------------------------------------
    def raise_here(self, exc: str, message: str):
        """Set a Python exception and leave through the cleanup block (ends the current block)."""
        b = self.builder
        set_string = self.function("PyErr_SetString", ir.VoidType(), [i8p, i8p])
        exc_var = self.module.globals.get(f"PyExc_{exc}")
        if exc_var is None:
            exc_var = ir.GlobalVariable(self.module, i8p, name=f"PyExc_{exc}")
            exc_var.linkage = "external"
        b.call(set_string, [b.load(exc_var), self.cstring(message)])
        b.store(ir.Constant(i32, -1), self.status)
        b.branch(self.cleanup_block)

    def leave_if(self, failed, no_memory=False):
        """Leave through the cleanup block with status -1 when ``failed`` (the exception is
        already set, or is MemoryError when ``no_memory``)."""
        b = self.builder
        fail = self.fn.append_basic_block("leave")
        cont = self.fn.append_basic_block("stay")
        b.cbranch(failed, fail, cont)
        b.position_at_end(fail)
        if no_memory:
            b.call(self.function("PyErr_NoMemory", i8p, []), [])
        b.store(ir.Constant(i32, -1), self.status)
        b.branch(self.cleanup_block)
        b.position_at_end(cont)

    def flag_error(self, failed, exc: str, message: str):
        """Inside a loop: remember that ``failed`` (an i1) happened; `raise_flagged` raises it
        once the loop is done (loops are not left half-way through)."""
        b = self.builder
        code = len(self.pending_errors) + 1
        self.pending_errors.append((code, exc, message))
        b.store(b.select(failed, ir.Constant(i32, code), b.load(self.errcode)), self.errcode)

    def raise_flagged(self):
        b = self.builder
        for code, exc, message in self.pending_errors:
            self.check(b.icmp_signed("!=", b.load(self.errcode), ir.Constant(i32, code)), exc, message)
        self.pending_errors.clear()

    def check(self, ok, exc: str, message: str):
        """Continue when ``ok`` (an i1) holds, else raise."""
        b = self.builder
        fail = self.fn.append_basic_block("fail")
        cont = self.fn.append_basic_block("ok")
        b.cbranch(ok, cont, fail)
        b.position_at_end(fail)
        self.raise_here(exc, message)
        b.position_at_end(cont)

    # -- sizes --------------------------------------------------------------------------------
    def dim(self, d: Dim):
        """The run-time value of a symbolic size."""
        v = self.dim_values.get(d)
        if v is not None:
            return v
        b = self.builder
        if d.op == "const":
            return self.i64(d.value)
        x, y = (self.dim(a) for a in d.args)
        zero, one = self.i64(0), self.i64(1)
        if d.op == "add":
            v = b.add(x, y)
        elif d.op == "sub":
            v = b.sub(x, y)
        elif d.op == "mul":
            v = b.mul(x, y)
        elif d.op in ("floordiv", "cdiv"):
            ysafe = b.select(b.icmp_signed("==", y, zero), one, y)
            num = b.add(x, b.sub(ysafe, one)) if d.op == "cdiv" else x
            q = b.sdiv(num, ysafe)
            # floor semantics for negative numerators (sizes are only negative transiently)
            r = b.srem(num, ysafe)
            q = b.select(b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", r, zero)),
                         b.sub(q, one), q)
            v = b.select(b.icmp_signed("==", y, zero), zero, q)
        elif d.op == "max":
            v = b.select(b.icmp_signed(">", x, y), x, y)
        elif d.op == "min":
            v = b.select(b.icmp_signed("<", x, y), x, y)
        elif d.op == "bcast":
            v = b.select(b.icmp_signed("==", x, one), y, x)
        else:
            raise AssertionError(d.op)
        return v

    def move_bytes(self, dst, src, nbytes, builder=None):
        """Copy ``nbytes`` bytes from ``src`` to ``dst`` (the regions may overlap), at
        ``builder`` (default: the context's)."""
        move = self.function("llvm.memmove.p0.p0.i64", ir.VoidType(), [i8p, i8p, i64, i1])
        (builder or self.builder).call(move, [dst, src, nbytes, ir.Constant(i1, 0)])

    def count(self, dims):
        n = self.i64(1)
        for d in dims:
            n = self.builder.mul(n, d)
        return n

    # -- buffers ------------------------------------------------------------------------------
    def malloc_buffer(self, dtype, dims, name="buf", check=True, pooled=True) -> Arr:
        """A C-contiguous buffer of ``dims``: a dead buffer of the same byte size when there is
        one (memory planning; not with ``pooled=False``), else a fresh one; all are freed on
        exit."""
        frame = self._frames[-1] if self._frames else None
        if frame is not None and frame.preheader is not None:
            return self._hoisted_buffer(frame, dtype, dims, name)
        b = self.builder
        dtype = np.dtype(dtype)
        shape = [self.dim(d) for d in dims]
        itemsize = dtype.itemsize
        key = prod(dims) * itemsize
        reusable = None if self._frames or not pooled else self._pool.get(key)
        if reusable:
            slot = reusable.pop()
            self._sizes[slot] = key
            return Arr(b.load(slot), shape, contiguous_strides(b, shape, itemsize, self.i64), dtype,
                       dims, True, owner=slot)
        nbytes = b.mul(self.count(shape), self.i64(itemsize))
        nbytes = b.select(b.icmp_signed("<", nbytes, self.i64(64)), self.i64(64), nbytes)
        slot = self.alloca(i8p, name)
        self._alloca_builder.store(ir.Constant(i8p, None), slot)
        self.buffer_slots.append(slot)
        if frame is None:       # top level or a loop preheader: runs once per call or loop
            self._kept[slot] = buffer_cache.new_cell(self.module, name)
            ptr = b.call(buffer_cache.take_function(self), [self._kept[slot], nbytes])
        else:
            ptr = b.call(self.function("malloc", i8p, [i64]), [nbytes])
        self._sizes[slot] = key
        if frame is not None:
            frame.slots.append(slot)
        b.store(ptr, slot)
        if check:
            self.leave_if(b.icmp_unsigned("==", ptr, ir.Constant(i8p, None)), no_memory=True)
        return Arr(ptr, shape, contiguous_strides(b, shape, itemsize, self.i64), dtype,
                   dims, True, owner=slot)

    def release_buffer(self, slot):
        """The buffer's values are dead: later buffers of its size reuse it."""
        self._pool.setdefault(self._sizes[slot], []).append(slot)

    def heap_slot(self, name):
        """A pointer slot, null until a lowering stores memory it allocates itself (a buffer
        that grows); freed on every exit, so an error on the way out cannot leak it."""
        slot = self.alloca(i8p, name)
        self._alloca_builder.store(ir.Constant(i8p, None), slot)
        self.buffer_slots.append(slot)
        return slot

    def _hoisted_buffer(self, frame, dtype, dims, name):
        """A loop body's buffer, allocated once in the loop's preheader (its sizes are the
        enclosing function's, the same at every step); the null check stays at the use. Never
        a dead buffer of the enclosing function's: the loop's frame frees and clears its
        buffers when the loop ends, and an enclosing loop (a scan in a while loop's body)
        enters the preheader again."""
        saved = self.builder
        self.builder = FoldingBuilder(frame.preheader)
        self.builder.position_before(frame.preheader.terminator)
        frame_stack, self._frames = self._frames, []
        try:
            arr = self.malloc_buffer(dtype, dims, name, check=False, pooled=False)
        finally:
            self._frames, self.builder = frame_stack, saved
        frame.slots.append(arr.owner)
        self.leave_if(self.builder.icmp_unsigned("==", arr.data, ir.Constant(i8p, None)),
                      no_memory=True)
        return arr

    def push_frame(self, preheader=None):
        """Buffers allocated from here on (a loop or branch body's) are freed by `pop_frame`;
        with ``preheader`` (a block that ends by entering the loop) they are allocated there,
        once for all steps."""
        self._frames.append(_Frame(preheader))

    def pop_frame(self):
        for slot in self._frames.pop().slots:
            self._release(slot)

    def _release(self, slot):
        """Free the buffer in ``slot`` and clear the slot (a kept-size one goes back to its
        cell)."""
        cell = self._kept.get(slot, ir.Constant(i8p.as_pointer(), None))
        self.builder.call(buffer_cache.release_function(self), [slot, cell])

    def in_frame(self, arr) -> bool:
        """Whether ``arr`` lives in a buffer of the innermost frame."""
        return bool(self._frames) and arr.owner in self._frames[-1].slots

    def numpy_result(self, value, position: int) -> Arr:
        """A new NumPy array for graph output ``position``, returned by the entry."""
        slot = self._result_slot(position)
        obj, arr = self._new_result(value)
        self.builder.store(obj, slot)
        return arr

    def donated_result(self, value, position: int, donor: Arr, donor_object, usable) -> Arr:
        """Graph output ``position`` in the memory of donated argument ``donor`` (its object
        ``donor_object``, returned as the result) where ``usable`` (an i1) holds, else in a new
        array holding a copy of the donor's elements. Either way the result's elements start as
        the donor's, so the code reading the donor may read this array instead: it writes and
        reads one pointer, and LLVM vectorises in-place loops over it without alias tests."""
        b = self.builder
        slot = self._result_slot(position)
        with b.if_else(usable) as (reuse, fresh):
            with reuse:
                b.call(self.function("Py_IncRef", ir.VoidType(), [i8p]), [donor_object])
                b.store(donor_object, slot)
                reused = b.block
            with fresh:
                obj, copy = self._new_result(value)
                b.store(obj, slot)
                self.move_bytes(copy.data, donor.data,
                                b.mul(self.count(copy.shape), self.i64(value.dtype.itemsize)))
                copied = b.block
        data = b.phi(i8p)
        data.add_incoming(donor.data, reused)
        data.add_incoming(copy.data, copied)
        return Arr(data, donor.shape, donor.strides, value.dtype, value.type.shape, True)

    def _result_slot(self, position: int):
        slot = self.alloca(i8p, f"result{position}")
        self._alloca_builder.store(ir.Constant(i8p, None), slot)
        self._results[position] = slot
        return slot

    def _new_result(self, value):
        """-> (object, Arr) of a new C-contiguous NumPy array of ``value``'s type."""
        b = self.builder
        nd = value.ndim
        dims_buf = self.alloca(ir.ArrayType(i64, max(nd, 1)), "dims")
        shape = [self.dim(d) for d in value.type.shape]
        for k, s in enumerate(shape):
            b.store(s, b.gep(dims_buf, [self.i64(0), ir.Constant(i32, k)]))
        descr_fn = self.function("lumen_PyArray_DescrFromType", i8p, [i32])
        new_fn = self.function("lumen_result_array", i8p, [i32, i64p, i8p, i64])
        descr = b.call(descr_fn, [ir.Constant(i32, _NUMPY_TYPENUM[value.dtype.name])])
        nbytes = self.i64(value.dtype.itemsize)
        for s in shape:
            nbytes = b.mul(nbytes, s)
        arr = b.call(new_fn, [ir.Constant(i32, nd), b.bitcast(dims_buf, i64p), descr, nbytes])
        self.leave_if(b.icmp_unsigned("==", arr, ir.Constant(i8p, None)))
        data = self.field(arr, ARRAY_DATA, i8p)
        return arr, Arr(data, shape, contiguous_strides(b, shape, value.dtype.itemsize, self.i64),
                        value.dtype, value.type.shape, True)

    def writeable(self, obj):
        """i1: ndarray ``obj`` may be written (NPY_ARRAY_WRITEABLE)."""
        b = self.builder
        flags = self.field(obj, ARRAY_FLAGS, i32)
        return b.icmp_unsigned("!=", b.and_(flags, ir.Constant(i32, WRITEABLE)), ir.Constant(i32, 0))

    def disjoint(self, a: Arr, c: Arr):
        """i1: no element of ``a`` lies in the memory of ``c`` (either may be strided)."""
        b = self.builder
        (lo_a, hi_a, empty_a), (lo_c, hi_c, empty_c) = self._extent(a), self._extent(c)
        apart = b.or_(b.icmp_unsigned("<=", hi_a, lo_c), b.icmp_unsigned("<=", hi_c, lo_a))
        return b.or_(apart, b.or_(empty_a, empty_c))

    def _extent(self, arr: Arr):
        """(first byte, one past the last byte, no elements) of an array's memory."""
        b = self.builder
        lo = b.ptrtoint(arr.data, i64)
        hi = b.add(lo, self.i64(arr.dtype.itemsize))
        empty = ir.Constant(i1, 0)
        zero = self.i64(0)
        for n, stride in zip(arr.shape, arr.strides):
            span = b.mul(b.sub(n, self.i64(1)), stride)
            negative = b.icmp_signed("<", span, zero)
            lo = b.add(lo, b.select(negative, span, zero))
            hi = b.add(hi, b.select(negative, zero, span))
            empty = b.or_(empty, b.icmp_signed("<=", n, zero))
        return lo, hi, empty

    # -- arguments ----------------------------------------------------------------------------
    def read_arguments(self, values, contiguous, n_captured: int) -> list:
        """The graph's inputs ``values`` as arrays: the call's arguments, checked to be what
        this code is compiled for (else the entry returns NotImplemented), then the
        ``n_captured`` constants, read from the ``self`` tuple. Emitted first, before anything
        that would need undoing."""
        b = self.builder
        n_args = len(values) - n_captured
        self._require(b.icmp_signed("==", self.nargs, self.i64(n_args)))
        arrays = []
        for pos, value in enumerate(values):
            if pos < n_args:
                obj = b.load(b.gep(self.args, [self.i64(pos)]))
                self.argument_objects.append(obj)
                arrays.append(self._argument(obj, value, contiguous[pos]))
            else:
                items = b.bitcast(b.gep(self.self_tuple, [self.i64(TUPLE_ITEMS)]), i8p.as_pointer())
                obj = b.load(b.gep(items, [self.i64(pos - n_args)]))
                arrays.append(self._array_fields(obj, value, contiguous[pos]))
        return arrays

    def require_guards(self, guards: dict):
        """Return NotImplemented unless each guarded size (`Dim` -> value: sizes the trace
        concretised or assumed equal) has its value: the test `CompiledEntry.guards_hold` makes,
        here too so that `jit`'s fast path may try this code on any call."""
        for d, value in guards.items():
            self._require(self.builder.icmp_signed("==", self.dim(d), self.i64(value)))

    def _require(self, ok):
        """Continue when ``ok`` (an i1) holds, else return NotImplemented: the arguments are
        not of the signature this code was compiled for."""
        if self._mismatch is None:
            self._mismatch = self.fn.append_basic_block("mismatch")
            mb = ir.IRBuilder(self._mismatch)
            not_implemented = self.python_object("_Py_NotImplementedStruct")
            mb.call(self.function("Py_IncRef", ir.VoidType(), [i8p]), [not_implemented])
            mb.ret(not_implemented)
        cont = self.fn.append_basic_block("accepted")
        self.builder.cbranch(ok, cont, self._mismatch)
        self.builder.position_at_end(cont)

    def _argument(self, obj, value, contiguous) -> Arr:
        """One argument, checked against its type: a weak type is a Python float or int (the
        ``float`` and ``int`` objects themselves, as `jit` specialises on them), a 0-d bool may
        also be Python's True or False, anything else is an ndarray."""
        t = value.type
        if t.weak:
            return self._python_scalar(obj, t)
        if t.dtype.kind != "b" or t.ndim:
            self._require_array(obj, t, contiguous)
            return self._array_fields(obj, value, contiguous)
        b = self.builder
        is_true = b.icmp_unsigned("==", obj, self.python_object("_Py_TrueStruct"))
        is_false = b.icmp_unsigned("==", obj, self.python_object("_Py_FalseStruct"))
        python_bool = self.fn.append_basic_block("arg.pybool")
        array = self.fn.append_basic_block("arg.array")
        join = self.fn.append_basic_block("arg.bool")
        b.cbranch(b.or_(is_true, is_false), python_bool, array)
        b.position_at_end(python_bool)
        byte = self.alloca(i8, "pybool")
        b.store(b.zext(is_true, i8), byte)
        b.branch(join)
        b.position_at_end(array)
        self._require_array(obj, t, contiguous)
        data = self.field(obj, ARRAY_DATA, i8p)
        from_array = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(i8p)
        phi.add_incoming(byte, python_bool)
        phi.add_incoming(data, from_array)
        return Arr(phi, [], [], t.dtype, (), True)

    def _python_scalar(self, obj, t) -> Arr:
        """A Python float (its value is read in place), or an int that fits ``t.dtype``:
        int64, or uint64 for the ints of [2**63, 2**64) (`jit` gives those their own type)."""
        b = self.builder
        if t.dtype.kind == "f":
            self._require(b.icmp_unsigned("==", self.field(obj, OB_TYPE, i8p),
                                          self.python_object("PyFloat_Type")))
            return Arr(b.gep(obj, [self.i64(FLOAT_VALUE)]), [], [], t.dtype, (), True)
        self._require(b.icmp_unsigned("==", self.field(obj, OB_TYPE, i8p),
                                      self.python_object("PyLong_Type")))
        if t.dtype.kind == "i":
            overflow = self.alloca(i32, "overflow")
            convert = self.function("PyLong_AsLongLongAndOverflow", i64, [i8p, i32.as_pointer()])
            n = b.call(convert, [obj, overflow])
            self._require(b.icmp_signed("==", b.load(overflow), ir.Constant(i32, 0)))
        else:
            n = b.call(self.function("PyLong_AsUnsignedLongLong", i64, [i8p]), [obj])
            maybe_error = self.fn.append_basic_block("arg.overflow?")
            converted = self.fn.append_basic_block("arg.converted")
            b.cbranch(b.icmp_signed("==", n, self.i64(-1)), maybe_error, converted)
            b.position_at_end(maybe_error)
            error = b.call(self.function("PyErr_Occurred", i8p, []), [])
            failed = b.icmp_unsigned("!=", error, ir.Constant(i8p, None))
            with b.if_then(failed):
                b.call(self.function("PyErr_Clear", ir.VoidType(), []), [])
            self._require(b.not_(failed))
            b.branch(converted)
            b.position_at_end(converted)
            self._require(b.icmp_signed("<", n, self.i64(0)))     # >= 2**63
        slot = self.alloca(i64, "pyint")
        b.store(n, slot)
        return Arr(b.bitcast(slot, i8p), [], [], t.dtype, (), True)

    def _require_array(self, obj, t, contiguous):
        """``obj`` is an ndarray (not a subclass) of ``t``'s dtype in native byte order, ndim
        and broadcast pattern, aligned, C-contiguous exactly when ``contiguous``."""
        b = self.builder
        self._require(b.icmp_unsigned("==", self.field(obj, OB_TYPE, i8p),
                                      self.python_object("lumen_PyArray_Type")))
        self._require(b.icmp_signed("==", self.field(obj, ARRAY_ND, i32), ir.Constant(i32, t.ndim)))
        descr = self.field(obj, ARRAY_DESCR, i8p)
        type_num = self.field(descr, DESCR_TYPE_NUM, i32)
        ok = b.icmp_unsigned("!=", self.field(descr, DESCR_BYTEORDER, i8), ir.Constant(i8, _FOREIGN_ORDER))
        ok = b.and_(ok, _any(b, [b.icmp_signed("==", type_num, ir.Constant(i32, n))
                                 for n in _ACCEPTED_TYPENUMS[t.dtype.name]]))
        flags = self.field(obj, ARRAY_FLAGS, i32)
        wanted = ALIGNED | (C_CONTIGUOUS if contiguous else 0)
        ok = b.and_(ok, b.icmp_signed("==", b.and_(flags, ir.Constant(i32, ALIGNED | C_CONTIGUOUS)),
                                      ir.Constant(i32, wanted)))
        if t.ndim:
            dims_ptr = self.field(obj, ARRAY_DIMS, i64p)
            for k, d in enumerate(t.shape):
                n = b.load(b.gep(dims_ptr, [self.i64(k)]))
                ok = b.and_(ok, b.icmp_signed("==" if d.value == 1 else "!=", n, self.i64(1)))
        self._require(ok)

    def _array_fields(self, obj, value, contiguous) -> Arr:
        b = self.builder
        data = self.field(obj, ARRAY_DATA, i8p)
        nd = value.ndim
        shape, strides = [], []
        if nd:
            dims_ptr = self.field(obj, ARRAY_DIMS, i64p)
            strides_ptr = self.field(obj, ARRAY_STRIDES, i64p)
            for k in range(nd):
                shape.append(b.load(b.gep(dims_ptr, [self.i64(k)])))
                strides.append(b.load(b.gep(strides_ptr, [self.i64(k)])))
        if contiguous:      # strides the optimiser can see (unit stride innermost)
            strides = contiguous_strides(b, shape, value.dtype.itemsize, self.i64)
        return Arr(data, shape, strides, value.dtype, value.type.shape, contiguous)

    def finish(self, n_outputs: int):
        """Close the body and write the cleanup block, which frees the buffers and returns the
        result arrays (one as itself, several as a tuple), or NULL after an error."""
        b = self.builder
        if not b.block.is_terminated:
            b.branch(self.cleanup_block)
        self._alloca_builder.branch(self.fn.blocks[1])
        b.position_at_end(self.cleanup_block)
        for slot in self.buffer_slots:
            self._release(slot)
        results = [self._results[k] for k in range(n_outputs)]
        failed = self.fn.append_basic_block("failed")
        succeeded = self.fn.append_basic_block("succeeded")
        b.cbranch(b.icmp_signed("==", b.load(self.status), ir.Constant(i32, 0)), succeeded, failed)
        b.position_at_end(failed)
        drop = self._drop_function()
        for slot in results:
            b.call(drop, [slot])
        b.ret(ir.Constant(i8p, None))
        b.position_at_end(succeeded)
        if n_outputs == 1:
            b.ret(b.load(results[0]))
            return
        result = b.call(self.function("PyTuple_New", i8p, [i64]), [self.i64(n_outputs)])
        made = self.fn.append_basic_block("tuple")
        b.cbranch(b.icmp_unsigned("==", result, ir.Constant(i8p, None)), failed, made)
        b.position_at_end(made)
        set_item = self.function("PyTuple_SetItem", i32, [i8p, i64, i8p])
        for k, slot in enumerate(results):
            b.call(set_item, [result, self.i64(k), b.load(slot)])    # steals the reference
        b.ret(result)

    def _drop_function(self):
        """``void drop(i8** slot)``: Py_XDECREF of the result array in ``slot`` (null before it
        was made). Taking the slot's address keeps the result slots in memory, as the buffer
        slots (`buffer_cache.release_function`): no phi per slot over every way out."""
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [i8p.as_pointer()]),
                         "lumen.result_drop")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.call(self.function("Py_DecRef", ir.VoidType(), [i8p]), [b.load(fn.args[0])])
        b.ret_void()
        return fn

    @contextlib.contextmanager
    def function_body(self, fn):
        """Emit into ``fn``, another function of the module, instead of the entry: the builder
        (the same object, so code holding it follows) moves into ``fn``, allocas go to fn's
        first block and error flags to its own code slot (``errcode``, 0 on entry). There is
        no way out through the entry's cleanup: code that raises or allocates buffers cannot
        be emitted there."""
        b = self.builder
        saved = (self.fn, b.block, self._alloca_builder, self.errcode, self.status,
                 self.cleanup_block)
        self.fn = fn
        allocas = fn.append_basic_block("allocas")
        body = fn.append_basic_block("body")
        self._alloca_builder = ir.IRBuilder(allocas)
        b.position_at_end(body)
        self.errcode = self.alloca(i32, "errcode")
        self._alloca_builder.store(ir.Constant(i32, 0), self.errcode)
        self.status = self.cleanup_block = None
        try:
            yield
            ir.IRBuilder(allocas).branch(body)      # after whatever was added to the block
        finally:
            (self.fn, block, self._alloca_builder, self.errcode, self.status,
             self.cleanup_block) = saved
            b.position_at_end(block)

    # -- element access -----------------------------------------------------------------------
    def element_pointer(self, arr: Arr, offset):
        """Typed pointer to the element at byte ``offset`` from ``arr.data``."""
        b = self.builder
        return b.bitcast(b.gep(arr.data, [offset]), memory_type(arr.dtype).as_pointer())

    def load(self, arr: Arr, offset):
        b = self.builder
        v = b.load(self.element_pointer(arr, offset), align=arr.dtype.itemsize)
        return b.trunc(v, i1) if arr.dtype.kind == "b" else v

    def store(self, arr: Arr, offset, v):
        b = self.builder
        if arr.dtype.kind == "b":
            v = b.zext(v, i8)
        b.store(v, self.element_pointer(arr, offset), align=arr.dtype.itemsize)

    def loop(self, n, name="i", start=None):
        """``for i in range(start, n)`` (i64s; start defaults to 0); yields i."""
        return counted_loop(self.builder, self.fn, self.i64(0) if start is None else start, n,
                            self.i64(1), name)

def contiguous_strides(b, shape, itemsize, const):
    strides = [None] * len(shape)
    acc = const(itemsize)
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = acc
        acc = b.mul(acc, shape[k])
    return strides


def _any(b, conditions):
    out = conditions[0]
    for c in conditions[1:]:
        out = b.or_(out, c)
    return out


def _suffix(ty):
    return {"float": "f32", "double": "f64"}.get(str(ty), str(ty))


__all__ = ["Arr", "Context", "value_type", "memory_type", "contiguous_strides"]
