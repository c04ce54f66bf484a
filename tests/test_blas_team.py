"""BLAS's parallel work on lumen's OpenMP team (codegen_llvm/blas_team.py): NumPy's products
and a compiled function's run on the team once the runtime is linked on two threads, with the
bits they had on OpenBLAS's own threads; jobs that wait for each other finish inside another
parallel region too; a forked child gives the work back to OpenBLAS. Each case runs in a fresh process (the
callback is the process's), with a time limit: a hang fails the test."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from lumen.codegen_llvm import symbols, target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_module():
    target.link_runtime()       # loads libgomp where it can (the tests' own team is 1 thread)
    if not symbols.blas_can_run_on_team():
        pytest.skip("this BLAS takes no threads callback (OpenBLAS < 0.3.28, or no libgomp)",
                    allow_module_level=True)


def run(script: str, **env) -> dict:
    settings = {"LUMEN_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", **env}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, LUMEN_CACHE="0", **settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


PRODUCTS = """
    import json, os
    import numpy as np
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((600, 600)).astype(np.float32)
    v32 = rng.standard_normal(600).astype(np.float32)
    a64 = rng.standard_normal((500, 700))

    def products():
        return [a32 @ a32, a32 @ v32, v32 @ a32, a64 @ a64.T, a64.T @ a64[:, :3]]

    def cpu_ticks(threads):
        ticks = 0
        for t in threads:
            fields = open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks

    openblas_threads = sorted(set(os.listdir("/proc/self/task")) - {str(os.getpid())})
    before = products()                                  # on OpenBLAS's own threads
    import lumen
    from lumen.codegen_llvm import symbols
    f = lumen.jit(lambda x, y: np.tanh(x @ y))
    compiled = f(a32, a32)
    start = cpu_ticks(openblas_threads)
    after = [products() for _ in range(20)]              # on lumen's team
    print(json.dumps({
        "on_team": symbols.blas_on_team(),
        "same_bits": all(np.array_equal(x, y) for run in after for x, y in zip(before, run)),
        "compiled": bool(np.allclose(compiled, np.tanh(a32.astype(float) @ a32), atol=1e-4)),
        "openblas_ticks": cpu_ticks(openblas_threads) - start}))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc's thread times")
def test_numpy_products_run_on_the_team_with_the_bits_openblas_gave():
    """OpenBLAS splits the work the same way on either threads, so the results are the same
    bits; its own threads, started when NumPy loaded it, do no work any more (20 rounds of
    products of ~0.4 GFLOP would have given them tens of ticks)."""
    out = run(PRODUCTS)
    assert out["on_team"] and out["same_bits"] and out["compiled"]
    assert out["openblas_ticks"] <= 2


