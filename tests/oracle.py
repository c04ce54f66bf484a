"""The test oracle: a jitted function must agree with the same function run by NumPy (SPEC §1)."""
from __future__ import annotations

import numpy as np

import lumen

#: SPEC §1 tolerances: float64 rtol 1e-12 (non-transcendental) / 1e-10 (transcendental),
#: float32 1e-5.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def tolerance(dtype, exact=False):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return 0.0
    if exact and dtype == np.float64:
        return 1e-12
    return RTOL[dtype]


def assert_same(got, expected, rtol=None, atol=None, exact=False):
    """``got`` (lumen's) equals ``expected`` (NumPy's): dtype, shape and values."""
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray), f"lumen returned {type(got).__name__}, not ndarray"
    assert got.dtype == expected.dtype, f"dtype {got.dtype} != NumPy's {expected.dtype}"
    assert got.shape == expected.shape, f"shape {got.shape} != NumPy's {expected.shape}"
    if expected.dtype.kind == "f":
        r = tolerance(expected.dtype, exact) if rtol is None else rtol
        a = (r if atol is None else atol)
        np.testing.assert_allclose(got, expected, rtol=r, atol=a, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


def check(fn, *args, rtol=None, atol=None, exact=False, **jit_options):
    """Run ``fn`` under lumen.jit and under NumPy and compare every result leaf."""
    got = lumen.jit(fn, **jit_options)(*args)
    with np.errstate(all="ignore"):
        expected = fn(*args)
    if isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same(g, e, rtol, atol, exact)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for k in expected:
            assert_same(got[k], expected[k], rtol, atol, exact)
    else:
        assert_same(got, expected, rtol, atol, exact)
    return got
