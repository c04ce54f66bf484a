"""Whole-program lowering (DESIGN.md decision 4): one LLVM entry function checks its arguments,
runs every node of an optimised graph and returns the results; Python only calls it."""
from __future__ import annotations

from ..ir.dims import Dim
from ..ir.graph import Graph
from ..ir.ops import BODY_PARAMS, CONTROL, MOVEMENT
from ..ir.ops.kernel import used_inputs
from .context import Arr, Context
from .lower import LOWER
from .lower.loops import copy
from .profiling import Profiler, body_timer, node_timer


def lower_graph(graph: Graph, parallel: bool = True, profile: bool = False) -> str:
    """LLVM IR text of ``lumen_entry`` for ``graph`` (whose nodes all have a lowering); with
    ``parallel``, large loops run on several threads (parallel.py); with ``profile``, the
    nodes are timed into counters (profiling.py)."""
    ctx = Context(graph.name, parallel)
    ctx.profiler = Profiler(ctx) if profile else None
    env = {}
    arrays = ctx.read_arguments(graph.inputs, graph.input_contiguous, len(graph.captured))
    for v, arr in zip(graph.inputs, arrays):
        arr.dims = graph.unaliased(arr.dims)
        env[v] = arr
        for axis, d in enumerate(v.type.shape):
            if d.op == "input":
                ctx.dim_values[d] = arr.shape[axis]
    ctx.require_guards(graph.guards)
    _precompute_dims(ctx, graph)
    # Every size check runs before any kernel: passes may rely on sizes the checks prove equal.
    for check, where in graph.all_checks():
        _emit_check(ctx, check, where)

    first_output = {}
    for pos, v in enumerate(graph.outputs):
        first_output.setdefault(v, pos)
    scope = _FunctionScope(ctx, graph, first_output)
    scope.donate(env)
    scope.run(env)
    for pos, v in enumerate(graph.outputs):
        if scope.produced_into.get(v) != pos:
            copy(ctx, env[v], ctx.numpy_result(v, pos))
    if ctx.profiler is not None:
        ctx.profiler.finish()
    ctx.finish(len(graph.outputs))
    return str(ctx.module)


def lower_body(ctx, body: Graph, env) -> list:
    """Lower a loop or branch body at the current position (inside a context frame: its
    buffers are freed when the frame is popped); ``env`` maps its inputs. -> output arrays."""
    for check, where in body.all_checks():
        _emit_check(ctx, check, where)
    outer = ctx.new_array
    ctx.new_array = lambda value, inputs=(): ctx.malloc_buffer(value.dtype, value.type.shape)
    try:
        with body_timer(ctx, body):
            for node in body.nodes:
                ctx.where = node.loc or node.op
                with node_timer(ctx, node):
                    outs = LOWER[node.op](ctx, node, [env[v] for v in node.inputs])
                env.update(zip(node.outputs, outs))
    finally:
        ctx.new_array = outer
    return [env[v] for v in body.outputs]


