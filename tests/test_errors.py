"""SPEC §7: bad input never crashes and never returns wrong numbers; every error is a Python
exception naming the operation, what was expected, and the user's source line."""
import numpy as np
import pytest

import lumen

THIS_FILE = "test_errors.py"


def test_broadcast_mismatch_at_trace_time_names_line():
    @lumen.jit
    def f(x, y):
        return x + y  # the line the error must name

    with pytest.raises(ValueError, match=rf"add.*{THIS_FILE}:\d+"):
        f(np.ones(3), np.ones(4))


def test_broadcast_mismatch_at_run_time_is_checked_in_compiled_code():
    @lumen.jit
    def f(x, y):
        return x * y

    np.testing.assert_array_equal(f(np.ones(3), np.ones(3)), np.ones(3))
    with pytest.raises(ValueError, match=rf"multiply.*{THIS_FILE}:\d+"):
        f(np.ones(5), np.ones(7))          # same signature: no retrace, the native check fires
    assert f.cache_info()["compiles"] == 1


def test_sizes_are_checked_even_where_the_computation_is_optimised_away():
    """NumPy checks the operands of ``a + b`` even when the sum is unused, and of a product a
    rewrite folds into BLAS; so does the compiled code."""
    @lumen.jit
    def dead(a, b):
        unused = a + b               # noqa: F841
        return a * 2

    @lumen.jit
    def update(w, x, g):
        return w - 0.1 * (x.T @ g)   # one gemm into a copy of w: w's shape is still checked

    assert_array = np.testing.assert_array_equal
    assert_array(dead(np.ones(3), np.ones(3)), np.full(3, 2.0))
    with pytest.raises(ValueError, match=rf"add.*{THIS_FILE}:\d+"):
        dead(np.ones(3), np.ones(4))
    w, x, g = np.ones((4, 5)), np.ones((2, 4)), np.ones((2, 5))
    np.testing.assert_allclose(update(w, x, g), w - 0.1 * (x.T @ g))
    with pytest.raises(ValueError):
        update(np.ones((4, 6)), x, g)


def test_matmul_core_dimension_mismatch():
    f = lumen.jit(lambda a, b: a @ b)
    with pytest.raises(ValueError, match="matmul"):
        f(np.ones((2, 3)), np.ones((4, 2)))
    f(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="matmul"):
        f(np.ones((2, 5)), np.ones((3, 2)))


def test_gather_out_of_bounds_raises_index_error_not_segfault():
    f = lumen.jit(lambda x, i: x[i])
    np.testing.assert_array_equal(f(np.arange(5.0), np.array([0, 4, -5])), [0.0, 4.0, 0.0])
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.arange(5.0), np.array([0, 5]))
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.arange(5.0), np.array([-6]))
    with pytest.raises(IndexError):
        f(np.arange(5.0), np.array([10**12]))


def test_scatter_out_of_bounds_raises_index_error():
    def g(x, i):
        y = x * 1
        y[i] = 0.0
        return y
    f = lumen.jit(g)
    with pytest.raises(IndexError):
        f(np.ones(4), np.array([7]))


def test_constant_integer_index_checked_at_trace_and_run_time():
    f = lumen.jit(lambda x: x[3])
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.ones(2))
    assert f(np.arange(4.0)) == 3.0
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.ones(3))          # same signature as the (4,) call: checked natively


def test_python_branch_on_traced_value_raises_tracing_error():
    @lumen.jit
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(lumen.TracingError, match=rf"{THIS_FILE}:\d+.*lumen.cond.*np.where"):
        f(np.ones(3))


@pytest.mark.parametrize("convert", [float, int, lambda t: np.asarray(t), lambda t: t.item()])
def test_concrete_value_of_tracer_raises_tracing_error(convert):
    f = lumen.jit(lambda x: convert(x.sum()))
    with pytest.raises(lumen.TracingError):
        f(np.ones(3))


def test_leaked_tracer_raises_tracing_error():
    leaked = []

    @lumen.jit
    def f(x):
        leaked.append(x)
        return x + 1

    f(np.ones(2))
    with pytest.raises(lumen.TracingError, match="outside the function"):
        leaked[0] * 2


