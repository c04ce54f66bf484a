"""Loop fusion: merges kernels so that data passes through memory once.

- elementwise into elementwise: a producer whose result has exactly the consumer's iteration
  space is inlined into the consumer's body;
- elementwise into a reduction: the producer becomes the reduction's body;
- a reduction into its elementwise consumer: a consumer iterating exactly over the reduction's
  result (and its only reader) becomes the reduction's epilogue, so ``m + log(sum(exp(x - m)))``
  is two passes: the max, then the sum with its epilogue.

A producer read by several consumers (or returned by the function) is inlined only when its body
is cheap (a few arithmetic operations): an expensive producer is never computed twice. A consumer
that reads a value twice (``e * e``) is one reader: inlined ops are merged within a body. A cheap
producer over a smaller space that broadcasts into the consumer's (the float count a ``mean``
divides by, a column of shifts) is recomputed rather than given a kernel of its own -- where it
is the same along the consumer's innermost axis, so that LLVM computes it once per row. A row
(a value that varies along the innermost axis and is repeated down the rows) would be computed
again for every row: it stays a kernel of its own, whose result the consumer reads. In an SGD
step at batch 1, ``W - lr * (h.T * (d * (1 - t * t)))`` would otherwise compute ``d * (1 - t *
t)`` at each of W's elements: three of the update's seven operations per element.
"""
from __future__ import annotations

from ..ir.ops.kernel import KernelBody, ScalarOp, used_inputs
from .rebuild import Rebuilder
from .rewrite import remove_dead

CHEAP_OPS = frozenset(("add", "subtract", "multiply", "negative", "positive", "cast", "select",
                       "maximum", "minimum", "absolute", "equal", "not_equal", "less",
                       "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
                       "logical_not", "square"))
CHEAP_SIZE = 3


def _is_cheap(body: KernelBody) -> bool:
    return len(body.ops) <= CHEAP_SIZE and all(s.op in CHEAP_OPS for s in body.ops)


def _same_dims(a, b) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b))


def _recomputed_once_per_row(shape, space) -> bool:
    """A value of ``shape`` broadcasts to ``space`` (trailing axes aligned, 1 stretches) and
    inlined, is computed once per row: it is the same along the innermost axis (LLVM hoists
    it), or no outer axis longer than 1 repeats it. A repeated row would be computed again for
    every row."""
    lead = len(space) - len(shape)
    if lead < 0 or not all(d == s or d.value == 1 for d, s in zip(shape, space[lead:])):
        return False
    if not shape or shape[-1].value == 1:
        return True
    return all(s.value == 1 for k, s in enumerate(space[:-1])
               if k < lead or shape[k - lead].value == 1)


class _Program:
    """A scalar program being assembled: deduplicated kernel inputs, ops, and optionally one
    leading value (an epilogue's reduced value)."""

    def __init__(self, inputs=()):
        self.inputs, self.ops = list(inputs), []
        self._seen = {}

    def input(self, value):
        for i, v in enumerate(self.inputs):
            if v is value:
                return ("in", i)
        self.inputs.append(value)
        return ("in", len(self.inputs) - 1)

    def add(self, op: ScalarOp, args):
        """Append ``op(args)``, or reuse an identical op already in the program."""
        key = (op, tuple(args))
        ref = self._seen.get(key)
        if ref is None:
            self.ops.append(key)
            ref = self._seen[key] = ("op", len(self.ops) - 1)
        return ref

    def inline(self, body: KernelBody, arg_refs):
        """Append ``body`` with its values 0..n_inputs-1 bound to ``arg_refs``; -> result ref."""
        refs = list(arg_refs)
        for op in body.ops:
            refs.append(self.add(op, [refs[a] for a in op.args]))
        return refs[-1] if body.ops else refs[0]

    def freeze(self, result, n_lead=0) -> KernelBody:
        """A `KernelBody` whose last value is ``result``; ``n_lead`` leading values precede
        the inputs."""
        if result == ("in", 0) and n_lead == 0 and not self.ops:
            return KernelBody(len(self.inputs), ())
        if result != ("op", len(self.ops) - 1):
            dtype = self._dtype(result)
            result = self.add(ScalarOp("cast", (0,), dtype, (("dtype", dtype),)), [result])
        n_in = n_lead + len(self.inputs)
        base = {"lead": 0, "in": n_lead, "op": n_in}
        ops = tuple(ScalarOp(op.op, tuple(base[k] + i for k, i in args), op.dtype, op.params)
                    for op, args in self.ops)
        return KernelBody(n_in, ops)

    def _dtype(self, ref):
        kind, i = ref
        if kind == "op":
            return self.ops[i][0].dtype
        return self.lead_dtype if kind == "lead" else self.inputs[i].dtype


