"""The benchmark harness: workloads, per-implementation adapters, child runner, parent driver, tables.

Every (workload, implementation, thread count) runs in a fresh child process
(``python -m bench --child SPEC``) so that thread pools, JIT caches and imported libraries of one
implementation never affect another.  Thread counts are set through environment variables before the
child starts.  The child warms up (the first call compiles) and checks the result against NumPy's to
the workload's tolerance.  The children of one table stay alive and take turns, one timed repeat each
(a loop of calls) per round; each prints one JSON line with the median, which the parent collects
into markdown tables.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import numpy as np

# --------------------------------------------------------------------------------------------------
# Workloads

#: implementations in table order; the first is the baseline every ratio refers to
IMPLEMENTATIONS = ("numpy", "lumen", "numba", "jax", "pytensor", "torch", "cupy")
#: the implementations a GPU workload (``Workload.device == "gpu"``) is run with; NumPy, on the
#: CPU, stays the baseline; cupy runs GPU workloads only
GPU_IMPLEMENTATIONS = ("numpy", "lumen", "cupy")

#: the module that must be importable for an implementation to be "installed"
IMPL_MODULE = {"numpy": "numpy", "lumen": "lumen", "numba": "numba", "jax": "jax",
               "pytensor": "pytensor", "torch": "torch", "cupy": "cupy"}

#: distributions whose versions go into the header (those installed)
VERSIONED = ("numpy", "scipy", "lumen", "llvmlite", "numba", "jax", "jaxlib", "pytensor", "torch")

#: environment variables that slow NumPy on this machine, and one that would make lumen (unlike
#: the peers, installed with their bytecode) compile its Python source in every child; unset in
#: every child alike
UNSET_IN_CHILDREN = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONDONTWRITEBYTECODE")

#: what a child prints: its final record, that it is built and how many repeats it wants, one repeat's time
MARKER, READY, TIMED = "BENCH_JSON ", "BENCH_READY ", "BENCH_TIME "
#: after a child's repeat, the next one waits until that child's threads have stopped spinning:
#: until it used under QUIET_CPU_S of CPU time in QUIET_WINDOW_S (at most QUIET_MAX_S). OpenBLAS's
#: idle workers spin for ~0.1 s after a call (measured: 0.10 s of CPU time in the 0.1 s after an
#: sgemm), long enough to share a core with the next child's whole repeat
QUIET_WINDOW_S, QUIET_CPU_S, QUIET_MAX_S = 0.01, 0.001, 2.0


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark: inputs, the NumPy reference, bytes moved, tolerance, per-implementation builders.

    ``impls[name](inputs)`` returns the callable to time for implementation ``name``; it is called with
    the inputs converted by that implementation's adapter (jax arrays, torch tensors, NumPy arrays).
    jax builders return a plain ``jax.numpy`` function (the adapter applies ``jax.jit``); torch
    builders return an eager function (the adapter applies ``torch.compile`` when asked).
    ``lumen`` defaults to ``lumen.jit(reference)`` and ``numpy`` to ``reference``.
    """
    name: str                      # e.g. "W1b.f64"
    family: str                    # module name under bench/workloads
    expr: str                      # what is computed, as NumPy code
    dtype: Any
    shape: tuple                   # shape of each input in a full run
    quick_shape: tuple             # shape of each input with --quick
    n_inputs: int
    reference: Callable
    rtol: float
    atol: float
    impls: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)   # per implementation, shown in the table
    make_inputs: Callable | None = None                      # (shape, dtype, rng) -> tuple of arrays
    bytes_moved: Callable | None = None                      # (inputs, output) -> int; None = not defined
    cache_starts: bool = False     # run each implementation twice, cold (empty caches) then warm
    device: str = "cpu"            # "gpu": inputs live on the GPU, every call is waited for (GpuAdapter)
    loop: Callable | None = None   # (step, *inputs) -> result: a Python loop (e.g. a training epoch)
    #                                around the step each builder returns, compiled by its adapter
    chain_from: int | None = None  # a training step: its inputs from here on are the parameters,
    #                                its results after the loss the new ones (``--chain``)

    def inputs(self, quick: bool, seed: int = 0) -> tuple:
        shape = self.quick_shape if quick else self.shape
        rng = np.random.default_rng(seed)
        if self.make_inputs is not None:
            return tuple(self.make_inputs(shape, self.dtype, rng))
        return tuple(rng.standard_normal(shape, dtype=self.dtype) for _ in range(self.n_inputs))

    def describe(self, quick: bool) -> str:
        shape = self.quick_shape if quick else self.shape
        dims = " x ".join(_pow2(d) for d in shape)
        return f"`{self.expr}` — {np.dtype(self.dtype).name}, {self.n_inputs} input(s) of shape ({dims})"

    def builder(self, impl: str) -> Callable | None:
        if impl in self.impls:
            return self.impls[impl]
        if impl == "numpy":
            return lambda inputs: self.reference
        if impl == "lumen":
            def build(inputs):
                import lumen
                return lumen.jit(self.reference)
            return build
        return None


