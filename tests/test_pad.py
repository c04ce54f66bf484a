"""np.pad (constant mode) traced: NumPy's result for every pad_width / constant_values form,
its derivative, and errors."""
import numpy as np
import pytest

import lumen

RNG = np.random.default_rng(4)

FORMS = [
    (1, 0),
    ((1, 2), 5),
    (((0, 1), (2, 0), (1, 1)), ((1, 2), (3, 4), (5, 6))),
    (((2, 3),), -np.inf),
    (0, 0),
    (((0, 0), (0, 0), (3, 0)), 7),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.bool_])
@pytest.mark.parametrize("pad_width,values", FORMS)
def test_pad_matches_numpy(pad_width, values, dtype):
    if dtype in (np.int32, np.bool_) and isinstance(values, float) and np.isinf(values):
        values = 1
    x = (RNG.standard_normal((2, 3, 4)) * 5).astype(dtype)
    expected = np.pad(x, pad_width, constant_values=values)
    got = lumen.jit(lambda x: np.pad(x, pad_width, constant_values=values))(x)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_pad_gradient():
    x = RNG.standard_normal((3, 4))
    lumen.check_grad(lambda x: np.sin(np.pad(x, ((1, 0), (2, 1)), constant_values=0.5)), (x,))


def test_pad_errors():
    x = np.ones((2, 3))
    with pytest.raises(lumen.UnsupportedError, match="mode='reflect'"):
        lumen.jit(lambda x: np.pad(x, 1, mode="reflect"))(x)
    with pytest.raises(ValueError, match="negative"):
        lumen.jit(lambda x: np.pad(x, -1))(x)
    with pytest.raises(ValueError, match="does not fit an array of 2 dimensions"):
        lumen.jit(lambda x: np.pad(x, ((1, 1), (1, 1), (1, 1))))(x)
    with pytest.raises(TypeError, match="integers"):
        lumen.jit(lambda x: np.pad(x, 1.5))(x)
