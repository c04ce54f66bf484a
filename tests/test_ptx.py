"""The GPU backend (SPEC §5).

Without a GPU: PTX for every kernel form the CPU backend lowers -- every scalar rule at float32,
float64, int32 and bool, every reduction over several axis forms, fused kernels with epilogues,
the stabilised ops, kernels inside loop bodies -- must be accepted by NVIDIA's assembler
(``ptxas --gpu-name sm_80`` and ``sm_90``). Kernels are batched into a few modules, one ptxas
run each, so the file stays fast.

With a GPU and CuPy: ``device="gpu"`` results against NumPy, op by op (the op tables of
test_elementwise / test_reductions), plus fused kernels, control flow, indexing and an MLP
training step. Those tests skip, saying why, on a machine without one.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import lumen
from lumen.codegen_llvm.lower.scalar import LOWER, STABLE
from lumen.codegen_ptx import libdevice
from lumen.codegen_ptx.context import KernelContext
from lumen.codegen_ptx.program import kernel_nodes, lower_program, nvvm_module
from lumen.ir.builder import GraphBuilder
from lumen.ir.dims import Dim
from lumen.ir.interpret import interpret
from lumen.ir.ops.elementwise import UFUNCS
from lumen.ir.types import SUPPORTED_DTYPES, TensorType
from lumen.passes.kernelize import kernelize
from lumen.runtime import gpu as gpu_runtime
from lumen.runtime.gpu import GpuDevice, GpuExecutable

from .gpu_emulator import MAX_GRID, EmulatedModule
from .test_autodiff_models import init_mlp, mlp_loss
from .test_elementwise import (BY_NAME, RECORDS, _allowed_for_edges, _edge_values,
                               assert_matches)
from .test_reductions import AXIS_FORMS, sample

ARCHS = ("sm_80", "sm_90")
DTYPES = tuple(np.dtype(d) for d in ("float32", "float64", "int32", "bool"))
HAS_GPU = "gpu" in lumen.devices()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no GPU: CuPy is not installed or sees no "
                               "CUDA device (device='gpu' results cannot be checked here)")


def assemble(ptx: str, arch: str) -> None:
    """Run ptxas on ``ptx``; fail with its messages if it refuses."""
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        pytest.skip("ptxas (CUDA toolkit) is not on PATH: PTX cannot be assembled here")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernels.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        r = subprocess.run([ptxas, "--gpu-name", arch, path, "-o", os.devnull],
                           capture_output=True, text=True)
    assert r.returncode == 0, f"ptxas --gpu-name {arch} refused the PTX:\n{r.stderr[-3000:]}"


def entries(ptx: str) -> list:
    return re.findall(r"\.entry\s+(\w+)\(", ptx)


# -- modules of single-op kernels, built straight from IR (no rewrite can remove an op) ---------

def _dims(position, n):
    return tuple(Dim.input(position, axis, 3) for axis in range(n))


def _loop_dtypes(ufunc, dtype):
    """The loop NumPy runs ``ufunc`` with on operands of ``dtype``, or None when lumen has no
    such loop (float16) or NumPy none at all."""
    try:
        loop = ufunc.resolve_dtypes((dtype,) * ufunc.nin + (None,))
    except TypeError:
        return None
    return loop if all(np.dtype(t) in SUPPORTED_DTYPES for t in loop) else None


@functools.cache
def elementwise_graph(dtype_name: str):
    """Every scalar rule that applies to operands of one dtype, one kernel each: the ufuncs
    (operands cast to the ufunc's loop dtypes first, as the frontend does), the stable ops,
    casts to every dtype and select. Operands are 2-d and 1-d, so kernels broadcast."""
    dtype = np.dtype(dtype_name)
    gb = GraphBuilder(f"ops_{dtype_name}")
    x = gb.add_input(TensorType(dtype, _dims(0, 2)), "x")
    y = gb.add_input(TensorType(dtype, _dims(1, 1)), "y")
    cond = gb.add_input(TensorType(np.dtype(bool), _dims(2, 1)), "c")
    outs = []
    for name, ufunc in UFUNCS.items():
        loop = _loop_dtypes(ufunc, dtype)
        if loop is None:
            continue
        args = [v if v.dtype == t else gb.emit("cast", [v], dtype=np.dtype(t)).out
                for v, t in zip((x, y), loop[:ufunc.nin])]
        outs.append(gb.emit(name, args).out)
    if dtype.kind == "f":
        outs += [gb.emit(name, [x]).out for name in ("softplus", "log1mexp", "stop_gradient")]
    outs += [gb.emit("cast", [x], dtype=t).out for t in SUPPORTED_DTYPES if t != dtype]
    outs.append(gb.emit("select", [cond, x, y]).out)
    return kernelize(gb.build(outs))


#: (axes, keepdims): the whole space, a middle axis (kept), the last axis, two outer axes
REDUCE_FORMS = (((0, 1, 2), False), ((1,), True), ((2,), False), ((0, 2), False))


@functools.cache
def reduction_graph(forms=REDUCE_FORMS, arg_axes=(0, 2)):
    """Every reduction over 3-d operands of every dtype of DTYPES, in each of ``forms``;
    argmax / argmin over each of ``arg_axes``."""
    gb = GraphBuilder("reductions")
    outs = []
    for position, dtype in enumerate(DTYPES):
        x = gb.add_input(TensorType(dtype, _dims(position, 3)), f"x{position}")
        for op in ("sum", "prod", "max", "min", "any", "all"):
            outs += [gb.emit(op, [x], axes=axes, keepdims=keep).out for axes, keep in forms]
        outs += [gb.emit(op, [x], axes=(axis,), keepdims=False).out
                 for op in ("argmax", "argmin") for axis in arg_axes]
    return kernelize(gb.build(outs))


@functools.cache
def ptx_of(graph, arch):
    return lower_program(graph, arch).ptx


def _scalar_ops(graph):
    return {s.op for node in kernel_nodes(graph) for s in node.params["body"].ops}


def test_every_scalar_rule_is_in_a_checked_module():
    covered = set().union(*(_scalar_ops(elementwise_graph(d.name)) for d in DTYPES))
    assert covered == set(LOWER) | set(STABLE)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [d.name for d in DTYPES])
def test_elementwise_kernels_assemble(dtype, arch):
    graph = elementwise_graph(dtype)
    ptx = ptx_of(graph, arch)
    assert f".target {arch}" in ptx
    assert len(entries(ptx)) == len(kernel_nodes(graph))
    assemble(ptx, arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_reduction_kernels_assemble(arch):
    graph = reduction_graph()
    ptx = ptx_of(graph, arch)
    assert len(entries(ptx)) == len(kernel_nodes(graph))
    assert "shfl.sync.down" in ptx and "bar.sync" in ptx and ".shared" in ptx
    assemble(ptx, arch)


# -- fused kernels of whole functions (f.lower(...).ptx()) ---------------------------------------

def _logsumexp(x):
    m = x.max(1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(1, keepdims=True))


def _softmax_var(x, y):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True), x.var(0), np.argmax(x * y, axis=1)


def _stabilised(x):
    # rewritten to the stable primitives softplus and log1p
    return np.log(1 + np.exp(x)), np.log(1 - np.exp(-np.abs(x) - 1)), np.log(1 + x * x)


def _powers(n, k):
    return n ** k, np.where(n > 2, n // k, n % k)


def _scan_rnn(h0, xs, w):
    return lumen.scan(lambda h, x: (np.tanh(h @ w + x),) * 2, h0, xs)


def _mlp_step(params, x, labels):
    loss, g = lumen.value_and_grad(mlp_loss)(params, x, labels)
    return loss, {k: params[k] - 0.1 * g[k] for k in params}


RNG = np.random.default_rng(0)
F32 = RNG.standard_normal((6, 5)).astype(np.float32)
FUNCTIONS = {
    "logsumexp": (_logsumexp, (F32,)),
    "softmax_var_argmax": (_softmax_var, (F32, F32[0])),
    "stabilised": (_stabilised, (RNG.standard_normal(7),)),
    "integer_powers": (_powers, (np.arange(6, dtype=np.int32), np.int32(2))),
    "scan_rnn": (_scan_rnn, (F32[0, :4], RNG.standard_normal((3, 4)).astype(np.float32),
                             np.eye(4, dtype=np.float32))),
    "mlp_step": (_mlp_step, (init_mlp(RNG, (12, 8, 3)), RNG.standard_normal((4, 12)),
                             np.array([0, 2, 1, 2]))),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_functions_assemble(arch):
    """Whole functions: fused chains, reductions with epilogues (logsumexp, softmax), the
    stabilised primitives, integer power (which can flag an error), a scan body's kernels
    and an MLP training step."""
    epilogues = 0
    for name, (fn, args) in FUNCTIONS.items():
        lowered = lumen.jit(fn).lower(*args)
        graph = lowered.optimized_graph()
        epilogues += sum(n.params.get("epilogue") is not None for n in kernel_nodes(graph))
        ptx = lowered.ptx(arch)
        assert len(entries(ptx)) == len(kernel_nodes(graph)) > 0, name
        assemble(ptx, arch)
    assert epilogues >= 2      # logsumexp and softmax finish in their reduction's kernel
    assert "softplus" in _scalar_ops(lumen.jit(_stabilised).lower(FUNCTIONS["stabilised"][1][0])
                                     .optimized_graph())


def test_ptx_of_a_gpu_function_needs_no_gpu():
    """One module for the GPU's architecture (sm_80 without a GPU), entry points named after
    the function in program order."""
    from lumen.devices import gpu_arch
    x = np.ones((2, 3), np.float32)
    f = lumen.jit(lambda x: np.exp(x).sum(0) * x, device="gpu")
    ptx = f.lower(x).ptx()
    assert f".target {gpu_arch() or 'sm_80'}" in ptx
    assert entries(ptx) == [f"_lambda__k{i}" for i in range(len(entries(ptx)))]
    assert "__nv_expf" not in ptx          # libdevice is linked in, not called


@pytest.mark.skipif(HAS_GPU, reason="this machine has a usable GPU")
def test_gpu_executable_without_a_gpu_raises_device_error():
    """The GPU runtime's own entry (not only the call's check before it) says why it cannot run."""
    graph = elementwise_graph("float32")
    with pytest.raises(lumen.DeviceError, match="device='gpu'"):
        gpu_runtime.gpu_executable(graph, graph)


def test_no_contraction_into_fma():
    """NVPTX would fuse a*b + c into one fma; lumen rounds each operation as NumPy does."""
    x = np.ones(4, np.float64)
    ptx = lumen.jit(lambda a, b, c: a * b + c).lower(x, x, x).ptx()
    assert "mul.rn.f64" in ptx and "add.rn.f64" in ptx and "fma" not in ptx


def test_every_primitive_runs_on_the_gpu():
    """Elementwise and reduce primitives become kernels (PTX); every other one has a CuPy
    implementation, so no graph is refused for want of one (`kernel_matvec` and
    `kernel_map_reduce` are made by the CPU backend from the graph it lowers: no GPU graph holds
    one)."""
    from lumen.ir.ops import ELEMENTWISE, OPS, REDUCE
    from lumen.runtime.gpu_ops import OPS as GPU_OPS
    assert set(OPS) - ELEMENTWISE - REDUCE == set(GPU_OPS) | {"kernel", "kernel_matvec",
                                                                 "kernel_map_reduce"}


def test_nvptx_refuses_what_it_cannot_select():
    """An intrinsic NVPTX cannot select would abort LLVM, an unknown function would leave an
    unresolved call: both are refused by name when the kernel is built."""
    import llvmlite.ir as ir
    ctx = KernelContext("m")
    with pytest.raises(lumen.UnsupportedError, match="llvm.sin.f64"):
        ctx.intrinsic("llvm.sin", ir.DoubleType())
    with pytest.raises(lumen.UnsupportedError, match="cbrtf"):
        ctx.function("cbrtf", ir.FloatType(), [ir.FloatType()])


def test_missing_libdevice_is_a_device_error(monkeypatch, tmp_path):
    monkeypatch.setattr(libdevice, "search_paths", lambda: [str(tmp_path)])
    with pytest.raises(lumen.DeviceError, match="libdevice"):
        libdevice.path.__wrapped__()


def test_import_lumen_loads_no_gpu_code():
    code = ("import sys, lumen; bad = [m for m in sys.modules if m.startswith("
            "('lumen.codegen_ptx', 'lumen.runtime.gpu', 'cupy'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the kernels and the GPU runtime, run by the CPU emulator (tests/gpu_emulator.py) -------------

EMULATED = GpuDevice(np, np.add.at, MAX_GRID, np.matmul, graphs=False)


@pytest.fixture
def emulated_gpu(monkeypatch):
    """``device="gpu"`` on the CPU: NumPy stands in for CuPy, the emulator for the GPU; the
    kernels' NVVM IR, their launches and the executor are the real ones."""
    def executable(optimized, traced):
        ir_text, launches, errors = nvvm_module(optimized)
        return GpuExecutable(EMULATED, optimized, traced, EmulatedModule(ir_text), launches,
                             errors)
    monkeypatch.setattr(importlib.import_module("lumen.devices"), "gpu", lambda: np)
    monkeypatch.setattr(gpu_runtime, "gpu_executable", executable)


