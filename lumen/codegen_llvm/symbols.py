"""Addresses generated code calls by name: the CPython and NumPy C APIs, BLAS and OpenMP.

NumPy's functions live in its API table; BLAS is NumPy's own OpenBLAS where NumPy ships one
(else SciPy's, from its Cython capsules). All are made visible to the JIT linker under stable
``lumen_*`` names, so object code never embeds an address (and can be cached on disk and loaded
into another process).
"""
from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from importlib.machinery import ExtensionFileLoader, PathFinder

import llvmlite.binding as llvm
import numpy as np

from . import blas_team, output_pool, small_gemm
from .parallel import THRESHOLD

#: Indices into NumPy's C-API table (``__multiarray_api.h``; fixed by NumPy's ABI).
_NUMPY_API = {"lumen_PyArray_Type": 2, "lumen_PyArray_DescrFromType": 45,
              "lumen_PyArray_Empty": 184, "lumen_PyArray_NewFromDescr": 94,
              "lumen_PyArray_SetBaseObject": 282}

#: The BLAS routines generated code calls (as ``lumen_<name>``).
BLAS = ("sgemm", "dgemm", "sgemv", "dgemv")

_PYTHON_FUNCTIONS = ("PyErr_SetString", "PyErr_NoMemory", "PyErr_Occurred", "PyErr_Clear",
                     "Py_IncRef", "Py_DecRef", "PyTuple_New", "PyTuple_SetItem",
                     "PyLong_AsLongLongAndOverflow", "PyLong_AsUnsignedLongLong",
                     "PyCapsule_New", "PyCapsule_GetPointer")
#: Static objects whose addresses the entry compares arguments with or returns.
_PYTHON_OBJECTS = ("PyFloat_Type", "PyLong_Type", "_Py_TrueStruct", "_Py_FalseStruct",
                   "_Py_NotImplementedStruct")
_PYTHON_EXCEPTIONS = ("PyExc_ValueError", "PyExc_IndexError", "PyExc_TypeError",
                      "PyExc_ZeroDivisionError")


def _capsule_pointer(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, get_name(capsule))


def _cython_blas():
    """scipy.linalg.cython_blas, whose capsules hold SciPy's BLAS routines.

    The ordinary import runs scipy.linalg's ``__init__`` first, ~35 ms of imports and most of a
    warm start, for nothing lumen uses: the extension module stands alone, so where scipy.linalg
    is not imported yet it is loaded from its file, found as the import system would find it.
    Cython enters it in ``sys.modules`` itself; it is taken out again so that a later import
    goes through scipy.linalg as usual (binding it as scipy.linalg's attribute) and gets the
    same module, as a Cython module is initialised once per process. Anything unexpected falls
    back to the ordinary import."""
    name = "scipy.linalg.cython_blas"
    if "scipy.linalg" not in sys.modules and name not in sys.modules:
        try:
            import scipy
            spec = PathFinder.find_spec(name, [os.path.join(p, "linalg") for p in scipy.__path__])
            if spec is not None and isinstance(spec.loader, ExtensionFileLoader):
                try:
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                finally:
                    sys.modules.pop(name, None)
                return module
        except (ImportError, OSError):
            pass
    from scipy.linalg import cython_blas
    return cython_blas


@dataclass(frozen=True)
class Blas:
    """Where the BLAS routines come from: ``source`` names the library, ``int_bits`` the width
    of its integer arguments (generated calls depend on it, so the disk cache key does too)."""
    source: str
    int_bits: int
    addresses: dict


def _numpy_openblas():
    """NumPy's bundled OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``, 64-bit ints, already
    loaded by ``import numpy``), or None where NumPy was built against another BLAS. It is the
    BLAS of the NumPy code lumen is measured against, newer than SciPy's copy and ~2x faster at
    the small-row products of an MLP step (10 x 1000 @ 1000 x 1000 f32: 0.55 vs 1.1 ms here),
    and using it saves loading SciPy's extension on a warm start."""
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so"))):
        try:
            lib = ctypes.CDLL(path)
            return {name: ctypes.cast(getattr(lib, f"scipy_{name}_64_"), ctypes.c_void_p).value
                    for name in BLAS}
        except (OSError, AttributeError):
            continue
    return None