def default_bytes_moved(inputs, output) -> int:
    """Bytes read (every input once) + bytes written (the output once): the minimal traffic."""
    return int(sum(np.asarray(x).nbytes for x in inputs) + np.asarray(output).nbytes)


def _pow2(n: int) -> str:
    return f"2**{n.bit_length() - 1}" if n > 1 and n & (n - 1) == 0 and n >= 65536 else str(n)


def all_workloads() -> list[Workload]:
    from .workloads import WORKLOADS
    return list(WORKLOADS)


def _is_prefix(key: str, name: str) -> bool:
    """``W1`` selects W1a and W1b.f32, ``W3.784-10`` the W3.784-10.b* sizes, not W3.784-1000."""
    return name.startswith(key) and not name[len(key):len(key) + 1].isdigit()


def select_workloads(names: list[str]) -> list[Workload]:
    wls = all_workloads()
    if not names:
        return wls
    chosen = []
    for name in names:
        key = name.lower()
        hits = [w for w in wls if _is_prefix(key, w.name.lower()) or key == w.family.lower()]
        if not hits:
            known = ", ".join(w.name for w in wls)
            raise SystemExit(f"unknown workload {name!r}; known: {known} (or a family: "
                             f"{', '.join(sorted({w.family for w in wls}))})")
        chosen += [w for w in hits if w not in chosen]
    return chosen


# --------------------------------------------------------------------------------------------------
# Adapters: how each implementation gets its inputs, waits for its result and hands it back


def _tree_map(f, x):
    if isinstance(x, (tuple, list)):
        return type(x)(_tree_map(f, y) for y in x)
    if isinstance(x, dict):
        return {k: _tree_map(f, v) for k, v in x.items()}
    return f(x)


class Adapter:
    label = None

    def __init__(self, threads: int, opts: dict):
        self.threads = threads
        self.opts = opts
        self.note = ""

    def prepare(self, inputs):
        return inputs

    def wrap(self, fn):
        return fn

    def sync(self, out):
        return out

    def to_numpy(self, out):
        return _tree_map(lambda x: x if isinstance(x, (bool, int, float, complex)) else np.asarray(x), out)


class NumpyAdapter(Adapter):
    pass


class LumenAdapter(Adapter):
    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        import lumen   # imported here, as the peers are: the first call never includes an import


class NumbaAdapter(Adapter):
    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        import numba
        self.note = "njit(parallel=True, fastmath=False), prange"


class JaxAdapter(Adapter):
    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        import jax
        jax.config.update("jax_enable_x64", True)   # else float64 inputs silently become float32
        self.jax = jax
        self.note = "jax.jit, x64 enabled"

    def prepare(self, inputs):
        return tuple(self.jax.block_until_ready(self.jax.device_put(x)) for x in inputs)

    def wrap(self, fn):
        return self.jax.jit(fn)

    def sync(self, out):
        return self.jax.block_until_ready(out)


class PytensorAdapter(Adapter):
    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        from pytensor.compile.mode import get_default_mode
        mode = get_default_mode()
        linker = type(mode.linker).__name__.replace("Linker", "").lower() or "?"
        self.note = f"pytensor.function, default mode ({linker} backend)"