NESTED = """
    import ctypes, json
    import numpy as np
    import lumen
    from lumen.codegen_llvm import symbols, target
    target.link_runtime()
    bits = symbols.blas().int_bits
    text = f'''
    %captures = type {{ i8*, i8*, i8*, i{bits} }}
    declare void @lumen_GOMP_parallel(void (i8*)*, i8*, i32, i32)
    declare i32 @lumen_omp_get_thread_num()
    declare void @lumen_sgemm(i8*, i8*, i{bits}*, i{bits}*, i{bits}*, float*, i8*, i{bits}*,
                              i8*, i{bits}*, float*, i8*, i{bits}*)
    define internal void @region(i8* %p) {{
    entry:
      %t = call i32 @lumen_omp_get_thread_num()
      %first = icmp eq i32 %t, 0
      br i1 %first, label %call, label %done
    call:
      %c = bitcast i8* %p to %captures*
      %ap = getelementptr %captures, %captures* %c, i32 0, i32 0
      %a = load i8*, i8** %ap
      %bp = getelementptr %captures, %captures* %c, i32 0, i32 1
      %b = load i8*, i8** %bp
      %op = getelementptr %captures, %captures* %c, i32 0, i32 2
      %o = load i8*, i8** %op
      %np = getelementptr %captures, %captures* %c, i32 0, i32 3
      %n = load i{bits}, i{bits}* %np
      %no = alloca i8
      store i8 78, i8* %no
      %one = alloca float
      store float 1.0, float* %one
      %zero = alloca float
      store float 0.0, float* %zero
      %nn = alloca i{bits}
      store i{bits} %n, i{bits}* %nn
      ; row-major o = a @ b is column-major o = b a
      call void @lumen_sgemm(i8* %no, i8* %no, i{bits}* %nn, i{bits}* %nn, i{bits}* %nn,
                             float* %one, i8* %b, i{bits}* %nn, i8* %a, i{bits}* %nn,
                             float* %zero, i8* %o, i{bits}* %nn)
      br label %done
    done:
      ret void
    }}
    define void @nested(i8* %a, i8* %b, i8* %o, i{bits} %n) {{
      %c = alloca %captures
      %ap = getelementptr %captures, %captures* %c, i32 0, i32 0
      store i8* %a, i8** %ap
      %bp = getelementptr %captures, %captures* %c, i32 0, i32 1
      store i8* %b, i8** %bp
      %op = getelementptr %captures, %captures* %c, i32 0, i32 2
      store i8* %o, i8** %op
      %np = getelementptr %captures, %captures* %c, i32 0, i32 3
      store i{bits} %n, i{bits}* %np
      %p = bitcast %captures* %c to i8*
      call void @lumen_GOMP_parallel(void (i8*)* @region, i8* %p, i32 2, i32 0)
      ret void
    }}
    '''
    module = symbols.compile_for_good("test: a product inside a parallel region", lambda: text)
    nested = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_int64)(module.address("nested"))
    rng = np.random.default_rng(1)
    n = 700
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    o = np.empty((n, n), np.float32)
    nested(a.ctypes.data, b.ctypes.data, o.ctypes.data, n)
    print(json.dumps({"right": bool(np.allclose(o, a @ b, rtol=1e-4, atol=1e-3))}))
"""


def test_jobs_that_wait_for_each_other_finish_inside_another_parallel_region():
    """A product called from a thread of a parallel region (a nested team has one thread, and
    OpenBLAS's two jobs of a matrix product wait for each other's panels): the job the team
    has no thread for runs on a thread of its own, and it finishes with the right numbers."""
    assert run(NESTED) == {"right": True}


LIMITED = """
    import json
    import numpy as np
    import lumen
    from lumen.codegen_llvm import target
    target.link_runtime()
    a = np.random.default_rng(3).standard_normal((700, 700)).astype(np.float32)
    print(json.dumps({"right": bool(np.allclose(a @ a, a.astype(float) @ a, atol=1e-3))}))
"""


def test_jobs_finish_where_openmp_gives_fewer_threads_than_asked():
    """OMP_THREAD_LIMIT=1: a team of one thread for OpenBLAS's two jobs."""
    assert run(LIMITED, OMP_THREAD_LIMIT="1") == {"right": True}


ONE_THREAD = """
    import json
    import numpy as np
    import lumen
    from lumen.codegen_llvm import symbols, target
    target.link_runtime()
    alone = symbols.blas_on_team()
    symbols.set_num_threads(2)
    a = np.random.default_rng(4).standard_normal((600, 600))
    print(json.dumps({"alone": alone, "two": symbols.blas_on_team(),
                      "right": bool(np.allclose(a @ a, np.dot(a, a)))}))
"""


def test_a_process_on_one_thread_keeps_openblas_threads_until_it_has_a_team():
    """On one thread no team spins, and the module is not compiled (a cold start's LLVM);
    the first count above one hands BLAS to the team."""
    assert run(ONE_THREAD, LUMEN_NUM_THREADS="1") == {"alone": False, "two": True,
                                                        "right": True}


FORKED = """
    import json, os
    import numpy as np
    import lumen
    from lumen.codegen_llvm import symbols, target
    target.link_runtime()
    a = np.random.default_rng(2).standard_normal((600, 600))
    expected = a @ a
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        callback = symbols.blas_threads_callback()
        ok = np.array_equal(a @ a, expected) and not callback.value
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    child = os.read(read, 1)
    os.waitpid(pid, 0)
    print(json.dumps({"child_ok": child == b"1", "parent_ok": bool(np.array_equal(a @ a, expected))}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gives_blas_back_to_openblas():
    """libgomp's threads do not survive fork: the child's products run on OpenBLAS's own
    threads (which OpenBLAS restarts), not on a team that would wait for them for ever."""
    assert run(FORKED) == {"child_ok": True, "parent_ok": True}
