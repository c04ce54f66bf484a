"""Control flow: `scan`, `while`, `while_grad`, `cond`. Each holds nested graphs (bodies) whose
sizes are the enclosing function's `Dim`s, so a body is lowered inside the same native function.

- ``scan``: inputs = initial carries, sequences (xs), captured values. The body maps
  (carries, one slice of each sequence, captured) -> (new carries, per-step outputs); the node
  returns the final carries and the per-step outputs stacked along a new leading axis of
  length ``length`` (a run-time size).
- ``while``: inputs = initial state, captured values; ``cond`` maps (state, captured) -> a
  0-d bool, ``body`` maps (state, captured) -> state; returns the final state.
- ``while_grad``: reverse mode through a while loop. inputs = initial state, captured values,
  cotangents of the final state's float parts; ``cond`` / ``body`` as in ``while``, ``vjp`` maps
  (state, captured, cotangents of the next state's float parts, captured values' cotangents so
  far) -> (cotangents of the state's float parts, captured values' cotangents after the step).
  The loop runs recording each step's incoming state, then ``vjp`` runs from the last step back
  to the first; returns the final state, then the cotangents of the initial state's and of the
  captured values' float parts. Its trip count is known only at run time, so the recorded
  states never appear as IR values.
- ``cond``: inputs = predicate, operands, captured values; ``true`` / ``false`` map
  (operands, captured) -> results of the same types; only the branch taken runs.
"""
from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..graph import Check
from ..types import TensorType
from .base import Kind, OpDef


def _scan_infer(types, params):
    body, n_carry, n_xs = params["body"], params["n_carry"], params["n_xs"]
    length = params["length"]
    outs = [o.type for o in body.outputs]
    carries = [TensorType(t.dtype, t.shape) for t in outs[:n_carry]]
    ys = [TensorType(t.dtype, (length,) + tuple(t.shape)) for t in outs[n_carry:]]
    checks = [Check("eq", t.shape[0], length, "scan: every sequence must have the loop's length")
              for t in types[n_carry:n_carry + n_xs] if t.shape[0] != length]
    return carries + ys, checks


def run_scan(params, arrays, evaluate, size, empty):
    """scan's semantics, step by step on the host. ``evaluate(graph, arrays)`` runs a body,
    ``size(dim)`` gives a size its value, ``empty(shape, dtype)`` allocates: NumPy's for the
    reference interpreter, CuPy's for the GPU executor (whose bodies launch kernels)."""
    body, n_carry, n_xs = params["body"], params["n_carry"], params["n_xs"]
    carries = list(arrays[:n_carry])
    xs, captured = arrays[n_carry:n_carry + n_xs], list(arrays[n_carry + n_xs:])
    n = size(params["length"])
    ys = [empty((n,) + tuple(size(d) for d in v.type.shape), v.dtype)
          for v in body.outputs[n_carry:]]
    for t in (range(n - 1, -1, -1) if params["reverse"] else range(n)):
        out = evaluate(body, carries + [x[t] for x in xs] + captured)
        carries = list(out[:n_carry])
        for y, step in zip(ys, out[n_carry:]):
            y[t] = step
    return carries + ys


def run_while(params, arrays, evaluate):
    """while's semantics on the host (``evaluate`` as for `run_scan`)."""
    n_state = params["n_state"]
    state, captured = list(arrays[:n_state]), list(arrays[n_state:])
    while bool(evaluate(params["cond"], state + captured)[0]):
        state = list(evaluate(params["body"], state + captured))
    return state


def run_while_grad(params, arrays, evaluate, zeros_like):
    """while_grad's semantics on the host: the loop recording each step's incoming state, then
    the steps' vector-Jacobian products from the last step back (``zeros_like(a, dtype)``
    starts the captured values' cotangents)."""
    body, n_state = params["body"], params["n_state"]
    n_caps = len(body.inputs) - n_state
    state, captured = list(arrays[:n_state]), list(arrays[n_state:n_state + n_caps])
    cot = list(arrays[n_state + n_caps:])
    acc = [zeros_like(a, v.dtype) for a, v in zip(captured, body.inputs[n_state:])
           if v.dtype.kind == "f"]
    tape = []
    while bool(evaluate(params["cond"], state + captured)[0]):
        tape.append(state)
        state = list(evaluate(body, state + captured))
    for recorded in reversed(tape):
        out = evaluate(params["vjp"], recorded + captured + cot + acc)
        cot, acc = out[:len(cot)], out[len(cot):]
    return state + cot + acc


def run_cond(params, arrays, evaluate):
    """cond's semantics on the host: only the branch taken runs."""
    branch = params["true"] if bool(arrays[0]) else params["false"]
    return list(evaluate(branch, list(arrays[1:])))


def _interpreter(shapes):
    from ..interpret import interpret
    return lambda graph, arrays: interpret(graph, arrays, shapes=shapes)


def _scan_reference(arrays, params, shapes):
    return run_scan(params, arrays, _interpreter(shapes), lambda d: d.evaluate(shapes), np.empty)


def _while_infer(types, params):
    return [o.type for o in params["body"].outputs], []


def _while_reference(arrays, params, shapes):
    return run_while(params, arrays, _interpreter(shapes))


def _while_grad_infer(types, params):
    return [o.type for o in params["body"].outputs] + [o.type for o in params["vjp"].outputs], []


def _while_grad_reference(arrays, params, shapes):
    return run_while_grad(params, arrays, _interpreter(shapes),
                          lambda a, dtype: np.zeros(np.shape(a), dtype))


def _cond_infer(types, params):
    return [o.type for o in params["true"].outputs], []


def _cond_reference(arrays, params, shapes):
    return run_cond(params, arrays, _interpreter(shapes))


OPS = {
    "scan": OpDef("scan", Kind.CONTROL, _scan_infer, _scan_reference),
    "while": OpDef("while", Kind.CONTROL, _while_infer, _while_reference),
    "while_grad": OpDef("while_grad", Kind.CONTROL, _while_grad_infer, _while_grad_reference),
    "cond": OpDef("cond", Kind.CONTROL, _cond_infer, _cond_reference),
}

__all__ = ["OPS", "Dim"]