class TorchAdapter(Adapter):
    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.compile = opts.get("torch_mode", "eager") == "compile"
        self.label = "torch (compile)" if self.compile else "torch (eager)"
        self.note = "torch.compile (inductor)" if self.compile else "eager (--torch compile for torch.compile)"

    def prepare(self, inputs):
        return tuple(self.torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)

    def wrap(self, fn):
        return self.torch.compile(fn, dynamic=False) if self.compile else fn

    def to_numpy(self, out):
        return _tree_map(lambda t: t.detach().numpy() if hasattr(t, "detach") else np.asarray(t), out)


class GpuAdapter(Adapter):
    """Every implementation but NumPy on a GPU workload: inputs copied to the device once (not
    timed), each call waited for (the stream synchronised), results copied back for the check."""

    def __init__(self, threads, opts):
        super().__init__(threads, opts)
        import cupy
        self.cupy = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        self.note = f"on {props['name'].decode()}"

    def prepare(self, inputs):
        return tuple(self.cupy.asarray(x) for x in inputs)

    def sync(self, out):
        self.cupy.cuda.get_current_stream().synchronize()
        return out

    def to_numpy(self, out):
        return _tree_map(self.cupy.asnumpy, out)


def gpu_problem() -> str | None:
    """Why GPU workloads cannot run here (None when they can)."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:   # noqa: BLE001 - no CuPy, no driver, no device: all mean "no GPU"
        return f"{type(e).__name__}: {e}"
    return None if count else "CUDA sees no GPU"


ADAPTERS = {"numpy": NumpyAdapter, "lumen": LumenAdapter, "numba": NumbaAdapter, "jax": JaxAdapter,
            "pytensor": PytensorAdapter, "torch": TorchAdapter}


# --------------------------------------------------------------------------------------------------
# The child: one (workload, implementation, thread count)


def _compare(got, ref, rtol, atol) -> tuple[bool, float, float, str]:
    """(ok, worst |got-ref| / (atol + rtol |ref|), max abs error, problem)"""
    got_l = got if isinstance(got, (tuple, list)) else [got]
    ref_l = ref if isinstance(ref, (tuple, list)) else [ref]
    if len(got_l) != len(ref_l):
        return False, math.inf, math.inf, f"{len(got_l)} results, NumPy gives {len(ref_l)}"
    worst, max_abs, problems = 0.0, 0.0, []
    for g, r in zip(got_l, ref_l):
        boxed = isinstance(g, (bool, int, float, complex))   # e.g. numba returns float32 as a Python float
        g, r = np.asarray(g), np.asarray(r)
        if g.shape != r.shape:
            return False, math.inf, math.inf, f"shape {g.shape}, NumPy gives {r.shape}"
        if g.dtype != r.dtype and not boxed:
            problems.append(f"dtype {g.dtype}, NumPy gives {r.dtype}")
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        both_nan = np.isnan(g64) & np.isnan(r64)
        same_inf = np.isinf(r64) & (g64 == r64)
        err = np.where(both_nan | same_inf, 0.0, np.abs(g64 - r64))
        err = np.where(np.isnan(err), np.inf, err)
        if err.size:
            max_abs = max(max_abs, float(err.max()))
            worst = max(worst, float((err / (atol + rtol * np.abs(np.where(same_inf, 0, r64)))).max()))
    return worst <= 1.0, worst, max_abs, "; ".join(problems)


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _inputs_and_reference(wl: Workload, spec: dict):
    """The workload's inputs and NumPy's result, made by the first child of a run and saved in the run's
    data folder for the others (generating 2**24 normal samples costs more than most timed loops)."""
    folder = spec.get("data_dir")
    path = os.path.join(folder, f"{wl.name}{'-quick' if spec['quick'] else ''}.npz") if folder else None
    if path and os.path.exists(path):
        with np.load(path) as z:
            n = len([k for k in z.files if k.startswith("in")])
            return tuple(z[f"in{i}"] for i in range(n)), z["ref"]
    inputs = wl.inputs(spec["quick"])
    ref = wl.reference(*inputs)
    if path and not isinstance(ref, (tuple, list, dict)):
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, ref=np.asarray(ref), **{f"in{i}": x for i, x in enumerate(inputs)})
        os.replace(tmp, path)
    return inputs, ref


class _Cell:
    """A child's built implementation: the record so far and one timed repeat at a time."""

    def __init__(self, spec: dict):
        self.rec = dict(spec)
        self.rec.update(status="error", label=spec["impl"], loadavg=_loadavg())
        self.times: list[float] = []
        self.timed = None                # (fn, args, adapter) once built, warmed up and checked
        try:
            self._build(spec)
        except Exception as e:   # reported, never fatal: the parent prints it in the table
            import traceback
            self.rec["error"] = f"{type(e).__name__}: {e}"
            self.rec["traceback"] = traceback.format_exc(limit=6)

    def _build(self, spec: dict) -> None:
        rec = self.rec
        wl = next(w for w in all_workloads() if w.name == spec["workload"])
        on_gpu = wl.device == "gpu" and spec["impl"] != "numpy"
        if on_gpu and gpu_problem():
            rec.update(status="no GPU", error=gpu_problem())
            return
        t0 = time.perf_counter()
        adapter = (GpuAdapter if on_gpu else ADAPTERS[spec["impl"]])(spec["threads"], spec)
        rec["import_s"] = time.perf_counter() - t0
        rec["label"] = (adapter.label or spec["impl"]) + (f" ({spec['start']})" if spec.get("start") else "")
        rec["note"] = " ".join(filter(None, [adapter.note, wl.notes.get(spec["impl"], "")]))
        inputs, ref = _inputs_and_reference(wl, spec)
        rec["bytes"] = wl.bytes_moved(inputs, ref) if wl.bytes_moved else None
        builder = wl.builder(spec["impl"])
        if builder is None:
            rec.update(status="n/a", error="no implementation for this workload")
            return
        args = adapter.prepare(inputs)         # not timed: moving inputs onto jax's device
        t0 = time.perf_counter()
        fn = adapter.wrap(builder(inputs))
        if wl.loop is not None:
            fn = functools.partial(wl.loop, fn)
        out = adapter.sync(fn(*args))
        rec["first_call_s"] = time.perf_counter() - t0           # build + compile + first run
        ok, worst, max_abs, problem = _compare(adapter.to_numpy(out), ref, wl.rtol, wl.atol)
        rec.update(err_over_tol=worst, max_abs_err=max_abs, rtol=wl.rtol, atol=wl.atol,
                   status="ok" if ok else "mismatch")
        if problem:
            rec["note"] = "; ".join(filter(None, [rec["note"], problem]))
        del out
        # a second untimed call: some JITs specialise or recompile on the second call
        t0 = time.perf_counter()
        adapter.sync(fn(*args))
        one = max(time.perf_counter() - t0, 1e-7)
        loops = max(1, math.ceil(spec["target_s"] / one))
        # slow cells (one call > 0.3 s) take fewer repeats, but never fewer than 3
        rec.update(loops=loops, repeats=min(spec["repeats"], max(3, math.ceil(1.5 / (one * loops)))))
        chain = wl.chain_from if spec.get("chain") else None
        if spec.get("chain") and chain is None:
            rec["note"] = "; ".join(filter(None, [rec["note"], "not a training step: not chained"]))
        self.timed = (fn, list(args), adapter, chain)

    def time_repeat(self) -> float:
        """One timed loop of ``loops`` calls, garbage collection off; seconds per call. With
        ``--chain`` a training step's new parameters are the next call's inputs."""
        fn, args, adapter, chain = self.timed
        loops = self.rec["loops"]
        gc_was = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            if chain is None:
                for _ in range(loops):
                    adapter.sync(fn(*args))
            else:
                for _ in range(loops):
                    args[chain:] = adapter.sync(fn(*args))[1:]
            t = (time.perf_counter() - t0) / loops
        finally:
            if gc_was:
                gc.enable()
        self.times.append(t)
        return t

    def record(self) -> dict:
        if self.times:
            t = statistics.median(self.times)
            nbytes = self.rec.get("bytes")
            self.rec.update(time_s=t, times_s=self.times, repeats=len(self.times),
                            gbps=(nbytes / t / 1e9) if nbytes else None)
        return self.rec