def run_emulated(graph, arrays):
    ir_text, launches, errors = nvvm_module(graph)
    executable = GpuExecutable(EMULATED, graph, graph, EmulatedModule(ir_text), launches, errors)
    return executable.call(*arrays)


def _elementwise_inputs(dtype):
    """x[i, j] = v[i], y[j] = v[j] over the edge values v of test_elementwise (y: those >= 0
    for signed integers, as exponents), so that binary kernels see every pair."""
    vals = _edge_values(dtype)
    ys = vals[vals >= 0] if dtype.kind == "i" else vals
    x = np.ascontiguousarray(np.broadcast_to(vals[:, None], (len(vals), len(ys))))
    return [x, ys, np.arange(len(ys)) % 3 == 0]


@pytest.mark.parametrize("dtype", [d.name for d in DTYPES])
def test_emulated_elementwise_kernels_match_numpy(dtype):
    graph = elementwise_graph(dtype)
    arrays = _elementwise_inputs(np.dtype(dtype))
    with np.errstate(all="ignore"):
        expected = interpret(graph, arrays)
    got = run_emulated(graph, arrays)
    for value, g, e in zip(graph.outputs, got, expected):
        op = value.node.params["body"].ops[-1].op
        if op == "cast" and np.dtype(dtype).kind == "f" and e.dtype.kind in "iu":
            # NumPy's own result for NaN, inf or out-of-range values differs between its
            # loops (2-d arrays: 2**31 for NaN -> uint32, 1-d: 0): compare the defined ones
            info, x = np.iinfo(e.dtype), arrays[0]
            defined = np.isfinite(x) & (x > info.min - 1.0) & (x < info.max + 1.0)
            g, e = g[defined], e[defined]
        rec = BY_NAME.get(op)
        assert_matches(g, e, exact=rec is not None and rec.exact, signed_zero=False)