@functools.cache
def blas() -> Blas:
    """The BLAS generated code calls: NumPy's own OpenBLAS if it has one, else SciPy's."""
    addresses = None if os.environ.get("LUMEN_BLAS") == "scipy" else _numpy_openblas()
    if addresses is not None:
        return Blas("numpy-openblas64", 64, addresses)
    cython_blas = _cython_blas()
    return Blas("scipy.linalg.cython_blas", 32,
                {name: _capsule_pointer(cython_blas.__pyx_capi__[name]) for name in BLAS})


def register_symbols() -> None:
    table = (ctypes.c_void_p * 400).from_address(_capsule_pointer(np._core.multiarray._ARRAY_API))
    for name, index in _NUMPY_API.items():
        llvm.add_symbol(name, table[index])
    for name in _PYTHON_FUNCTIONS:
        llvm.add_symbol(name, ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value)
    for name in _PYTHON_EXCEPTIONS:
        llvm.add_symbol(name, ctypes.addressof(ctypes.c_void_p.in_dll(ctypes.pythonapi, name)))
    for name in _PYTHON_OBJECTS:
        llvm.add_symbol(name, ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, name)))
    for name, address in blas().addresses.items():
        llvm.add_symbol(f"lumen_{name}", address)
    register_openmp()
    for letter, slot in _dots_addresses.items():       # `small_gemm`'s lazily linked kernels
        llvm.add_symbol(small_gemm.DOTS_SLOT[letter], ctypes.addressof(slot))
    llvm.add_symbol(small_gemm.DOTS_RESOLVER, ctypes.cast(_dots_resolver, ctypes.c_void_p).value)
    pool = compile_for_good("result pool", output_pool.module_ir)           # needs the above
    llvm.add_symbol(output_pool.NAME, pool.address(output_pool.NAME))


class _DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]


def _threads_callback(routine: int):
    """``openblas_threads_callback_`` (a ctypes pointer) of the OpenBLAS that holds
    ``routine`` (a BLAS function's address), or None: another BLAS, or an OpenBLAS older than
    0.3.28."""
    info = _DlInfo()
    try:
        if ctypes.CDLL(None).dladdr(ctypes.c_void_p(routine), ctypes.byref(info)) and info.fname:
            return ctypes.c_void_p.in_dll(ctypes.CDLL(info.fname.decode()),
                                          "openblas_threads_callback_")
    except (OSError, ValueError, AttributeError):
        pass
    return None


def blas_threads_callback():
    """The threads callback (`_threads_callback`) of the BLAS generated code calls, or None."""
    return _threads_callback(blas().addresses["sgemm"])


def blas_can_run_on_team() -> bool:
    """Whether BLAS's parallel work can go to lumen's team: libgomp is loaded and the BLAS
    takes a threads callback (whether it went there: `blas_on_team`)."""
    return _openmp_loaded and blas_threads_callback() is not None


_blas_on_team = False


def blas_on_team() -> bool:
    """Whether this process's BLAS runs its parallel work on lumen's team (`blas_team`)."""
    return _blas_on_team


def _run_blas_on_team() -> None:
    """Hand the parallel work of the BLAS lumen calls to lumen's team (`blas_team`), unless
    that BLAS has no callback or someone set one already; a forked child, where libgomp's
    threads are gone, gives it back to OpenBLAS's own threads (OpenBLAS restarts them). Not
    on one thread: there no team spins, and a cold start saves the module's ~5-10 ms of LLVM."""
    global _blas_on_team
    callback = blas_threads_callback()
    if callback is None or callback.value:
        return
    team = compile_for_good("BLAS on the team", blas_team.module_ir)       # needs OpenMP's
    callback.value = team.address(blas_team.NAME)
    _blas_on_team = True
    os.register_at_fork(after_in_child=lambda: setattr(callback, "value", None))