def child_main(arg: str) -> None:
    """Build, say how many repeats it wants, then time one repeat per ``time`` line on stdin until
    ``done``, and print the record. The parent interleaves the children of a table this way."""
    cell = _Cell(json.loads(arg))
    sys.stdout.flush()
    if cell.timed is not None:
        print(READY + json.dumps(dict(repeats=cell.rec["repeats"])), flush=True)
        while sys.stdin.readline().strip() == "time":
            print(TIMED + repr(cell.time_repeat()), flush=True)
    print(MARKER + json.dumps(cell.record(), default=str), flush=True)


# --------------------------------------------------------------------------------------------------
# The parent: environment, spawning, collecting


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in UNSET_IN_CHILDREN:
        env.pop(var, None)
    n = str(threads)
    env.update(LUMEN_NUM_THREADS=n, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               NUMBA_NUM_THREADS=n, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env.pop("XLA_FLAGS", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def cache_env(folder: str) -> dict:
    """Every implementation's persistent compilation cache, in ``folder``. Each cell gets a fresh
    folder, so its first call is a cold start; a ``cache_starts`` workload's warm run reuses the
    folder its cold run filled. jax caches every compilation (no minimum time or size)."""
    flags = ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"),
                                   "base_compiledir=" + os.path.join(folder, "pytensor")]))
    return dict(LUMEN_CACHE_DIR=os.path.join(folder, "lumen"),
                NUMBA_CACHE_DIR=os.path.join(folder, "numba"),
                JAX_COMPILATION_CACHE_DIR=os.path.join(folder, "jax"),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
                PYTENSOR_FLAGS=flags, TORCHINDUCTOR_CACHE_DIR=os.path.join(folder, "torch"))


