"""State shared while the kernels of one graph are lowered into one NVVM module.

`KernelContext` offers what the scalar lowering of `codegen_llvm` asks of a context (``builder``,
``function``, ``intrinsic``, ``flag_error``, ``i64``, ``alloca``, ``math_functions``), so that
the GPU reuses those rules as they are, plus the GPU's own pieces: kernel entry points with
``nvvm.annotations`` metadata, thread and block indices, global (addrspace 1) and shared
(addrspace 3) memory.

Every kernel takes an ``i32 addrspace(1)* err`` word: an element that fails (a negative integer
power) stores its error's code there (`flag_error`); the runtime reads the word back after the
kernels that can fail and raises the error the code names.
"""
from __future__ import annotations

import contextlib

import llvmlite.ir as ir
import numpy as np

from ..codegen_llvm.counted_loop import counted_loop
from ..codegen_llvm.llvmtypes import i1, i8, i32, i64, memory_type
from ..errors import UnsupportedError
from . import libdevice
from .target import TRIPLE, data_layout

GLOBAL, SHARED = 1, 3
byte_ptr = i8.as_pointer(GLOBAL)
err_ptr = i32.as_pointer(GLOBAL)

#: LLVM intrinsics the NVPTX back end selects (any other math intrinsic would abort LLVM while
#: emitting PTX: those go to libdevice instead, `libdevice.FUNCTIONS`).
NVPTX_INTRINSICS = ("llvm.fabs.", "llvm.sqrt.", "llvm.floor.", "llvm.ceil.", "llvm.trunc.",
                    "llvm.roundeven.", "llvm.copysign.", "llvm.maximum.", "llvm.minimum.",
                    "llvm.maxnum.", "llvm.minnum.", "llvm.fma.", "llvm.fptosi.sat.",
                    "llvm.fptoui.sat.", "llvm.nvvm.")