def test_emulated_reductions_match_numpy():
    """Every reduction and dtype, over the whole space, a kept middle axis and two outer
    axes (emulated shuffles are slow: small operands, three forms), with NaNs and ties."""
    graph = reduction_graph(REDUCE_FORMS[:2] + REDUCE_FORMS[3:], (0,))
    arrays = [sample((2, 2, 3), d, seed=i) for i, d in enumerate(DTYPES)]
    for a in arrays[:2]:
        a[1, 0, 1] = np.nan
    arrays[2][1] = arrays[2].max()             # ties: argmax takes the first
    expected = interpret(graph, arrays)
    got = run_emulated(graph, arrays)
    for g, e in zip(got, expected):
        assert_matches(g, e, signed_zero=False)


def _control_flow_and_indexing(x, idx):
    total, _ = lumen.scan(lambda c, r: (c + r, c), np.zeros(x.shape[1]), x)
    state = lumen.while_loop(lambda s: s[0] < 5, lambda s: (s[0] + 1, s[1] * 2), (0, x[0]))
    y = lumen.cond(total.sum() > 0, lambda t: t * 2, lambda t: -t, total)
    z = x.copy()
    z[idx] = 7.0
    return y, state[1], x[idx], z, x @ x.T, np.cumsum(x, axis=0), x.T[1:, ::-1] + 1


