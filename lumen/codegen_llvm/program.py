"""Whole-program lowering (DESIGN.md decision 4): one LLVM entry function runs every node of an
optimised graph; the executor only checks arguments and calls it."""
from __future__ import annotations

from ..ir.dims import Dim
from ..ir.graph import Graph
from .context import Arr, Context
from .lower import LOWER
from .lower.loops import copy


def lower_graph(graph: Graph) -> str:
    """LLVM IR text of ``lumen_entry`` for ``graph`` (whose nodes all have a lowering)."""
    ctx = Context(graph.name)
    env = {}
    for pos, v in enumerate(graph.inputs):
        arr = ctx.read_input(pos, v, graph.input_contiguous[pos])
        arr.dims = tuple(graph.dim_aliases.get(d, d) for d in arr.dims)
        env[v] = arr
        for axis, d in enumerate(v.type.shape):
            if d.op == "input":
                ctx.dim_values[d] = arr.shape[axis]
    _precompute_dims(ctx, graph)

    first_output = {}
    for pos, v in enumerate(graph.outputs):
        first_output.setdefault(v, pos)
    produced_into = {}


    # Every size check runs before any kernel: passes may rely on sizes the checks prove equal.
    for node in graph.nodes:
        for check in node.checks:
            _emit_check(ctx, check, f"{node.op} at {node.loc or node.op}")

    last_use = _last_uses(graph)
    live = {}     # buffer slot -> values still needed that live in it
    current = {}

    def new_array(value, inputs=()):
        """Where ``value`` is computed: its result array if it is returned, else an input's
        buffer that dies here (in place; ``inputs`` are (Value, Arr) read at the same
        positions), else a dead or new buffer."""
        pos = first_output.get(value)
        if pos is not None and value not in produced_into:
            produced_into[value] = pos
            return ctx.numpy_result(value, pos)
        for v, arr in inputs:
            slot = arr.owner
            if slot is not None and arr.contiguous and arr.dtype.itemsize == value.dtype.itemsize \
                    and tuple(arr.dims) == tuple(value.type.shape) \
                    and last_use.get(v) == current["index"] and live.get(slot) == {v}:
                live[slot].clear()
                return Arr(arr.data, arr.shape, arr.strides, value.dtype, value.type.shape, True, slot)
        return ctx.malloc_buffer(value.dtype, value.type.shape)
    ctx.new_array = new_array

    for index, node in enumerate(graph.nodes):
        current["index"] = index
        ctx.where = node.loc or node.op
        outs = LOWER[node.op](ctx, node, [env[v] for v in node.inputs])
        for v, a in zip(node.outputs, outs):
            env[v] = a
            if a.owner is not None:
                live.setdefault(a.owner, set()).add(v)
        for slot, values in list(live.items()):
            values.difference_update([v for v in values if last_use.get(v, index) <= index])
            if not values:
                ctx.release_buffer(slot)
                del live[slot]

    for pos, v in enumerate(graph.outputs):
        if produced_into.get(v) != pos:
            copy(ctx, env[v], ctx.numpy_result(v, pos))
    ctx.finish()
    return str(ctx.module)


def _last_uses(graph):
    """Value -> index of the last node reading it (graph outputs: never dead)."""
    last = {}
    for index, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[v] = index
    for v in graph.outputs:
        last[v] = len(graph.nodes)
    return last


def _precompute_dims(ctx, graph):
    """Evaluate every size the program uses once, in the prologue (so each dominates its uses)."""
    def visit(d):
        if not isinstance(d, Dim) or d.op in ("const", "input") or d in ctx.dim_values:
            return
        for a in d.args:
            visit(a)
        ctx.dim_values[d] = ctx.dim(d)

    def walk(obj):
        if isinstance(obj, Dim):
            visit(obj)
        elif isinstance(obj, (tuple, list)):
            for o in obj:
                walk(o)

    for node in graph.nodes:
        for v in node.outputs:
            walk(v.type.shape)
        walk(list(node.params.values()))
        for c in node.checks:
            walk([c.a, c.b])


def _emit_check(ctx, check, where):
    b = ctx.builder
    a, c = ctx.dim(check.a), ctx.dim(check.b)
    one = ctx.i64(1)
    if check.kind == "bcast":
        ok = b.or_(b.icmp_signed("==", a, c), b.or_(b.icmp_signed("==", a, one), b.icmp_signed("==", c, one)))
    elif check.kind == "expand":
        ok = b.or_(b.icmp_signed("==", a, c), b.icmp_signed("==", a, one))
    elif check.kind == "eq":
        ok = b.icmp_signed("==", a, c)
    else:
        ok = b.icmp_signed("<=", a, c)
    ctx.check(ok, check.error.__name__, f"{check.what} ({where})")
