"""LLVM IR written straight to text: the part of llvmlite.ir's module, function and builder that
runtime support code (`small_gemm`) uses, with llvmlite's own types and constants.

llvmlite.ir builds an object per instruction and prints it later: ~25 µs an instruction here.
The small matrix products' module (2,700 instructions) took 35-50 ms of Python that way, on
the thread that links the runtime while a program's first compile runs, taking turns with the
compile's own Python (one interpreter lock); as lines of text it takes a tenth of that."""
from __future__ import annotations

import contextlib
import struct

import llvmlite.ir as ir


class Value:
    """An SSA value: its llvmlite type and how instructions refer to it."""
    __slots__ = ("type", "ref")

    def __init__(self, ty, ref):
        self.type, self.ref = ty, ref

    def get_reference(self):
        return self.ref


#: `Constant`'s value for ``undef``.
Undefined = object()


class Constant(Value):
    """A constant of llvmlite type ``ty``: an int, a float, None (zero, or null), `Undefined`,
    or a list of a vector's elements."""
    __slots__ = ("constant",)

    def __init__(self, ty, value):
        super().__init__(ty, _constant_text(ty, value))
        self.constant = value


def _constant_text(ty, value) -> str:
    if value is Undefined:
        return "undef"
    if value is None:
        return "null" if isinstance(ty, ir.PointerType) else "zeroinitializer"
    if isinstance(value, list):
        return "<" + ", ".join(f"{ty.element} {_constant_text(ty.element, v)}"
                               for v in value) + ">"
    if isinstance(ty, (ir.FloatType, ir.DoubleType)):      # exact as a double, in hex
        return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"
    return str(int(value))


def _operand(v) -> str:
    return f"{v.type} {v.get_reference()}"


class Block:
    __slots__ = ("name", "function", "lines", "is_terminated")

    def __init__(self, function, name):
        self.function, self.name = function, name
        self.lines = []                 # str, or a `_Phi` / `_Switch` completed later
        self.is_terminated = False

    @property
    def ref(self):
        return f'%"{self.name}"'


class _Phi(Value):
    """A phi: a value, and the line of its block that names its incoming values, which are
    added after it is made (a loop's latch comes later)."""
    __slots__ = ("incoming",)

    def __init__(self, ty, ref):
        super().__init__(ty, ref)
        self.incoming = []

    def add_incoming(self, v, block):
        self.incoming.append((v, block))

    def __str__(self):
        pairs = ", ".join(f"[{v.get_reference()}, {b.ref}]" for v, b in self.incoming)
        return f"{self.ref} = phi {self.type} {pairs}"


class _Switch:
    def __init__(self, value, default):
        self.value, self.default, self.cases = value, default, []

    def add_case(self, constant, block):
        self.cases.append((constant, block))

    def __str__(self):
        cases = " ".join(f"{_operand(c)}, label {b.ref}" for c, b in self.cases)
        return f"switch {_operand(self.value)}, label {self.default.ref} [{cases}]"


class Function(Value):
    """A function of ``module``: defined once a block is appended, else declared."""
    __slots__ = ("module", "name", "ftype", "args", "blocks", "linkage", "_names")

    def __init__(self, module, ftype, name):
        super().__init__(ftype.as_pointer(), f'@"{name}"')
        self.module, self.name, self.ftype = module, name, ftype
        self.args = tuple(Value(t, f"%a{k}") for k, t in enumerate(ftype.args))
        self.blocks, self.linkage, self._names = [], "", 0
        module.globals[name] = self

    def append_basic_block(self, name="b") -> Block:
        block = Block(self, self.fresh(name))
        self.blocks.append(block)
        return block

    def fresh(self, hint) -> str:
        self._names += 1
        return f"{hint}.{self._names}"

    def __str__(self):
        ret = self.ftype.return_type
        if not self.blocks:
            return f'declare {ret} {self.ref}({", ".join(str(t) for t in self.ftype.args)})'
        params = ", ".join(_operand(a) for a in self.args)
        linkage = f"{self.linkage} " if self.linkage else ""
        body = "\n".join(f"{b.name}:\n" + "\n".join(f"  {line}" for line in b.lines)
                         for b in self.blocks)
        return f"define {linkage}{ret} {self.ref}({params})\n{{\n{body}\n}}"


class Module:
    def __init__(self, name):
        self.name = name
        self.globals = {}               # name -> Function, or the text of a global variable

    def external_global(self, name, ty) -> Value:
        """A global variable defined elsewhere (a run-time setting), declared once."""
        self.globals.setdefault(name, f'@"{name}" = external global {ty}')
        return Value(ty.as_pointer(), f'@"{name}"')

    def __str__(self):
        return f'; ModuleID = "{self.name}"\n' + "\n\n".join(map(str, self.globals.values())) + "\n"


def _instruction(op):
    """The builder method for binary instruction ``op``."""
    def emit(self, a, b):
        return self._binary(op, a, b)
    emit.__name__ = op
    return emit