class KernelContext:
    math_functions = libdevice.FUNCTIONS

    def __init__(self, name: str):
        self.module = ir.Module(name)
        self.module.triple = TRIPLE
        self.module.data_layout = data_layout()
        self._annotations = self.module.add_named_metadata("nvvm.annotations")
        self.builder = None
        self.fn = None
        self.err = None
        #: (code, exception class name, message) of every error a kernel may flag; codes are
        #: 1, 2, ... across the module
        self.errors = []
        self.kernels = []
        self.flagged = False        # the kernel being emitted may flag an error

    # -- what the shared scalar lowering uses -----------------------------------------------------
    @staticmethod
    def i64(n: int):
        return ir.Constant(i64, n)

    def function(self, name, ret, args, attrs=()):
        """Declare (once) a function the kernels call: an intrinsic NVPTX selects or a
        libdevice function. Anything else would leave PTX with an unresolved call (or abort
        LLVM), so it is refused here, naming it."""
        fn = self.module.globals.get(name)
        if fn is None:
            if not (name.startswith("__nv_") or name.startswith(NVPTX_INTRINSICS)):
                raise UnsupportedError(f"the GPU backend has no lowering for {name!r} "
                                       "(no libdevice function or NVPTX instruction)")
            fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
            for a in attrs:
                fn.attributes.add(a)
        return fn

    def intrinsic(self, name, ty, nargs=1):
        suffix = {"float": "f32", "double": "f64"}.get(str(ty), str(ty))
        return self.function(f"{name}.{suffix}", ty, [ty] * nargs)

    def alloca(self, ty, name=""):
        with self.builder.goto_block(self.fn.entry_basic_block):
            return self.builder.alloca(ty, name=name)

    def flag_error(self, failed, exc: str, message: str):
        """Where ``failed`` (an i1) holds, store this error's code into the error word."""
        code = next((c for c, e, m in self.errors if (e, m) == (exc, message)), None)
        if code is None:
            code = len(self.errors) + 1
            self.errors.append((code, exc, message))
        self.flagged = True
        b = self.builder
        store = self.fn.append_basic_block("flag")
        done = self.fn.append_basic_block("flagged")
        b.cbranch(failed, store, done)
        b.position_at_end(store)
        b.store(ir.Constant(i32, code), self.err)
        b.branch(done)
        b.position_at_end(done)

    # -- kernels ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def kernel(self, name: str, params):
        """Emit the kernel ``void name(params...)`` (its first block is kept for allocas);
        yields its arguments. The error word is the parameter named ``err``."""
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [t for _, t in params]), name)
        for arg, (pname, _) in zip(fn.args, params):
            arg.name = pname
        self._annotations.add(self.module.add_metadata([fn, "kernel", ir.Constant(i32, 1)]))
        self.fn, self.flagged = fn, False
        entry = fn.append_basic_block("entry")
        body = fn.append_basic_block("body")
        self.builder = ir.IRBuilder(body)
        self.err = next((a for a, (n, _) in zip(fn.args, params) if n == "err"), None)
        yield {pname: a for a, (pname, _) in zip(fn.args, params)}
        self.builder.ret_void()
        ir.IRBuilder(entry).branch(body)
        self.kernels.append(name)
        self.fn = self.builder = self.err = None

    def sreg(self, name: str):
        """A PTX special register (``tid.x``, ``ntid.x``, ``ctaid.x``, ``nctaid.x``) as i64."""
        fn = self.function(f"llvm.nvvm.read.ptx.sreg.{name}", i32, [])
        return self.builder.zext(self.builder.call(fn, []), i64)

    def barrier(self):
        self.builder.call(self.function("llvm.nvvm.barrier0", ir.VoidType(), []), [])

    def shared_array(self, ty, n: int, name: str):
        """A block's shared array of ``n`` elements of ``ty``."""
        g = ir.GlobalVariable(self.module, ir.ArrayType(ty, n), name, addrspace=SHARED)
        g.linkage = "internal"
        g.initializer = ir.Constant(ir.ArrayType(ty, n), ir.Undefined)
        return g

    def shared_element(self, array, index):
        return self.builder.gep(array, [ir.Constant(i32, 0), index])

    # -- global memory ----------------------------------------------------------------------------
    def _element(self, base, offset, dtype):
        b = self.builder
        return b.bitcast(b.gep(base, [offset]), memory_type(dtype).as_pointer(GLOBAL))

    def load(self, base, offset, dtype):
        """The element of ``dtype`` at byte ``offset`` from ``base`` (bools as i1)."""
        dtype = np.dtype(dtype)
        v = self.builder.load(self._element(base, offset, dtype), align=dtype.itemsize)
        return self.builder.trunc(v, i1) if dtype.kind == "b" else v

    def store(self, base, offset, dtype, v):
        dtype = np.dtype(dtype)
        if dtype.kind == "b":
            v = self.builder.zext(v, i8)
        self.builder.store(v, self._element(base, offset, dtype), align=dtype.itemsize)

    # -- loops --------------------------------------------------------------------------------------
    def loop(self, start, stop, step, name="i"):
        """``for (i = start; i < stop; i += step)`` over i64s; yields i."""
        return counted_loop(self.builder, self.fn, start, stop, step, name)

    @contextlib.contextmanager
    def if_then(self, cond, name="then"):
        b = self.builder
        then = self.fn.append_basic_block(name)
        done = self.fn.append_basic_block(f"{name}.done")
        b.cbranch(cond, then, done)
        b.position_at_end(then)
        yield
        b.branch(done)
        b.position_at_end(done)

    def unravel(self, flat, sizes):
        """Per-axis indices of C-order position ``flat`` in a space of ``sizes`` (i64s)."""
        b = self.builder
        indices = [None] * len(sizes)
        for axis in range(len(sizes) - 1, -1, -1):
            if axis == 0:
                indices[0] = flat
            else:
                indices[axis] = b.urem(flat, sizes[axis])
                flat = b.udiv(flat, sizes[axis])
        return indices

    def dot(self, indices, strides):
        """sum(indices[k] * strides[k]): a byte offset."""
        b = self.builder
        off = self.i64(0)
        for i, s in zip(indices, strides):
            off = b.add(off, b.mul(i, s))
        return off