def compile_lumen() -> None:
    """Byte-compile lumen (into its ``__pycache__`` folders, which git ignores), as the peers are
    when installed, so that no child compiles lumen's Python source during a first call."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "lumen")],
                   capture_output=True, check=False)


def _one_cpu() -> None:
    """Run a 1-thread child on one CPU. The environment variables size each library's own
    pools, but not all of them: jax's XLA runtime still ran a W3 step on two threads with
    XLA_FLAGS set (17 ms of CPU time per 9.3 ms step); on one CPU it took 12.5 ms."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


class _Child:
    """One running child process of a table: its record once it has one, and the lines it prints."""

    def __init__(self, spec: dict):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = [sys.executable, "-m", "bench", "--child", json.dumps(spec)]
        env = dict(thread_env(spec["threads"]), **cache_env(spec["cache_dir"]))
        self.spec, self.rec, self.repeats, self.timed = spec, None, 0, 0
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=_one_cpu if spec["threads"] == 1 else None)
        self.lines: queue.Queue = queue.Queue()
        self.err_tail: collections.deque = collections.deque(maxlen=3)
        self._pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
                       threading.Thread(target=self._pump, args=(self.proc.stderr, self.err_tail.append),
                                        daemon=True)]
        for p in self._pumps:
            p.start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def _fail(self, status: str, error: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.rec = dict(self.spec, status=status, label=self.spec["impl"], error=error)

    def _next(self, timeout: float) -> tuple[str, str] | None:
        """The next protocol line (prefix, payload); None, with the record set, if the child timed
        out, crashed or printed its final record."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._fail("timeout", f"no result after {timeout:.0f} s")
                return None
            if line is None:
                self.proc.wait()
                self._pumps[1].join(timeout=5)
                tail = [l for l in self.err_tail if l]
                self._fail("crash", f"child exited with status {self.proc.returncode}: " + " | ".join(tail))
                return None
            if line.startswith(MARKER):
                self.rec = json.loads(line[len(MARKER):])
                self.proc.wait()
                return None
            for prefix in (READY, TIMED):
                if line.startswith(prefix):
                    return prefix, line[len(prefix):]

    def cpu_s(self) -> float | None:
        """CPU time of all the child's threads so far (Linux's per-thread schedstat), or None."""
        total = 0
        try:
            tasks = os.listdir(f"/proc/{self.proc.pid}/task")
        except OSError:
            return None
        for task in tasks:
            try:
                with open(f"/proc/{self.proc.pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):   # a thread that just ended
                pass
        return total / 1e9

    def wait_quiet(self) -> None:
        """Return once the child's threads use no CPU (or after QUIET_MAX_S)."""
        deadline = time.monotonic() + QUIET_MAX_S
        before = self.cpu_s()
        while True:
            time.sleep(QUIET_WINDOW_S)
            now = self.cpu_s()
            if before is None or now is None or now - before < QUIET_CPU_S or time.monotonic() > deadline:
                return
            before = now

    @property
    def running(self) -> bool:
        return self.rec is None

    def wait_ready(self, timeout: float) -> None:
        got = self._next(timeout)
        if got is not None:
            self.repeats = json.loads(got[1])["repeats"]

    def _send(self, command: str) -> None:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except OSError:   # the child is gone; _next reads why
            pass

    def time_one(self, timeout: float) -> None:
        self._send("time")
        if self._next(timeout) is not None:
            self.timed += 1

    def finish(self, timeout: float) -> dict:
        if self.running:
            self._send("done")
            while self.running:
                self._next(timeout)
        return self.rec