FUNCTIONS["control_flow_and_indexing"] = (_control_flow_and_indexing,
                                          (RNG.standard_normal((4, 3)), np.array([2, 0, -1])))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_emulated_functions_match_cpu(name, emulated_gpu):
    """Whole functions through lumen.jit(device="gpu"): fused kernels, epilogues, scan,
    while_loop, cond, indexing, matrix products and an MLP training step, against the CPU
    backend's results (which the rest of the suite checks against NumPy)."""
    fn, args = FUNCTIONS[name]
    expected = _leaves(lumen.jit(fn)(*args))
    f = lumen.jit(fn, device="gpu", debug=name == "logsumexp")
    for _ in range(2):                        # the second call takes the fast path
        got = _leaves(f(*args))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_emulated_strided_arguments_and_fresh_results(emulated_gpu):
    """Views of any layout are read in place; a result that is an argument is a copy."""
    a = RNG.standard_normal((6, 8))
    f = lumen.jit(lambda x, y: (np.tanh(x) * y + 1, x, (x * y).sum(0)), device="gpu")
    for x, y in ((a[:, ::2], a[::-1, ::2]), (a.T, a[:, :1].T), (a[1:4], a[0]), (a, 2.0)):
        got, same, total = f(x, y)
        np.testing.assert_allclose(got, np.tanh(x) * y + 1, rtol=1e-12)
        np.testing.assert_allclose(total, (x * y).sum(0), rtol=1e-12)
        assert np.array_equal(same, x) and not np.shares_memory(same, x)