_runtime_modules = []       # runtime support loaded here, kept while the process lives
_small_lock = threading.Lock()
_small_linked = set()       # the `small_gemm.NAMES` registered
_small_objects = {}         # letter -> object code `compile_small_products` made, not yet linked


def compile_small_products(letters) -> None:
    """Make the object code of `small_gemm`'s kernels for these dtypes (compiled, or loaded
    from the disk cache) for `link_small_products` to link. Compiling needs no symbols, so a
    cold start's ~0.08 s of LLVM here need not wait for `register_symbols`. Any thread may
    call it; a linker that comes meanwhile waits for it."""
    for letter in sorted(set(letters) - _small_linked):
        with _small_lock:
            if letter not in _small_linked and letter not in _small_objects:
                _small_objects[letter] = runtime_objects(
                    *_small_module(letter, "", small_gemm.module_ir), passes=False)


def link_small_products(objects=None, letters=None) -> None:
    """Register `small_gemm`'s kernels for the dtypes that ``objects`` (a program's object
    code) call, or for ``letters``: each dtype's module is compiled (or loaded from the disk
    cache) the first time a program needs it, ~0.06 s of LLVM that most programs never pay
    (their dot products, as much again, when a product first takes them: `resolve_dots`).
    The kernels are emitted as written: LLVM's optimisation passes took two thirds of their
    compile time and changed nothing measured (they are explicit vectors and loops already).
    Any thread may call it, once `register_symbols` has registered the names they call."""
    wanted = set(letters or ()) | {letter for letter, name in small_gemm.NAMES.items()
                                   if objects and any(name.encode() in o for o in objects)}
    for letter in sorted(wanted - _small_linked):
        with _small_lock:
            if letter in _small_linked:
                continue
            name = small_gemm.NAMES[letter]
            module = _kernels(letter, "", small_gemm.module_ir, _small_objects.pop(letter, None))
            llvm.add_symbol(name, module.address(name))
            _small_linked.add(letter)


#: The dot products' addresses, per prefix (`small_gemm.DOTS_SLOT`): 0 until linked.
_dots_addresses = {letter: ctypes.c_void_p(0) for letter in small_gemm.NAMES}
_dots_lock = threading.Lock()
_dots_failed = set()


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int8)
def _dots_resolver(letter_code):
    return resolve_dots(chr(letter_code))


def resolve_dots(letter: str) -> int:
    """Link `small_gemm`'s dot products of one dtype (compiled, or loaded from the disk cache)
    and -> their address; 0 where that failed, with one warning (the products they would run
    go to BLAS). The small products' module calls it, through `small_gemm.DOTS_RESOLVER`, the
    first time a product takes them: with the interpreter lock held, on the thread that called
    the compiled function (products never run on the team's other threads)."""
    with _dots_lock:
        if not _dots_addresses[letter].value and letter not in _dots_failed:
            try:
                module = _kernels(letter, ", dot products", small_gemm.dots_module_ir)
                _dots_addresses[letter].value = module.address(small_gemm.DOT_NAMES[letter])
            except Exception as error:    # not raised: the caller is compiled code
                _dots_failed.add(letter)
                warnings.warn(f"lumen: the small matrix products' dot products could not be "
                              f"compiled ({error!r}); BLAS runs those products", RuntimeWarning)
        return _dots_addresses[letter].value or 0


def _small_module(letter, what, module_ir):
    """(name, IR maker) of one module of `small_gemm` kernels for this host."""
    from .target import host_features
    return (f"small matrix products{what} ({'float32' if letter == 's' else 'float64'})",
            functools.partial(module_ir, letter, host_features()))


def _kernels(letter, what, module_ir, objects=None):
    """One module of `small_gemm` kernels for this host, loaded for good (``objects``: its
    object code, where `compile_small_products` made it)."""
    return compile_for_good(*_small_module(letter, what, module_ir), passes=False,
                            objects=objects)


