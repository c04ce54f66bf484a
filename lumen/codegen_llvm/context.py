"""State shared while one graph is lowered into one entry function.

The entry function is ``i32 entry(PyObject *inputs, PyObject *outputs)``: ``inputs`` is a list
of NumPy arrays whose struct fields the code reads directly; result arrays are created with
NumPy's ``PyArray_Empty`` and stored into the ``outputs`` list. It returns 0, or -1 with a
Python exception set. Intermediate buffers come from ``malloc`` and are freed after their last
use, and on every exit path.
"""
from __future__ import annotations

import contextlib

import llvmlite.ir as ir
import numpy as np

from ..ir.dims import Dim, prod
from .llvmtypes import i1, i8, i8p, i32, i64, i64p, memory_type, value_type

# PyObject / PyArrayObject field offsets on 64-bit CPython (DESIGN.md, facts).
LIST_ITEMS, ARRAY_DATA, ARRAY_DIMS, ARRAY_STRIDES = 24, 16, 32, 40

_NUMPY_TYPENUM = {np.dtype(t).name: np.dtype(t).num for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64")}


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
    def __init__(self, name: str):
        self.module = ir.Module(name)
        fnty = ir.FunctionType(i32, [i8p, i8p])
        self.fn = ir.Function(self.module, fnty, "lumen_entry")
        self.inputs_list, self.outputs_list = self.fn.args
        self.alloca_block = self.fn.append_basic_block("allocas")
        self.builder = ir.IRBuilder(self.fn.append_basic_block("body"))
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
        self._frames: list = []     # per loop-body nesting level: the slots it allocated
        self._strings: dict = {}
        self._functions: dict = {}

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

    def count(self, dims):
        n = self.i64(1)
        for d in dims:
            n = self.builder.mul(n, d)
        return n

    # -- buffers ------------------------------------------------------------------------------
    def malloc_buffer(self, dtype, dims, name="buf", check=True) -> Arr:
        """A C-contiguous buffer of ``dims``: a dead buffer of the same byte size when there is
        one (memory planning), else a fresh one; all are freed on exit."""
        frame = self._frames[-1] if self._frames else None
        if frame is not None and frame.preheader is not None:
            return self._hoisted_buffer(frame, dtype, dims, name)
        b = self.builder
        dtype = np.dtype(dtype)
        shape = [self.dim(d) for d in dims]
        itemsize = dtype.itemsize
        key = prod(dims) * itemsize
        pooled = None if self._frames else self._pool.get(key)
        if pooled:
            slot = pooled.pop()
            self._sizes[slot] = key
            return Arr(b.load(slot), shape, contiguous_strides(b, shape, itemsize, self.i64), dtype,
                       dims, True, owner=slot)
        nbytes = b.mul(self.count(shape), self.i64(itemsize))
        nbytes = b.select(b.icmp_signed("<", nbytes, self.i64(64)), self.i64(64), nbytes)
        malloc = self.function("malloc", i8p, [i64])
        ptr = b.call(malloc, [nbytes])
        slot = self.alloca(i8p, name)
        self._alloca_builder.store(ir.Constant(i8p, None), slot)
        self.buffer_slots.append(slot)
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

    def _hoisted_buffer(self, frame, dtype, dims, name):
        """A loop body's buffer, allocated once in the loop's preheader (its sizes are the
        enclosing function's, the same at every step); the null check stays at the use."""
        saved = self.builder
        self.builder = ir.IRBuilder(frame.preheader)
        self.builder.position_before(frame.preheader.terminator)
        frame_stack, self._frames = self._frames, []
        try:
            arr = self.malloc_buffer(dtype, dims, name, check=False)
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
        b = self.builder
        free = self.function("free", ir.VoidType(), [i8p])
        for slot in self._frames.pop().slots:
            b.call(free, [b.load(slot)])
            b.store(ir.Constant(i8p, None), slot)

    def in_frame(self, arr) -> bool:
        """Whether ``arr`` lives in a buffer of the innermost frame."""
        return bool(self._frames) and arr.owner in self._frames[-1].slots

    def numpy_result(self, value, position: int) -> Arr:
        """A new NumPy array for graph output ``position``, handed to the outputs list."""
        b = self.builder
        nd = value.ndim
        dims_buf = self.alloca(ir.ArrayType(i64, max(nd, 1)), "dims")
        shape = [self.dim(d) for d in value.type.shape]
        for k, s in enumerate(shape):
            b.store(s, b.gep(dims_buf, [self.i64(0), ir.Constant(i32, k)]))
        descr_fn = self.function("lumen_PyArray_DescrFromType", i8p, [i32])
        empty_fn = self.function("lumen_PyArray_Empty", i8p, [i32, i64p, i8p, i32])
        descr = b.call(descr_fn, [ir.Constant(i32, _NUMPY_TYPENUM[value.dtype.name])])
        arr = b.call(empty_fn, [ir.Constant(i32, nd), b.bitcast(dims_buf, i64p), descr,
                                ir.Constant(i32, 0)])
        self.leave_if(b.icmp_unsigned("==", arr, ir.Constant(i8p, None)))
        set_item = self.function("PyList_SetItem", i32, [i8p, i64, i8p])
        b.call(set_item, [self.outputs_list, self.i64(position), arr])
        data = self.field(arr, ARRAY_DATA, i8p)
        return Arr(data, shape, contiguous_strides(b, shape, value.dtype.itemsize, self.i64),
                   value.dtype, value.type.shape, True)

    def read_input(self, position: int, value, contiguous: bool) -> Arr:
        b = self.builder
        items = self.field(self.inputs_list, LIST_ITEMS, i8p.as_pointer())
        obj = b.load(b.gep(items, [self.i64(position)]))
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

    def finish(self):
        """Close the body and write the cleanup block."""
        b = self.builder
        if not b.block.is_terminated:
            b.branch(self.cleanup_block)
        self._alloca_builder.branch(self.fn.blocks[1])
        b.position_at_end(self.cleanup_block)
        free = self.function("free", ir.VoidType(), [i8p])
        for slot in self.buffer_slots:
            b.call(free, [b.load(slot)])
        b.ret(b.load(self.status))

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

    @contextlib.contextmanager
    def loop(self, n, name="i"):
        """``for i in range(n)`` (n an i64); yields i."""
        b = self.builder
        pre = b.block
        head = self.fn.append_basic_block(f"{name}.head")
        body = self.fn.append_basic_block(f"{name}.body")
        done = self.fn.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(i64, name=name)
        i.add_incoming(self.i64(0), pre)
        b.cbranch(b.icmp_signed("<", i, n), body, done)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, self.i64(1), name=f"{name}.next", flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)


def contiguous_strides(b, shape, itemsize, const):
    strides = [None] * len(shape)
    acc = const(itemsize)
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = acc
        acc = b.mul(acc, shape[k])
    return strides


def _suffix(ty):
    return {"float": "f32", "double": "f64"}.get(str(ty), str(ty))


__all__ = ["Arr", "Context", "value_type", "memory_type", "contiguous_strides"]