class IRBuilder:
    def __init__(self, block=None):
        self.block = block

    @property
    def function(self):
        return self.block.function

    def position_at_end(self, block):
        self.block = block

    def _emit(self, ty, text, hint="v") -> Value:
        value = Value(ty, f"%{hint}{self.function.fresh('')[1:]}")
        self.block.lines.append(f"{value.ref} = {text}")
        return value

    def _terminate(self, text):
        self.block.lines.append(text)
        self.block.is_terminated = True

    # -- arithmetic and comparisons --

    def _binary(self, op, a, b):
        return self._emit(a.type, f"{op} {_operand(a)}, {b.get_reference()}")

    add, sub, mul, sdiv = (_instruction(op) for op in ("add", "sub", "mul", "sdiv"))
    and_, or_, xor = (_instruction(op) for op in ("and", "or", "xor"))
    fadd, fmul = _instruction("fadd"), _instruction("fmul")

    def _compare(self, op, predicate, a, b):
        ty = a.type
        result = ir.VectorType(ir.IntType(1), ty.count) if isinstance(ty, ir.VectorType) \
            else ir.IntType(1)
        return self._emit(result, f"{op} {predicate} {_operand(a)}, {b.get_reference()}")

    def icmp_signed(self, op, a, b):
        return self._compare("icmp", _SIGNED[op], a, b)

    def icmp_unsigned(self, op, a, b):
        return self._compare("icmp", _UNSIGNED[op], a, b)

    def fcmp_unordered(self, op, a, b):
        """``op``: a comparison ("!=") or LLVM's own predicate ("une")."""
        return self._compare("fcmp", "u" + _ORDERED[op] if op in _ORDERED else op, a, b)

    def select(self, cond, a, b):
        return self._emit(a.type, f"select {_operand(cond)}, {_operand(a)}, {_operand(b)}")

    # -- conversions, memory, vectors --

    def sext(self, v, ty):
        return self._emit(ty, f"sext {_operand(v)} to {ty}")

    def bitcast(self, v, ty):
        return self._emit(ty, f"bitcast {_operand(v)} to {ty}")

    def gep(self, ptr, indices):
        ty = ptr.type.pointee
        result = ty
        for index in indices[1:]:
            result = result.elements[index.constant] if isinstance(result, ir.LiteralStructType) \
                else result.element
        refs = ", ".join(_operand(i) for i in indices)
        return self._emit(result.as_pointer(), f"getelementptr {ty}, {_operand(ptr)}, {refs}")

    def load(self, ptr, align=None):
        tail = f", align {align}" if align else ""
        return self._emit(ptr.type.pointee, f"load {ptr.type.pointee}, {_operand(ptr)}{tail}")

    def store(self, value, ptr, align=None):
        tail = f", align {align}" if align else ""
        self.block.lines.append(f"store {_operand(value)}, {_operand(ptr)}{tail}")

    def alloca(self, ty):
        return self._emit(ty.as_pointer(), f"alloca {ty}")

    def insert_element(self, vector, value, index):
        return self._emit(vector.type, f"insertelement {_operand(vector)}, {_operand(value)}, "
                                       f"{_operand(index)}")

    def shuffle_vector(self, a, b, mask):
        ty = ir.VectorType(a.type.element, mask.type.count)
        return self._emit(ty, f"shufflevector {_operand(a)}, {_operand(b)}, {_operand(mask)}")

    def call(self, fn, args, fastmath=()):
        """``fn``: a `Function`, or a value pointing to one (an address found at run time)."""
        ret = (fn.ftype if isinstance(fn, Function) else fn.type.pointee).return_type
        text = f"call {' '.join(fastmath) + ' ' if fastmath else ''}{ret} {fn.ref}(" + \
            ", ".join(map(_operand, args)) + ")"
        if isinstance(ret, ir.VoidType):
            self.block.lines.append(text)
            return None
        return self._emit(ret, text)

    def phi(self, ty):
        value = _Phi(ty, f"%p{self.function.fresh('')[1:]}")
        self.block.lines.append(value)
        return value

    # -- control flow --

    def branch(self, block):
        self._terminate(f"br label {block.ref}")

    def cbranch(self, cond, then, otherwise):
        self._terminate(f"br {_operand(cond)}, label {then.ref}, label {otherwise.ref}")

    def switch(self, value, default):
        switch = _Switch(value, default)
        self._terminate(switch)
        return switch

    def ret_void(self):
        self._terminate("ret void")

    def ret(self, value):
        self._terminate(f"ret {_operand(value)}")

    @contextlib.contextmanager
    def if_then(self, cond):
        then, end = self.function.append_basic_block("then"), self.function.append_basic_block("endif")
        self.cbranch(cond, then, end)
        self.position_at_end(then)
        yield
        if not self.block.is_terminated:
            self.branch(end)
        self.position_at_end(end)

    @contextlib.contextmanager
    def if_else(self, cond):
        fn = self.function
        then, otherwise, end = (fn.append_basic_block(n) for n in ("then", "else", "endif"))
        self.cbranch(cond, then, otherwise)

        @contextlib.contextmanager
        def arm(block):
            self.position_at_end(block)
            yield
            if not self.block.is_terminated:
                self.branch(end)
        yield arm(then), arm(otherwise)
        self.position_at_end(end)


_SIGNED = {"<": "slt", "<=": "sle", ">": "sgt", ">=": "sge", "==": "eq", "!=": "ne"}
_UNSIGNED = {"<": "ult", "<=": "ule", ">": "ugt", ">=": "uge", "==": "eq", "!=": "ne"}
_ORDERED = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