def test_emulated_errors_are_raised_as_on_the_cpu(emulated_gpu):
    with pytest.raises(ValueError, match="negative integer powers"):
        lumen.jit(lambda n, k: n ** k, device="gpu")(np.arange(3), np.array([1, -1, 2]))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        lumen.jit(lambda x, i: x[i], device="gpu")(np.ones(3), np.array([3]))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        lumen.jit(lumen.grad(lambda x, i: (x[i] ** 2).sum()), device="gpu")(
            np.ones(3), np.array([0, -4]))
    with pytest.raises(ValueError):
        lumen.jit(lambda x, y: x + y, device="gpu")(np.ones(3), np.ones(4))


def test_emulated_scalar_element_feeds_a_kernel(emulated_gpu):
    """``x[0, 0]`` is a 0-d device array (NumPy, standing in for CuPy, would give a scalar)."""
    a = RNG.standard_normal((3, 4))
    got = lumen.jit(lambda x: x * x[0, 1] + x[-1, 0], device="gpu")(a)
    np.testing.assert_array_equal(got, a * a[0, 1] + a[-1, 0])


# -- on a GPU --------------------------------------------------------------------------------------

def _host(x):
    import cupy
    assert isinstance(x, cupy.ndarray), f"device='gpu' returned {type(x).__name__}"
    return x.get()


GPU_CASES = [pytest.param(r, d, id=f"{r.name}-{d.name}") for r in RECORDS for d in r.accepted
             if d in DTYPES]


@needs_gpu
@pytest.mark.parametrize("rec,dtype", GPU_CASES)
def test_gpu_elementwise_edge_values_match_numpy(rec, dtype):
    vals = [_allowed_for_edges(rec, dtype, _edge_values(dtype), i) for i in range(rec.nin)]
    args = vals if rec.nin == 1 else [a.ravel() for a in np.meshgrid(*vals, indexing="ij")]
    with np.errstate(all="ignore"):
        expected = np.asarray(rec.fn(*args))
    got = _host(lumen.jit(rec.fn, device="gpu")(*args))
    assert_matches(got, expected, exact=rec.exact, signed_zero=rec.signed_zero)