def runtime_objects(name: str, module_ir, passes=True) -> list:
    """The object code of runtime support (`compile_for_good`'s), from the disk cache or
    compiled (and stored there); needs no symbols registered."""
    from ..runtime import disk_cache
    from .target import code_key, compile_objects, disk_cache_info
    key = code_key({"runtime": name})
    objects = disk_cache.load(key)
    if objects is None:
        objects = compile_objects(module_ir(), passes)
        disk_cache.store(key, objects, **disk_cache_info(f"lumen runtime: {name}"))
    return objects


def compile_for_good(name: str, module_ir, passes=True, objects=None):
    """A loaded module of runtime support code that generated code calls by name (the result
    pool, the serial OpenMP stand-ins, the small matrix products), never unloaded: an array's
    capsule may call into it after every compiled function is gone. Its object code is cached
    on disk as a program's is (keyed by lumen's source and the target, so that
    ``module_ir()``, its text, is only built when it is compiled): a process whose programs
    all come from the disk cache runs LLVM for nothing. ``passes``: `compile_objects`'s;
    ``objects``: the code, where `runtime_objects` made it already."""
    from .target import LoadedModule
    if objects is None:
        objects = runtime_objects(name, module_ir, passes)
    module = LoadedModule(objects, runtime=True)
    _runtime_modules.append(module)
    return module


# -- The OpenMP runtime, for parallel loops (parallel.py) -------------------------------------

#: The thread count a parallel region reads when it starts (``lumen_num_threads``): read at run
#: time, so it is neither compiled in nor part of a cache key. `set_num_threads`'s count, else
#: LUMEN_NUM_THREADS when the symbols are registered (the process's first compile or load);
#: 1 where libgomp is missing.
num_threads = ctypes.c_int32(1)
#: The work (points x `parallel.element_cost`) from which a region runs on the team
#: (``lumen_fork_work``): `parallel.THRESHOLD`, or more where waking the team costs more
#: (`fork_threshold`). Read at run time, as the thread count is.
fork_work = ctypes.c_int64(THRESHOLD)
#: The bytes from which a loop of cheap operations (its time is its memory traffic) runs on the
#: team (``lumen_fork_bytes``): 0 where waking the team is cheap; `MEMORY_FORK_BYTES` where
#: it is slow (`SLOW_WAKE_NS`), as on a virtual machine, whose cores fetched the data another
#: had just used far slower than that one read it again (`fork_bytes`).
fork_bytes = ctypes.c_int64(0)
#: A wake-up of the team this slow (ns) marks a machine where `fork_bytes` applies.
SLOW_WAKE_NS = 15_000
#: Measured on such a machine (2 cores, waking ~35 µs), ``w - lr * x.T @ d`` in float32,
#: serial against forked: 784 x 500 (3 MB read and written) 44 against 60 µs, 784 x 1000 78
#: against 118 µs, 2000 x 2000 (32 MB) 822 against 555 µs; a float32 tanh forked paid at each.
MEMORY_FORK_BYTES = 16 << 20
#: Work a core does per nanosecond in a fused loop (~25-40 units measured here: float32 tanh,
#: exp, additions, vectorised), to turn a wake-up's time into work.
WORK_PER_NS = 25
#: The most `fork_threshold` sets: a loop of this much work (~0.7 ms on one core) always forks.
FORK_WORK_MAX = 1 << 24

_OPENMP = {"lumen_GOMP_parallel": "GOMP_parallel",
           "lumen_omp_get_thread_num": "omp_get_thread_num",
           "lumen_omp_get_num_threads": "omp_get_num_threads"}
_openmp_loaded = False
_requested_threads = None   # set_num_threads's, which the environment does not override