class _FunctionScope:
    """The top level of the function: results go straight into the returned NumPy arrays,
    dead buffers are reused, elementwise kernels run in place where an input dies."""

    def __init__(self, ctx, graph, first_output):
        self.ctx, self.graph, self.first_output = ctx, graph, first_output
        self.produced_into = {}
        self.donated = {}  # result value -> the donated memory it is computed in
        self.last_use = _last_uses(graph)
        self.live = {}     # buffer slot -> values still needed that live in it
        self.index = 0

    def donate(self, env):
        """Give each result `_donations` plans the memory of its donated argument: in the
        prologue, the argument's elements move to the result where that memory may not be
        written (read-only, or shared with another argument), and every later read of the
        argument reads the result's memory (`Context.donated_result`)."""
        ctx = self.ctx
        arrays = [env[v] for v in self.graph.inputs if not v.type.weak]
        for value, u in _donations(self.graph, self.first_output, self.last_use).items():
            donor = env[self.graph.inputs[u]]
            usable = ctx.writeable(ctx.argument_objects[u])
            for other in arrays:
                if other is not donor:
                    usable = ctx.builder.and_(usable, ctx.disjoint(donor, other))
            pos = self.first_output[value]
            result = ctx.donated_result(value, pos, donor, ctx.argument_objects[u], usable)
            env[self.graph.inputs[u]] = Arr(result.data, donor.shape, donor.strides,
                                            donor.dtype, donor.dims, True)
            self.donated[value] = result
            self.produced_into[value] = pos

    def new_array(self, value, inputs=()):
        """Where ``value`` is computed: the memory of a donated argument (`donate`), its result
        array if it is returned, else an input's buffer that dies here (in place; ``inputs``
        are (Value, Arr) read at the same positions), else a dead or new buffer."""
        if value in self.donated:
            return self.donated.pop(value)
        pos = self.first_output.get(value)
        if pos is not None and value not in self.produced_into:
            self.produced_into[value] = pos
            return self.ctx.numpy_result(value, pos)
        for v, arr in inputs:
            slot = arr.owner
            if slot is not None and arr.contiguous and arr.dtype.itemsize == value.dtype.itemsize \
                    and tuple(arr.dims) == tuple(value.type.shape) \
                    and self.last_use.get(v) == self.index and self.live.get(slot) == {v}:
                self.live[slot].clear()
                return Arr(arr.data, arr.shape, arr.strides, value.dtype, value.type.shape, True, slot)
        return self.ctx.malloc_buffer(value.dtype, value.type.shape)

    def run(self, env):
        ctx = self.ctx
        ctx.new_array = self.new_array
        for index, node in enumerate(self.graph.nodes):
            self.index = index
            ctx.where = node.loc or node.op
            with node_timer(ctx, node):
                outs = LOWER[node.op](ctx, node, [env[v] for v in node.inputs])
            for v, a in zip(node.outputs, outs):
                env[v] = a
                if a.owner is not None:
                    self.live.setdefault(a.owner, set()).add(v)
            for slot, values in list(self.live.items()):
                values.difference_update([v for v in values if self.last_use.get(v, index) <= index])
                if not values:
                    ctx.release_buffer(slot)
                    del self.live[slot]


#: Ops whose results may share an operand's memory (views, and values a loop or branch
#: passes through); every other op writes an array of its own.
_MAY_SHARE = MOVEMENT | CONTROL


def _donations(graph, first_output, last_use) -> dict:
    """Result value -> position of the donated argument whose memory it may be computed in:
    an elementwise kernel's result (or a gemm's, the argument its added ``C``) of the
    argument's dtype and sizes, made by the node that reads the argument last, at the
    positions it writes, while nothing else sharing its memory (a view) is still to be read."""
    if not graph.donated:
        return {}
    plan, index_of = {}, {n: k for k, n in enumerate(graph.nodes)}
    for u in sorted(graph.donated):
        arg = graph.inputs[u]
        if not graph.input_contiguous[u] or arg.type.ndim == 0:
            continue
        shared = {arg}
        for node in graph.nodes:
            if node.op in _MAY_SHARE and shared.intersection(node.inputs):
                shared.update(node.outputs)
        readers = [n for n in graph.nodes if arg in n.inputs]
        if not readers:
            continue
        node = readers[-1]
        k = index_of[node]
        value = node.outputs[0]
        if last_use.get(arg) != k or value not in first_output or value in plan or \
                value.dtype != arg.dtype or \
                graph.unaliased(value.type.shape) != graph.unaliased(arg.type.shape) or \
                any(last_use.get(w, -1) >= k for w in shared - {arg}):
            continue
        if node.op in ("kernel", "kernel_map_reduce"):  # a reduction: in its epilogue only
            ok = node.params["reduce"] is None or \
                not any(node.inputs[i] is arg for i in used_inputs(node.params["body"]))
        elif node.op == "kernel_matvec":
            ok = arg in node.inputs[:-1] and arg is not node.inputs[-1]
        elif node.op == "gemm":
            ok = node.inputs[2] is arg and arg not in node.inputs[:2] and node.params["beta"] != 0
        else:
            ok = False
        if ok:
            plan[value] = u
    return plan


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

    def walk_graph(g):
        for v in g.inputs:
            walk(v.type.shape)
        for node in g.nodes:
            for v in node.outputs:
                walk(v.type.shape)
            walk(list(node.params.values()))
            for key in BODY_PARAMS.get(node.op, ()):
                walk_graph(node.params[key])
        for c, _where in g.all_checks():
            walk([c.a, c.b])

    walk_graph(graph)


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