@needs_gpu
@pytest.mark.parametrize("dtype", [d.name for d in DTYPES])
@pytest.mark.parametrize("op", sorted(AXIS_FORMS))
def test_gpu_reductions_match_numpy(op, dtype):
    x = sample((3, 40, 5), dtype)
    if op in ("any", "all") and dtype != "bool":
        x[0, 0] = 0
    got = lumen.jit(AXIS_FORMS[op], device="gpu")(x)
    for g, e in zip(got, AXIS_FORMS[op](x)):
        assert_matches(_host(g), np.asarray(e), signed_zero=False)


@needs_gpu
def test_gpu_layouts_and_cupy_arguments():
    """CuPy views (strided, reversed, transposed, broadcast) are read in place, NumPy arrays
    copied over; results are CuPy arrays, fresh even where the function returns an argument."""
    import cupy
    a = RNG.standard_normal((6, 8))
    ad = cupy.asarray(a)
    f = lumen.jit(lambda x, y: (np.tanh(x) * y + 1, x), device="gpu")
    for view in (lambda m: (m[:, ::2], m[::-1, ::2]), lambda m: (m.T, m[:, :1].T),
                 lambda m: (m[1:4], m[0])):
        x, y = view(a)
        for args in (view(ad), (x, y)):
            got, same = f(*args)
            assert_matches(_host(got), np.tanh(x) * y + 1)
            np.testing.assert_array_equal(_host(same), x)
    assert f(ad, ad)[1] is not ad


@needs_gpu
def test_gpu_long_float32_sum_is_accurate():
    x = RNG.standard_normal(3_000_000).astype(np.float32)
    got = _host(lumen.jit(lambda x: (x * x).sum(), device="gpu")(x))
    np.testing.assert_allclose(got, (x.astype(np.float64) ** 2).sum(), rtol=1e-5)


@needs_gpu
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_gpu_functions_match_cpu(name):
    """Fused kernels, epilogues, scan, the stabilised ops and a training step, against the
    CPU backend's results (which the rest of the suite checks against NumPy)."""
    fn, args = FUNCTIONS[name]
    expected = lumen.jit(fn)(*args)
    got = lumen.jit(fn, device="gpu")(*args)
    flat_got, flat_expected = _leaves(got), _leaves(expected)
    assert len(flat_got) == len(flat_expected)
    for g, e in zip(flat_got, flat_expected):
        np.testing.assert_allclose(_host(g), e, rtol=1e-5, atol=1e-6)


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


@needs_gpu
def test_gpu_mlp_training_steps_match_numpy():
    """Three SGD steps of an MLP (784 -> 32 tanh -> 10) on the GPU, parameters staying on
    the device, against the same steps by the CPU backend."""
    import cupy
    rng = np.random.default_rng(3)
    params = init_mlp(rng, (784, 32, 10))
    x, labels = rng.uniform(0, 1, (16, 784)), rng.integers(0, 10, 16)
    gpu_step, cpu_step = lumen.jit(_mlp_step, device="gpu"), lumen.jit(_mlp_step)
    on_device = {k: cupy.asarray(v) for k, v in params.items()}
    for _ in range(3):
        loss_gpu, on_device = gpu_step(on_device, cupy.asarray(x), cupy.asarray(labels))
        loss, params = cpu_step(params, x, labels)
        np.testing.assert_allclose(_host(loss_gpu), loss, rtol=1e-10)
    for k in params:
        np.testing.assert_allclose(_host(on_device[k]), params[k], rtol=1e-10, atol=1e-13)


@needs_gpu
def test_gpu_errors_are_raised_as_on_the_cpu():
    with pytest.raises(ValueError, match="negative integer powers"):
        lumen.jit(lambda n, k: n ** k, device="gpu")(np.arange(3), np.array([1, -1, 2]))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        lumen.jit(lambda x, i: x[i], device="gpu")(np.ones(3), np.array([3]))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        lumen.jit(lumen.grad(lambda x, i: (x[i] ** 2).sum()), device="gpu")(
            np.ones(3), np.array([0, -4]))
    with pytest.raises(ValueError):
        lumen.jit(lambda x, y: x + y, device="gpu")(np.ones(3), np.ones(4))
