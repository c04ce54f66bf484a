"""`kernel`: a loop nest over an iteration space with a scalar body (DESIGN.md decision 1).

The body is a small SSA program of elementwise primitives over scalars. Its first
``n_inputs`` values are the kernel's inputs read at the current index (each input broadcasts
to the iteration space like a NumPy operand); each further value is one `ScalarOp`. The last
value is the result, which is either stored at every index or, when ``reduce`` is set, combined
over the reduced axes. A reducing kernel may carry an ``epilogue``: a second scalar program
applied to each reduced value before it is stored (value 0 is the reduced value, value 1 + i is
input i read at the output's index), so that ``log(sum(exp(x)))`` finishes in the same pass.
Both backends lower this one structure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dims import Dim
from ..types import TensorType
from .base import Kind, OpDef
from .reduce import reduce_dtype


@dataclass(frozen=True)
class ScalarOp:
    """``op(values[args...])`` with result dtype ``dtype``; ``params`` as sorted (key, value)s."""
    op: str
    args: tuple
    dtype: np.dtype
    params: tuple = ()


@dataclass(frozen=True)
class Reduction:
    op: str          # a reduce primitive: sum, prod, max, min, argmax, argmin, any, all
    axes: tuple      # axes of the iteration space
    keepdims: bool


@dataclass(frozen=True)
class KernelBody:
    n_inputs: int
    ops: tuple       # of ScalarOp

    def text(self, input_names, prefix="s") -> str:
        names = list(input_names)
        parts = []
        for i, s in enumerate(self.ops):
            name = f"{prefix}{i}"
            extra = "".join(f", {k}={v}" for k, v in s.params)
            parts.append(f"{name} = {s.op}({', '.join(names[a] for a in s.args)}{extra})")
            names.append(name)
        return "; ".join(parts)


def _out_shape(space, red):
    if red is None:
        return tuple(space)
    if red.keepdims:
        return tuple(Dim.const(1) if i in red.axes else d for i, d in enumerate(space))
    return tuple(d for i, d in enumerate(space) if i not in red.axes)


def body_dtype(body: KernelBody, input_dtypes):
    return body.ops[-1].dtype if body.ops else input_dtypes[0]


def _infer(types, params):
    body, red, space = params["body"], params["reduce"], params["space"]
    dtype = body_dtype(body, [t.dtype for t in types])
    if red is not None:
        dtype = reduce_dtype(red.op, dtype)
        epilogue = params.get("epilogue")
        if epilogue is not None and epilogue.ops:
            dtype = epilogue.ops[-1].dtype
    return [TensorType(dtype, _out_shape(space, red))], []


def used_inputs(body, n_lead=0) -> set:
    """Indices of the kernel inputs a body reads (a body without ops reads value 0); an
    epilogue (``n_lead`` 1: its value 0 is the reduced one) reads input i as value 1 + i, and
    none where there is no epilogue (``body`` None)."""
    if body is None:
        return set()
    if not body.ops:
        return {0} if n_lead == 0 else set()
    return {a - n_lead for s in body.ops for a in s.args if n_lead <= a < body.n_inputs}


def evaluate_body(body: KernelBody, arrays, shapes):
    """Run a kernel body with NumPy arrays (broadcast like the iteration space)."""
    return body_values(body, arrays, shapes)[-1] if body.ops else arrays[0]


def body_values(body: KernelBody, arrays, shapes) -> list:
    """Every value of a kernel body run with NumPy arrays: the inputs, then each op's."""
    from . import OPS
    values = list(arrays)
    for s in body.ops:
        (out,) = OPS[s.op].reference([values[a] for a in s.args], dict(s.params), shapes)
        values.append(out)
    return values


def _reference(arrays, params, shapes):
    from . import OPS
    space = tuple(d.evaluate(shapes) for d in params["space"])
    spread = [np.broadcast_to(a, space[len(space) - a.ndim:]) if a.ndim else a for a in arrays]
    out = np.broadcast_to(evaluate_body(params["body"], spread, shapes), space)
    red = params["reduce"]
    if red is None:
        return [np.array(out, order="C")]          # (ascontiguousarray makes 0-d 1-d)
    (reduced,) = OPS[red.op].reference([out], {"axes": red.axes, "keepdims": red.keepdims}, shapes)
    epilogue = params.get("epilogue")
    if epilogue is None:
        return [reduced]
    shape = np.shape(reduced)
    # the epilogue reads only inputs of the reduced shape; others (of the iteration space's) it
    # never uses cannot be broadcast to that shape
    used = used_inputs(epilogue, n_lead=1)
    extra = [np.broadcast_to(a, shape) if np.ndim(a) and k in used else a
             for k, a in enumerate(arrays)]
    return [np.asarray(evaluate_body(epilogue, [reduced] + extra, shapes))]


def _matvec_infer(types, params):
    (out,), _ = _infer(types[:-1], params)
    w, v = types[params["matrix"]], types[-1]
    return [out, TensorType(w.dtype, (v.shape[0], w.shape[0]))], []


def _matvec_reference(arrays, params, shapes):
    """The elementwise kernel's result, and ``v @ W.T`` (W: input ``matrix``; v: the last)."""
    (out,) = _reference(arrays[:-1], params, shapes)
    return [out, arrays[-1] @ arrays[params["matrix"]].T]


def _map_reduce_infer(types, params):
    (out,), _ = _infer(types, params)
    body, keep = params["body"], params["keep"]
    dtype = body.ops[keep - body.n_inputs].dtype
    return [out, TensorType(dtype, tuple(params["space"]))], []


def _map_reduce_reference(arrays, params, shapes):
    """The reduction's result, and body value ``keep`` at every point of the space."""
    (out,) = _reference(arrays, params, shapes)
    space = tuple(d.evaluate(shapes) for d in params["space"])
    spread = [np.broadcast_to(a, space[len(space) - a.ndim:]) if a.ndim else a for a in arrays]
    kept = body_values(params["body"], spread, shapes)[params["keep"]]
    return [out, np.array(np.broadcast_to(kept, space), order="C")]


#: `kernel_map_reduce`: a reducing kernel that also returns one of its body's values (index
#: ``params["keep"]``, an op's) at every point of its space -- an elementwise kernel and a
#: reduction of the same values (``e = exp(z - m); s = e.sum(1)``) in one pass. The CPU backend
#: makes it (passes/reduce_siblings.py).
#: `kernel_matvec`: an elementwise kernel over a matrix W's space (W one of its inputs, at
#: ``params["matrix"]``) that also returns the row-vector product ``v @ W.T`` (v, of shape
#: (1, W's columns), its last input), both in one pass over W. The CPU backend makes it from
#: an SGD step's backward product and weight update (passes/matvec_siblings.py).
KERNEL_OPS = ("kernel", "kernel_matvec", "kernel_map_reduce")

OPS = {"kernel": OpDef("kernel", Kind.KERNEL, _infer, _reference),
       "kernel_matvec": OpDef("kernel_matvec", Kind.KERNEL, _matvec_infer, _matvec_reference,
                              differentiable=False),
       "kernel_map_reduce": OpDef("kernel_map_reduce", Kind.KERNEL, _map_reduce_infer,
                                  _map_reduce_reference, differentiable=False)}
