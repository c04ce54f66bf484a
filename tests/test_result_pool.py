"""Memory of large results reused once the caller drops them (codegen_llvm/output_pool.py):
a result held is never written again, a result dropped lends its memory to the next call,
and the arrays outlive the functions that made them."""
import gc
import os
import subprocess
import sys
import threading

import numpy as np

import lumen

MIB = 1 << 20


def _add_one():
    return lumen.jit(lambda a: a + 1.0)


_REUSE = """
import numpy as np, lumen
f = lumen.jit(lambda a: a + 1.0)
x = np.arange(1 << 20, dtype=np.float64)             # 8 MiB results
first = f(x)
address = first.ctypes.data
assert not first.flags.owndata and first.base is not None
assert first.flags.c_contiguous and first.flags.writeable and address % 64 == 0
del first
second = f(x * 2)
assert second.ctypes.data == address, "the dropped result's memory was not reused"
np.testing.assert_array_equal(second, x * 2 + 1)
"""


def test_a_dropped_result_lends_its_memory_to_the_next():
    """In a fresh process, where the pool holds nothing else a result could take."""
    subprocess.run([sys.executable, "-c", _REUSE], check=True, timeout=120,
                   env={**os.environ, "LUMEN_CACHE": "0"})


def test_results_held_are_never_overwritten():
    f = _add_one()
    x = np.arange(MIB // 2, dtype=np.float64)
    held = [f(x + k) for k in range(8)]                # more than the pool's slots
    assert len({h.ctypes.data for h in held}) == 8
    for k, h in enumerate(held):
        np.testing.assert_array_equal(h, x + k + 1)
    del held[::2]
    gc.collect()
    again = [f(x - k) for k in range(6)]
    for k, h in enumerate(again):
        np.testing.assert_array_equal(h, x - k + 1)
    for k, h in zip(range(1, 8, 2), held):
        np.testing.assert_array_equal(h, x + k + 1)


def test_sizes_outside_the_pool_and_far_from_a_kept_block():
    f = _add_one()
    small = f(np.ones(1000))                           # 8 kB: NumPy's own allocation
    assert small.flags.owndata
    big = np.ones(4 * MIB)                             # 32 MiB, then 2 MiB: not half the block
    r = f(big)
    address = r.ctypes.data
    del r
    r = f(np.ones(MIB // 4))
    assert r.ctypes.data != address
    np.testing.assert_array_equal(r, 2.0)


def test_results_outlive_their_function():
    f = _add_one()
    r = f(np.full(MIB, 3.0, np.float32))
    del f
    gc.collect()
    assert r.sum() == 4.0 * MIB
    del r                                             # the block goes back to the pool
    gc.collect()
    np.testing.assert_array_equal(_add_one()(np.zeros(MIB, np.float32)), 1.0)


def test_every_output_of_a_tuple_and_every_dtype():
    f = lumen.jit(lambda a, b: (a * 2, b > 0, (b * 3).astype(np.int64)))
    a, b = np.ones(MIB, np.float32), np.arange(-MIB // 2, MIB // 2, dtype=np.int32)
    for _ in range(3):
        x, y, z = f(a, b)
        np.testing.assert_array_equal(x, 2.0)
        np.testing.assert_array_equal(y, b > 0)
        np.testing.assert_array_equal(z, b.astype(np.int64) * 3)
        assert z.dtype == np.int64 and y.dtype == np.bool_
        del x, y, z


def test_threads_calling_at_once_get_their_own_memory():
    f = _add_one()
    x = np.arange(MIB // 4, dtype=np.float64)
    errors = []

    def work(k):
        for i in range(20):
            r = f(x + k * 100 + i)
            if not np.array_equal(r, x + k * 100 + i + 1):
                errors.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