def register_openmp() -> None:
    """Resolve the OpenMP names: to libgomp's functions, or where libgomp cannot be loaded to
    serial stand-ins (with one warning), so that the same object code links either way."""
    global _openmp_loaded
    llvm.add_symbol("lumen_num_threads", ctypes.addressof(num_threads))
    llvm.add_symbol("lumen_fork_work", ctypes.addressof(fork_work))
    llvm.add_symbol("lumen_fork_bytes", ctypes.addressof(fork_bytes))
    _openmp_loaded = _load_libgomp()
    if _openmp_loaded:
        for name, symbol in _OPENMP.items():
            llvm.add_symbol(name, llvm.address_of_symbol(symbol))
        num_threads.value = _requested_threads or threads_from_environment()
        _prepare_team()
        # libgomp's threads do not survive fork: a forked child (a multiprocessing worker)
        # that started a team would wait for them for ever; there, loops run on one thread
        os.register_at_fork(after_in_child=lambda: set_num_threads(1))
        return
    warnings.warn("lumen: libgomp (the GNU OpenMP runtime) was not found; compiled loops run "
                  "on one thread", RuntimeWarning, stacklevel=2)
    for name, address in _serial_openmp().items():
        llvm.add_symbol(name, address)


#: How long libgomp's idle threads spin before sleeping, unless the user says otherwise
#: (GOMP_SPINCOUNT / OMP_WAIT_POLICY): ~0.4 ms here, long enough for the team to be awake for a
#: compiled call's next loop or product (a sleeping team took ~40 us to wake on this virtual
#: machine, as long as the loop it ran), short enough to give the core back soon after (libgomp's
#: default, 300 000 spins, keeps it ~10 ms). Spinning pays only because OpenBLAS's work runs on
#: the same team (`blas_team`): with OpenBLAS's own threads in the process, a spinning team
#: and they took each other's cores, an MLP step on 2 threads ran 6x slower. Measured on 2
#: cores, against not spinning: the MLP step 784-1000-1000-1000-10 at batch 1 0.49 against
#: 0.77-1.1 ms, at batch 60 5.5 against 6.1 ms; the RNN step (W4) at H = 500 10.5 against
#: 13.7 ms. The price: once the spin is over, a wake-up took 400-600 us here against 30-80 us
#: for threads that slept at once (10 spins 70 us, 1,000 130 us), so `fork_threshold` sits at
#: its ceiling on this machine.
GOMP_SPINCOUNT = "10000"


def fork_threshold(wake_ns: float) -> int:
    """The work from which forking pays: the threads must save more than twice a wake-up of the
    team (two threads save half the loop). `parallel.THRESHOLD` where waking is cheap (a few
    µs, bare metal); on a virtual machine whose sleeping threads took ~40 µs to wake, loops of
    8-15 µs ran 3-6x slower forked (float32 tanh of 16-64 K elements, 2 cores), and forking
    paid from ~100 µs of work."""
    return int(min(max(THRESHOLD, 2 * wake_ns * WORK_PER_NS), FORK_WORK_MAX))


def memory_fork_bytes(wake_ns: float) -> int:
    """The data from which a loop of cheap operations forks (`fork_bytes`): any amount where
    waking the team is quick, `MEMORY_FORK_BYTES` where it is slow (`SLOW_WAKE_NS`)."""
    return MEMORY_FORK_BYTES if wake_ns >= SLOW_WAKE_NS else 0


_team_prepared = False


def _prepare_team() -> None:
    """Once, when loops first may fork (a process on one thread never starts a team, nor pays
    for this): set `fork_work` and `fork_bytes` from this machine's wake-up time, and hand
    BLAS's parallel work to the team (`_run_blas_on_team`)."""
    global _team_prepared
    if _openmp_loaded and num_threads.value > 1 and not _team_prepared:
        _team_prepared = True
        wake_ns = _wake_ns(llvm.address_of_symbol("GOMP_parallel"))
        fork_work.value = fork_threshold(wake_ns)
        fork_bytes.value = memory_fork_bytes(wake_ns)
        _run_blas_on_team()