def run_table(specs: list[dict], timeout: float) -> list[dict]:
    """Run one table's children side by side. Each is started (and builds, compiles and warms up)
    while the others wait, and stays alive; then they take turns, one timed repeat each per round,
    the order rotating, so a change in the machine's speed during the table (other tenants, memory
    bandwidth) reaches every implementation alike instead of whichever ran at that moment."""
    children = []
    for spec in specs:
        child = _Child(spec)
        child.wait_ready(timeout)
        child.wait_quiet()
        children.append(child)
    rnd = 0
    while due := [c for c in children if c.running and c.timed < c.repeats]:
        k = rnd % len(due)
        for child in due[k:] + due[:k]:
            child.time_one(timeout)
            child.wait_quiet()
        rnd += 1
    return [child.finish(timeout) for child in children]


def installed(impl: str) -> bool:
    try:
        return importlib.util.find_spec(IMPL_MODULE[impl]) is not None
    except (ImportError, ValueError):
        return False


def versions() -> dict:
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine() -> dict:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    simd = [s for s in ("avx512f", "avx2", "fma", "neon", "asimd") if s in flags]
    thp = ""
    try:   # transparent huge pages: NumPy madvises its large arrays, most peers' allocators do not
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = next((w.strip("[]") for w in f.read().split() if w.startswith("[")), "")
    except OSError:
        pass
    return dict(cpu=model, cores=cores, cpu_count=os.cpu_count(), memory=mem, simd=simd, thp=thp,
                python=platform.python_version(), os=f"{platform.system()} {platform.release()}")


def lumen_commit() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --------------------------------------------------------------------------------------------------
# Tables


def _ms(t: float) -> str:
    ms = t * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _cell_time(r: dict) -> str:
    st = r["status"]
    if st == "ok":
        return _ms(r["time_s"])
    if st == "mismatch":
        return (f"**mismatch** (err {r['max_abs_err']:.2g}, {r['err_over_tol']:.3g}x tolerance; "
                f"would be {_ms(r['time_s'])} ms)")
    if st == "not installed":
        return "not installed"
    if st in ("n/a", "no GPU"):
        return st
    return f"**{st}**: {r.get('error', '')}".replace("|", "\\|").replace("\n", " ")[:300]


