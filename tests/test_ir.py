"""The IR layer: registry completeness, the printer's form, the verifier, symbolic sizes."""
import numpy as np
import pytest

import lumen
from lumen.codegen_llvm.lower import LOWER
from lumen.codegen_llvm.lower.scalar import LOWER as SCALAR_LOWER
from lumen.codegen_llvm.lower.scalar import STABLE
from lumen.ir.dims import Dim, guard_sink
from lumen.ir.graph import Graph, Node, Value
from lumen.ir.interpret import interpret
from lumen.ir.ops import ELEMENTWISE, OPS, REDUCE
from lumen.ir.types import TensorType
from lumen.ir.verify import IRError, verify


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_primitive_has_a_reference_and_a_cpu_lowering(name):
    op = OPS[name]
    assert callable(op.infer) and callable(op.reference)
    if name in ELEMENTWISE:
        assert name in SCALAR_LOWER or name in STABLE, f"no scalar lowering for {name}"
    elif name in REDUCE:
        assert "kernel" in LOWER           # reductions become kernels
    else:
        assert name in LOWER, f"no LLVM lowering for {name}"


def test_printer_matches_design_form():
    def step(x, w, b):
        return np.tanh(x @ w + b)
    x, w, b = np.ones((4, 784), np.float32), np.ones((784, 500), np.float32), np.ones(500, np.float32)
    text = lumen.jit(step).lower(x, w, b).ir()
    lines = text.splitlines()
    assert lines[0] == "func @step(%x: f32[?,?], %w: f32[?,?], %b: f32[?]) -> f32[?,?]"
    assert lines[1].split() [:4] == ["%0", "=", "matmul", "%x,"]
    assert "%1 = add %0, %b" in lines[2] and "%2 = tanh %1" in lines[3]
    for line in lines[1:4]:
        assert ": f32[?,?]" in line and "# test_ir.py:" in line
    assert lines[-1] == "  return %2"


def test_printer_marks_broadcast_axes_and_weak_scalars():
    text = lumen.jit(lambda x, s: x * s).lower(np.ones((1, 5)), 2.0).ir()
    assert "%x: f64[1,?]" in text and "%s: ~f64[]" in text


def test_verifier_rejects_use_before_definition():
    t = TensorType(np.float64, (Dim.input(0, 0, 3),))
    x = Value(t)
    n1 = Node("exp", [x], {}, [t])
    n2 = Node("log", [n1.out], {}, [t])
    verify(Graph("ok", [x], [n1, n2], [n2.out]))
    with pytest.raises(IRError, match="defined later"):
        verify(Graph("bad", [x], [n2, n1], [n2.out]))


def test_verifier_rejects_wrong_recorded_type():
    t = TensorType(np.float64, (Dim.input(0, 0, 3),))
    x = Value(t)
    n = Node("less", [x, x], {}, [t])        # a comparison gives bool, not f64
    with pytest.raises(IRError, match="bool"):
        verify(Graph("bad", [x], [n], [n.out]))


def test_reference_interpreter_runs_traced_graph():
    def f(x, y):
        return (np.exp(x) * y).sum(axis=0), x.T @ y
    x, y = np.random.rand(3, 2), np.random.rand(3, 2)
    graph = lumen.jit(f).lower(x, y).graph
    got = interpret(graph, [x, y])
    np.testing.assert_allclose(got[0], f(x, y)[0])
    np.testing.assert_allclose(got[1], f(x, y)[1])


def test_dims_are_symbolic_and_concretising_records_a_guard():
    n = Dim.input(0, 0, 5)
    assert (n * 2 + 1).evaluate([(7,)]) == 15
    assert (n - n).value == 0 and (n * 1) == n
    with guard_sink() as sink:
        assert list(range(n)) == [0, 1, 2, 3, 4]
    assert sink.guards == {n: 5}


def test_size_test_agrees_with_evaluate():
    """`size_test`'s straight-line code against `Dim.evaluate`, on expressions of every
    operator over shared subexpressions (division by zero included) at many shapes."""
    from lumen.ir.dims import binary, size_test
    n, m = Dim.input(0, 0, 5), Dim.input(1, 1, 3)
    shared = binary("max", binary("sub", n, m), 0)
    dims = [binary(op, shared, b) for op in ("add", "sub", "mul", "floordiv", "cdiv", "max",
                                             "min", "bcast") for b in (shared, m, 2)]
    dims.append(binary("bcast", binary("min", n, 1), m))
    rng = np.random.default_rng(0)
    for _ in range(200):
        shapes = [(int(rng.integers(0, 9)),), (1, int(rng.integers(0, 9)))]
        values = {d: d.evaluate(shapes) for d in dims}
        assert size_test(values)(shapes)
        for d in dims[::5]:
            assert not size_test({**values, d: values[d] + 1})(shapes)
    assert size_test({})([(1,)])


def test_python_range_over_a_size_specialises_on_it():
    def f(x):
        total = x[0]
        for i in range(1, x.shape[0]):
            total = total + x[i]
        return total
    jf = lumen.jit(f)
    assert jf(np.arange(4.0)) == 6.0
    assert jf(np.arange(4.0) + 1) == 10.0
    assert jf.cache_info()["compiles"] == 1
    assert jf(np.arange(6.0)) == 15.0            # a new length: the guard fails, retrace
    assert jf.cache_info()["compiles"] == 2
    assert "guard in0.0 == 4" in jf.lower(np.arange(4.0)).ir()