#: Long past lumen's spin (~0.4 ms here; 10,000 pauses take 0.03-0.5 ms on x86 cores): measured
#: after 0.2 ms, 1 process in 2 timed a spinning team (7 us) and forked every loop.
IDLE_S = 2e-3


def _wake_ns(gomp_parallel: int) -> float:
    """Nanoseconds a fork of the team costs when its threads have gone idle: the median of
    five empty regions (each thread calls ``free(NULL)``), after one that starts the threads,
    each `IDLE_S` after the one before: past lumen's spin (`GOMP_SPINCOUNT`), so a wake-up
    (or, where the user made the threads spin for good, a fork of a spinning team)."""
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint,
                           ctypes.c_uint)(gomp_parallel)
    nothing = ctypes.cast(ctypes.CDLL(None).free, ctypes.c_void_p).value
    team = num_threads.value
    run(nothing, None, team, 0)
    times = []
    for _ in range(5):
        time.sleep(IDLE_S)
        start = time.perf_counter_ns()
        run(nothing, None, team, 0)
        times.append(time.perf_counter_ns() - start)
    return sorted(times)[len(times) // 2]


def _load_libgomp() -> bool:
    """Load libgomp by its usual soname (dlopen's own search: a warm start does not pay the
    ~1 ms subprocess of ctypes.util.find_library), else wherever find_library finds it. It
    reads its settings from the environment when it loads: the spin count is set for that
    moment only, so that another OpenMP runtime loaded later (torch bundles its own) keeps
    its defaults."""
    ours = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
    if ours:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
    try:
        if _load_library("libgomp.so.1"):
            return True
        import ctypes.util      # imports subprocess: only when needed
        path = ctypes.util.find_library("gomp")
        return bool(path) and _load_library(path)
    finally:
        if ours:
            del os.environ["GOMP_SPINCOUNT"]


def _load_library(path) -> bool:
    try:
        llvm.load_library_permanently(path)
        return True
    except RuntimeError:
        return False


def threads_from_environment() -> int:
    """LUMEN_NUM_THREADS, else the number of CPUs this process may run on."""
    text = os.environ.get("LUMEN_NUM_THREADS", "").strip()
    if text:
        if text.isdigit() and int(text) >= 1:
            return int(text)
        warnings.warn(f"lumen: LUMEN_NUM_THREADS={text!r} is not a positive integer; using "
                      "the CPU count", RuntimeWarning, stacklevel=2)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def set_num_threads(n: int) -> int:
    """Threads for the parallel regions that start from now on, whether or not the runtime is
    registered yet (always 1 without libgomp); returns the count in force before."""
    global _requested_threads
    previous = num_threads.value
    _requested_threads = max(1, int(n))
    num_threads.value = _requested_threads if _openmp_loaded else 1
    _prepare_team()
    return previous


def _serial_openmp() -> dict:
    """Addresses of a GOMP_parallel that runs the region once on the calling thread and of
    omp_get_thread_num / omp_get_num_threads answering 0 and 1, compiled here."""
    from llvmlite import ir
    void, i8p, i32 = ir.VoidType(), ir.IntType(8).as_pointer(), ir.IntType(32)
    module = ir.Module("serial_openmp")
    region = ir.FunctionType(void, [i8p]).as_pointer()
    run = ir.Function(module, ir.FunctionType(void, [region, i8p, i32, i32]), "serial_parallel")
    b = ir.IRBuilder(run.append_basic_block())
    b.call(run.args[0], [run.args[1]])
    b.ret_void()
    for name, value in (("serial_thread_num", 0), ("serial_num_threads", 1)):
        fn = ir.Function(module, ir.FunctionType(i32, []), name)
        ir.IRBuilder(fn.append_basic_block()).ret(ir.Constant(i32, value))
    loaded = compile_for_good("serial OpenMP", lambda: str(module))
    stand_ins = ("serial_parallel", "serial_thread_num", "serial_num_threads")
    return {name: loaded.address(stand_in)
            for name, stand_in in zip(_OPENMP, stand_ins)}