def table(records: list[dict]) -> str:
    base = next((r for r in records if r["impl"] == "numpy" and r["status"] == "ok"), None)
    lines = ["| implementation | time (ms) | GB/s | vs NumPy | first call (s) | notes |",
             "|---|---:|---:|---:|---:|---|"]
    for r in records:
        ok = r["status"] == "ok"
        gbps = f"{r['gbps']:.2f}" if ok and r.get("gbps") else ""
        ratio = f"{base['time_s'] / r['time_s']:.2f}x" if ok and base else ""
        first = f"{r['first_call_s']:.2f}" if r.get("first_call_s") is not None else ""
        note = (r.get("note") or "").replace("|", "\\|")
        lines.append(f"| {r.get('label', r['impl'])} | {_cell_time(r)} | {gbps} | {ratio} | {first} | {note} |")
    return "\n".join(lines)


def header(args, thread_counts, vers, mach, load_start, records) -> str:
    lines = ["# lumen benchmarks", ""]
    lines.append(f"- machine: {mach['cpu']}, {mach['cores']} core(s) available "
                 f"(os.cpu_count() = {mach['cpu_count']}), {mach['memory']} RAM, "
                 f"SIMD: {', '.join(mach['simd']) or 'n/a'}; transparent huge pages: {mach['thp'] or 'n/a'}; "
                 f"{mach['os']}, Python {mach['python']}")
    vs = []
    for dist, v in vers.items():
        if dist == "lumen" and v:
            c = lumen_commit()
            v = f"{v} (git {c})" if c else v
        vs.append(f"{dist} {v}" if v else f"{dist}: not installed")
    lines.append("- versions: " + ", ".join(vs))
    lines.append(f"- thread counts: {', '.join(map(str, thread_counts))} — set in each child through "
                 "LUMEN_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS, "
                 "torch.set_num_threads; for 1 thread also XLA_FLAGS=\"--xla_cpu_multi_thread_eigen=false "
                 "intra_op_parallelism_threads=1\", and each 1-thread child runs pinned to one CPU "
                 "(sched_setaffinity: jax's runtime uses a second thread the flags do not stop)")
    was = [f"{v}={os.environ[v]}" for v in UNSET_IN_CHILDREN if v in os.environ]
    lines.append(f"- {' and '.join(UNSET_IN_CHILDREN)} are unset in every child, for every implementation alike"
                 + (f" (this shell had {', '.join(was)})" if was else " (this shell had neither)"))
    lines.append(f"- each cell: a fresh process; warm-up call (\"first call\" = build + compile + run), result "
                 f"checked against NumPy, then the median of {args.repeats} repeats of a timed loop "
                 f"(each repeat ≥ {args.target * 1e3:.0f} ms), the processes of a table taking turns, one "
                 f"repeat each per round; vs NumPy = NumPy time / time (> 1 is faster)"
                 + ("; **--quick: small sizes, smoke run only**" if args.quick else "")
                 + ("; **--chain: each training step's new parameters are the next call's "
                    "inputs** (the timed calls of other workloads reuse their inputs)"
                    if args.chain else ""))
    loads = [r["loadavg"] for r in records if r.get("loadavg") is not None]
    if loads:
        busy = max(loads) > 0.5 * mach["cores"] + 0.5
        lines.append(f"- 1-minute load average: {load_start:.2f} before the run, {min(loads):.2f}–{max(loads):.2f} "
                     f"as the children started" + (f" — **the machine was busy ({mach['cores']} cores): other "
                     "processes competed for the CPU, so times are noisy, multi-threaded ones most**" if busy else ""))
    lines.append(f"- command: `python -m bench {' '.join(sys.argv[1:])}`")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("workloads", nargs="*", help="workload names (W1a, W1b.f32, ...), a name's prefix "
                   "(W1b) or a family (elementwise, reductions); default: all")
    p.add_argument("--threads", choices=("1", "all", "both"), default="both")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run")
    p.add_argument("--impl", action="append", choices=IMPLEMENTATIONS,
                   help="only these implementations (repeatable; numpy is always run as the baseline)")
    p.add_argument("--torch", dest="torch_mode", choices=("eager", "compile"), default="eager",
                   help="run torch eagerly (default) or through torch.compile")
    p.add_argument("--chain", action="store_true",
                   help="training steps (W3, W4, W5, G3): each call's new parameters are the next "
                        "call's inputs, as in training, instead of every call reusing the same inputs")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 5, quick 3)")
    p.add_argument("--target", type=float, default=None,
                   help="seconds each timed repeat lasts at least (default 0.1, quick 0.01)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a child is given up")
    p.add_argument("--json", metavar="PATH", help="also write every record as JSON lines to PATH")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.target is None:
        args.target = 0.01 if args.quick else 0.1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    wls = select_workloads(args.workloads)
    if args.list:
        for w in all_workloads():
            print(f"{w.name:10} {w.family:12} {w.describe(False)}")
        return 0
    ncpu = machine()["cores"]
    thread_counts = {"1": [1], "all": [ncpu], "both": sorted({1, ncpu})}[args.threads]
    impls = [i for i in IMPLEMENTATIONS if not args.impl or i in args.impl or i == "numpy"]
    vers, mach, load_start = versions(), machine(), _loadavg() or 0.0
    cells = [(w, t, i, cache) for w in wls for t in thread_counts for i in impls
             if (i in GPU_IMPLEMENTATIONS if w.device == "gpu" else i != "cupy")
             for cache in (("cold", "warm") if w.cache_starts and i != "numpy" else (None,))]
    results: dict[tuple, list] = {}
    jsonf = open(args.json, "w") if args.json else None
    data_dir = tempfile.mkdtemp(prefix="lumen-bench-")   # inputs + NumPy's results, shared by the children
    start = time.perf_counter()
    compile_lumen()
    tables: dict[tuple, list] = {}
    for w, t, impl, cache in cells:
        tables.setdefault((w.name, t), []).append(dict(
            workload=w.name, impl=impl, threads=t, quick=args.quick, repeats=args.repeats,
            target_s=args.target, torch_mode=args.torch_mode, chain=args.chain,
            data_dir=data_dir, start=cache,
            cache_dir=os.path.join(data_dir, "caches", f"{w.name}-{impl}-{t}")))
    done = 0
    try:
        for (name, t), specs in tables.items():
            w = next(wl for wl in wls if wl.name == name)
            ran = iter(run_table([s for s in specs if installed(s["impl"])], args.timeout))
            for spec in specs:
                rec = next(ran) if installed(spec["impl"]) else dict(spec, status="not installed",
                                                                     label=spec["impl"])
                rec.pop("data_dir", None)
                rec.pop("cache_dir", None)
                if spec["start"] == "warm":
                    cold = results[(w.name, t)][-1]
                    if rec.get("first_call_s") and cold.get("first_call_s"):
                        rec["note"] = "; ".join(filter(None, [rec.get("note"), f"first call "
                                                f"{cold['first_call_s'] / rec['first_call_s']:.1f}x faster than cold"]))
                results.setdefault((w.name, t), []).append(rec)
                if jsonf:
                    jsonf.write(json.dumps(rec, default=str) + "\n")
                    jsonf.flush()
                done += 1
                shown = _ms(rec["time_s"]) + " ms" if rec["status"] == "ok" else rec["status"]
                print(f"[{done}/{len(cells)} {time.perf_counter() - start:5.0f}s] {w.name} threads={t} "
                      f"{rec.get('label', spec['impl'])}: {shown}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if jsonf:
            jsonf.close()
    out = [header(args, thread_counts, vers, mach, load_start,
                  [r for rs in results.values() for r in rs]), ""]
    for w in wls:
        out.append(f"## {w.name}: {w.describe(args.quick)}")
        out.append("")
        rec0 = results[(w.name, thread_counts[0])][0]
        if rec0.get("bytes"):
            out.append(f"bytes moved (read + written): {rec0['bytes'] / 1e6:.1f} MB; "
                       f"tolerance: rtol {w.rtol:g}, atol {w.atol:g}")
        else:
            out.append(f"tolerance: rtol {w.rtol:g}, atol {w.atol:g}")
        for t in thread_counts:
            out += ["", f"threads = {t}", "", table(results[(w.name, t)])]
        out.append("")
    out.append(f"total wall time: {time.perf_counter() - start:.0f} s")
    print("\n".join(out))
    return 0