@pytest.mark.parametrize("fn, name", [
    (lambda x: np.linalg.inv(x), "numpy.linalg.inv"),
    (lambda x: np.sort(x), "numpy.sort"),
    (lambda x: np.fft.fft(x), "numpy.fft.fft"),
])
def test_unsupported_numpy_function_is_named(fn, name):
    with pytest.raises(lumen.UnsupportedError, match=name.replace(".", r"\.")):
        lumen.jit(fn)(np.eye(3))


def test_unsupported_ufunc_is_named():
    with pytest.raises(lumen.UnsupportedError, match="ldexp"):
        lumen.jit(lambda x: np.ldexp(x, 2))(np.ones(3))


@pytest.mark.parametrize("arg, exc", [
    (np.ones(3, np.complex128), lumen.UnsupportedError),
    (np.ones(3, np.float16), lumen.UnsupportedError),
    (np.array(["a", "b"]), lumen.UnsupportedError),
    (np.array([object()]), lumen.UnsupportedError),
    ("a string", TypeError),
    (object(), TypeError),
    (1 + 2j, lumen.UnsupportedError),
])
def test_bad_argument_types_are_named(arg, exc):
    with pytest.raises(exc, match="argument|complex|dtype"):
        lumen.jit(lambda x: x * 2)(arg)


def test_ufunc_type_error_like_numpy():
    with pytest.raises(TypeError, match="bitwise_and"):
        lumen.jit(lambda x: x & x)(np.ones(3))


def test_reshape_of_wrong_size():
    with pytest.raises(ValueError, match="reshape"):
        lumen.jit(lambda x: x.reshape(4, 4))(np.ones(10))
    f = lumen.jit(lambda x: x.reshape(x.shape[0] // 2, 2))
    np.testing.assert_array_equal(f(np.ones(6)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="reshape"):
        f(np.ones(7))


def test_empty_max_raises_like_numpy():
    f = lumen.jit(lambda x: x.max(axis=0))
    with pytest.raises(ValueError, match="zero-size array"):
        f(np.ones((0, 3)))
    f2 = lumen.jit(lambda x: x.max())
    f2(np.ones(4))
    with pytest.raises(ValueError, match="zero-size array"):
        f2(np.ones(0))


def test_negative_integer_power_raises_value_error():
    f = lumen.jit(lambda x, y: x ** y)
    np.testing.assert_array_equal(f(np.array([2, 3]), np.array([2, 0])), [4, 1])
    with pytest.raises(ValueError, match="negative integer powers"):
        f(np.array([2, 3]), np.array([2, -1]))


def test_writing_into_an_argument_is_refused():
    def g(x):
        x[0] = 1.0
        return x
    with pytest.raises(lumen.UnsupportedError, match="copy"):
        lumen.jit(g)(np.zeros(3))

    def h(x):
        x += 1
        return x
    with pytest.raises(lumen.UnsupportedError, match="copy"):
        lumen.jit(h)(np.zeros(3))


def test_boolean_mask_indexing_is_refused_with_advice():
    with pytest.raises(lumen.UnsupportedError, match="np.where"):
        lumen.jit(lambda x: x[x > 0])(np.ones(3))


def test_out_argument_is_refused():
    with pytest.raises(lumen.UnsupportedError, match="out="):
        lumen.jit(lambda x, y: np.add(x, 1, out=y))(np.ones(3), np.ones(3))


def test_unknown_device_raises_device_error():
    with pytest.raises(lumen.DeviceError, match="tpu"):
        lumen.jit(lambda x: x, device="tpu")
    assert "cpu" in lumen.devices()


def test_gpu_call_without_a_gpu_raises_device_error():
    """Compiling for the GPU needs none (PTX can be inspected anywhere); running does."""
    if "gpu" in lumen.devices():
        pytest.skip("this machine has a usable GPU")
    f = lumen.jit(lambda x: x + 1, device="gpu")
    with pytest.raises(lumen.DeviceError, match="device='gpu'"):
        f(np.ones(3))


def test_process_survives_errors_and_function_still_works():
    f = lumen.jit(lambda x, i: x[i] * 2)
    for _ in range(3):
        with pytest.raises(IndexError):
            f(np.ones(3), np.array([3]))
    np.testing.assert_array_equal(f(np.arange(3.0), np.array([2, 0])), [4.0, 0.0])
