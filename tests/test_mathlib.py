"""The inline vector math (`lumen.codegen_llvm.lower.mathlib`): <= 4 ulp over the full range,
special values exact, and loops that use it are vectorised."""
import numpy as np
import pytest
import scipy.special as sc

import lumen

FUNCTIONS = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p,
             "tanh": np.tanh, "expit": sc.expit}
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan]


def _inputs(dtype):
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    parts = [rng.uniform(-1, 1, 4000), rng.uniform(-30, 30, 4000), rng.uniform(-800, 800, 4000),
             np.exp(rng.uniform(np.log(info.tiny) - 20, np.log(info.max), 4000)),
             -np.exp(rng.uniform(-30, 30, 500)),
             [info.tiny, info.smallest_subnormal, info.max, -1 + 1e-7, 88.72, 88.73, -87.3,
              -103.9, -104.0, 709.78, 709.79, -745.1, -746.0, 1e-20, -1e-20]]
    with np.errstate(over="ignore"):
        return np.concatenate(parts).astype(dtype)


def _ulps(got, expected):
    """Distance in units of the expected value's last place (0 where both agree exactly)."""
    spacing = np.spacing(np.abs(expected)).astype(np.float64)
    spacing = np.where(spacing == 0, np.finfo(expected.dtype).smallest_subnormal, spacing)
    d = np.abs(got.astype(np.float64) - expected.astype(np.float64)) / spacing
    agree = (got == expected) | (np.isnan(got) & np.isnan(expected))
    return np.where(agree, 0.0, d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_within_four_ulp(name, dtype):
    ref = FUNCTIONS[name]
    x = _inputs(dtype)
    with np.errstate(all="ignore"):
        # float32: the float64 result rounded once is the correctly rounded reference
        expected = ref(x.astype(np.float64)).astype(dtype)
        got = lumen.jit(lambda v: ref(v))(x)
    normal = np.abs(expected) >= np.finfo(dtype).tiny      # subnormal results: absolute error
    err = _ulps(got, expected)
    worst = int(np.argmax(np.where(normal, err, 0)))
    assert err[normal].max() <= 4, f"{name}({x[worst]!r}) = {got[worst]!r}, expected {expected[worst]!r}"
    tiny = ~normal & np.isfinite(expected)
    assert np.all(np.abs(got[tiny] - expected[tiny]) <= 4 * np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_special_values(name, dtype):
    ref = FUNCTIONS[name]
    x = np.array(SPECIAL, dtype)
    with np.errstate(all="ignore"):
        expected = ref(x)
        got = lumen.jit(lambda v: ref(v))(x)
    np.testing.assert_array_equal(got, expected)
    number = ~np.isnan(expected)            # a NaN's sign bit carries no meaning
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(expected[number]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_points(dtype):
    x = np.array([1.0, -1.0, 2.0], dtype)
    assert lumen.jit(lambda v: np.log(v))(x)[0] == 0.0
    assert lumen.jit(lambda v: np.log1p(v))(x)[1] == -np.inf
    assert np.isnan(lumen.jit(lambda v: np.log(v))(x)[1])


def test_fused_inner_loop_is_vectorised():
    f = lumen.jit(lambda a, b, c: np.tanh(a) * b + np.exp(-c * c))
    x = np.ones(1000, np.float32)
    asm = f.lower(x, x, x).asm()
    vector_ops = [line for line in asm.splitlines()
                  if any(reg in line for reg in ("%xmm", "%ymm", "%zmm")) and "ps\t" in line]
    packed = [line for line in vector_ops if any(op in line for op in ("vmulps", "vaddps", "vfmadd"))]
    assert packed, "no packed single-precision arithmetic in the kernel"


def test_float32_sum_adds_in_float32_lanes():
    """A float32 sum adds each block's elements in float32 vector lanes and only the block
    partials in float64: no per-element widening, so exp inside the sum runs 16 lanes wide
    with AVX-512 instead of 8 (test_reductions checks the accuracy this keeps)."""
    f = lumen.jit(lambda x: np.exp(x).sum(axis=1))
    asm = f.lower(np.ones((8, 1000), np.float32)).asm().splitlines()
    assert not [line for line in asm if "vcvtps2pd" in line and ("%ymm" in line or "%zmm" in line)]
    assert [line for line in asm if "vaddps" in line and ("%ymm" in line or "%zmm" in line)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_where_its_reduction_steps_and_at_its_clamp(dtype):
    """tanh|x| = -m / (2 + m), m = e^-2|x| - 1 from a reduction -2|x| = n ln2 + r: dense
    where n steps (|x| = (k + 1/2) ln2 / 2), over [0, 1] where m is far from -1, from 1e-30
    up (m = -2|x| exactly at the bottom), and where tanh reaches 1 (the argument is clamped
    there). Every positive float32 has been checked offline: at most 2 ulp."""
    top = 10.0 if dtype == np.float32 else 22.0
    steps = (np.arange(0, 2 * top / np.log(2)) + 0.5) * np.log(2) / 2
    x = np.concatenate([(steps[:, None] + np.linspace(-1e-3, 1e-3, 401)).ravel(),
                        np.linspace(0, 1, 100001), np.linspace(top - 2, top + 1, 20001),
                        np.geomspace(1e-30, 0.5, 20001)]).astype(dtype)
    x = np.concatenate([x, -x])
    expected = np.tanh(x.astype(np.float64)).astype(dtype)
    got = lumen.jit(lambda v: np.tanh(v))(x)
    assert _ulps(got, expected).max() <= (2 if dtype == np.float32 else 3)
    assert np.all(np.abs(got) <= 1)
    big = np.abs(x) >= 9.1 if dtype == np.float32 else np.abs(x) >= 19.2
    np.testing.assert_array_equal(got[big], np.sign(x[big]))