class _Fuser:
    def __init__(self, graph):
        self.uses = {}
        for n in graph.nodes:
            for v in set(n.inputs):
                self.uses[v] = self.uses.get(v, 0) + 1
        for v in graph.outputs:
            self.uses[v] = self.uses.get(v, 0) + 1
        self.rb = Rebuilder(graph)
        self.new_uses = {}

    def run(self, graph):
        for node in graph.nodes:
            if node.op != "kernel":
                self.rb.keep(node)
                continue
            new = self.kernel(node)
            self.rb.replace(node, new)
            self.new_uses[new.out] = self.uses.get(node.out, 0)
        return remove_dead(self.rb.finish())

    def n_uses(self, value):
        return self.new_uses.get(value, 1)

    def operand(self, prog, value, space):
        """Bind one input: inline an elementwise producer over the same space that is used
        once or cheap, or a cheap one that broadcasts into the space and is computed once per
        row there; otherwise read it from memory."""
        p = value.node
        if p is None or p.op != "kernel" or p.params["reduce"] is not None:
            return prog.input(value)
        cheap = _is_cheap(p.params["body"])
        if _same_dims(value.shape, space) and (self.n_uses(value) <= 1 or cheap) or \
                cheap and _recomputed_once_per_row(value.shape, space):
            return prog.inline(p.params["body"], [self.operand(prog, v, space) for v in p.inputs])
        return prog.input(value)

    def kernel(self, node):
        space = node.params["space"]
        inputs = [self.rb[v] for v in node.inputs]
        epilogue = node.params.get("epilogue")
        late = used_inputs(epilogue, n_lead=1)
        prog = _Program()
        # A value the epilogue reads must stay in memory; inlining it into the body as well
        # would compute it twice.
        result = prog.inline(node.params["body"],
                             [prog.input(v) if i in late else self.operand(prog, v, space)
                              for i, v in enumerate(inputs)])
        if node.params["reduce"] is None:
            fused = self._into_reduction(node, prog, result)
            if fused is not None:
                return fused
        params = dict(node.params, body=prog.freeze(result))
        kernel_inputs = prog.inputs
        if epilogue is not None:
            kernel_inputs, params = _rebind_epilogue(node, inputs, prog, params)
        return self.rb.add("kernel", kernel_inputs, params, [node.out.type], node.loc,
                           node.checks, node.origin)

    def _into_reduction(self, node, prog, result):
        """If one input of this elementwise kernel is a reduction that only it reads, and this
        kernel iterates exactly over that reduction's result, emit the reduction with this
        kernel as (part of) its epilogue."""
        space = node.params["space"]
        for i, r in enumerate(prog.inputs):
            red_node = r.node
            if red_node is None or red_node.op != "kernel" or red_node.params["reduce"] is None:
                continue
            if self.n_uses(r) > 1 or not _same_dims(r.shape, space):
                continue
            n_body = len(red_node.inputs)
            epi = _Program(red_node.inputs)
            epi.lead_dtype = _reduced_dtype(red_node)
            old = red_node.params.get("epilogue")
            lead = ("lead", 0)
            if old is not None:
                lead = epi.inline(old, [lead] + [("in", k) for k in range(n_body)])
            refs = [lead if k == i else epi.input(v) for k, v in enumerate(prog.inputs)]
            out = epi.inline(_as_body(prog, result), refs)
            body = _widen(red_node.params["body"], len(epi.inputs))
            params = dict(red_node.params, body=body, epilogue=epi.freeze(out, n_lead=1))
            return self.rb.add("kernel", epi.inputs, params, [node.out.type], node.loc,
                               red_node.checks + node.checks, node.origin)
        return None


def _rebind_epilogue(node, inputs, prog, params):
    """The epilogue of ``node`` renumbered for the inputs of its re-fused body: inlining a
    producer into the body replaces that input by the producer's, so the epilogue's input
    numbers no longer mean what they did. Its inputs are bound anew (appended if the body no
    longer reads them) and the body is widened to the final input count."""
    from ..ir.ops.kernel import body_dtype
    from ..ir.ops.reduce import reduce_dtype
    epilogue = node.params["epilogue"]
    late = used_inputs(epilogue, n_lead=1)
    epi = _Program(prog.inputs)
    epi.lead_dtype = reduce_dtype(node.params["reduce"].op,
                                  body_dtype(node.params["body"], [v.dtype for v in node.inputs]))
    refs = [("lead", 0)] + [epi.input(v) if i in late else None for i, v in enumerate(inputs)]
    out = epi.inline(epilogue, refs)
    body = _widen(params["body"], len(epi.inputs))
    return epi.inputs, dict(params, body=body, epilogue=epi.freeze(out, n_lead=1))


def _reduced_dtype(red_node):
    from ..ir.ops.kernel import body_dtype
    from ..ir.ops.reduce import reduce_dtype
    old = red_node.params.get("epilogue")
    if old is not None:
        return red_node.out.dtype
    return reduce_dtype(red_node.params["reduce"].op,
                        body_dtype(red_node.params["body"], [v.dtype for v in red_node.inputs]))


def _as_body(prog, result) -> KernelBody:
    """``prog`` (over its own inputs) as a standalone body, to be inlined elsewhere."""
    copy = _Program(prog.inputs)
    copy.ops, copy._seen = list(prog.ops), dict(prog._seen)
    return copy.freeze(result)


def _widen(body: KernelBody, n_inputs: int) -> KernelBody:
    """Renumber ``body`` for a kernel that now has ``n_inputs`` inputs (new ones appended)."""
    shift = n_inputs - body.n_inputs

    def ref(a):
        return a if a < body.n_inputs else a + shift
    return KernelBody(n_inputs, tuple(ScalarOp(s.op, tuple(ref(a) for a in s.args), s.dtype, s.params)
                                      for s in body.ops))


def fuse(graph):
    """Fuse to a fixed point: each round counts uses in the graph the last one left, so a value
    whose readers were merged into one kernel can then be fused into it."""
    while True:
        fused = _Fuser(graph).run(graph)
        if len(fused.nodes) == len(graph.nodes):
            return fused
        graph = fused
