"""The `lumen.jit` contract of SPEC §1: pytrees of arguments and results, Python and NumPy
scalars, static and keyword arguments, shape-generic caching, and the introspection API."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lumen

from .oracle import assert_same, check


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- decorator forms ---------------------------------------------------------------------------

def test_bare_and_configured_decorators():
    @lumen.jit
    def f(x):
        return x * 2

    @lumen.jit(parallel=False, fastmath=False)
    def g(x):
        return x + 1

    x = rand(3)
    assert_same(f(x), x * 2)
    assert_same(g(x), x + 1)
    assert f.__name__ == "f" and g.__name__ == "g"
    assert_same(lumen.jit(np.tanh)(x), np.tanh(x))


# -- pytrees -----------------------------------------------------------------------------------

def test_tuple_list_dict_arguments():
    def fn(pair, items, params):
        a, b = pair
        return a * params["w"] + b - items[0] @ items[1] + params["b"]
    x, y = rand(3, seed=1), rand(3, seed=2)
    check(fn, (x, y), [rand(3, 4, seed=3), rand(4, seed=4)], {"w": rand(3, seed=5), "b": 1.5})


def test_nested_pytrees_in_and_out():
    def fn(tree):
        w = tree["layers"][0]["w"]
        b = tree["layers"][1][0]
        return {"out": (w.sum(axis=0), [b * 2, {"deep": w.T}]), "n": w.mean()}
    tree = {"layers": [{"w": rand(2, 3)}, (rand(3, seed=1),)], "unused": rand(1)}
    got = lumen.jit(fn)(tree)
    expected = fn(tree)
    assert type(got) is dict and set(got) == {"out", "n"}
    assert type(got["out"]) is tuple and type(got["out"][1]) is list
    assert type(got["out"][1][1]) is dict
    assert_same(got["out"][0], expected["out"][0])
    assert_same(got["out"][1][0], expected["out"][1][0])
    assert_same(got["out"][1][1]["deep"], expected["out"][1][1]["deep"])
    assert_same(got["n"], expected["n"])


def test_result_structures():
    x = rand(4)
    assert isinstance(lumen.jit(lambda x: x + 1)(x), np.ndarray)
    got = lumen.jit(lambda x: [x, x * 2])(x)
    assert type(got) is list and len(got) == 2
    got = lumen.jit(lambda x: (x,))(x)
    assert type(got) is tuple and len(got) == 1
    got = lumen.jit(lambda x: {"b": x.sum(), "a": (x.max(), [x.min()])})(x)
    assert set(got) == {"a", "b"} and type(got["a"]) is tuple and type(got["a"][1]) is list
    assert_same(got["a"][1][0], x.min())
    assert_same(got["b"], x.sum())


def test_none_leaves_and_constant_results():
    x = rand(3)
    got = lumen.jit(lambda x, unused: (x + 1, None, {"c": np.zeros(2), "k": np.arange(3)}))(x, None)
    assert got[1] is None
    assert_same(got[0], x + 1)
    assert_same(got[2]["c"], np.zeros(2))
    assert_same(got[2]["k"], np.arange(3))


def test_returning_an_input_and_repeated_results():
    x = rand(3, 2)
    f = lumen.jit(lambda x: (x, x, x.T))
    a, b, c = f(x)
    assert_same(a, x)
    assert_same(b, x)
    assert_same(c, x.T)
    a[0, 0] = 100.0
    assert x[0, 0] != 100.0, "the result must not alias the argument"


def test_arguments_are_not_modified():
    def fn(x):
        z = x[::-1] * 2            # a view of the argument, then a new array
        z[0] = -1.0
        w = x.copy()
        w += 1
        return z, w
    x = rand(5)
    before = x.copy()
    check(fn, x)
    np.testing.assert_array_equal(x, before)


def test_pytree_structure_is_part_of_the_key():
    f = lumen.jit(lambda t: sum(t))
    assert_same(f((rand(3), rand(3, seed=1))), rand(3) + rand(3, seed=1))
    assert_same(f((rand(3), rand(3, seed=1), rand(3, seed=2))),
                rand(3) + rand(3, seed=1) + rand(3, seed=2))
    assert_same(f([rand(3), rand(3, seed=1)]), rand(3) + rand(3, seed=1))
    assert f.cache_info()["compiles"] == 3


def test_bad_argument_types():
    f = lumen.jit(lambda x: x)
    with pytest.raises(TypeError):
        f("a string")
    with pytest.raises(TypeError):
        f({"a": object()})
    with pytest.raises(OverflowError):
        f(2**70)
    with pytest.raises(lumen.UnsupportedError):
        f(np.ones(3, np.complex128))


# -- Python and NumPy scalars --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int32", "uint8", "uint64", "bool"])
def test_python_scalars_are_weak(dtype):
    """NEP 50: a Python scalar argument takes the array's dtype (where it is of the same kind)."""
    x = np.arange(1, 7).astype(dtype).reshape(2, 3)
    check(lambda x, a, b, c: (x * a, x + b, x * c, a + b, b * c, np.maximum(x, b)), x, 3, 2.5, True)


@pytest.mark.parametrize("scalar", [np.float32(2.5), np.float64(-1.25), np.int8(3), np.int16(-7),
                                    np.uint8(200), np.uint64(2**63 + 1), np.int64(5), np.bool_(True)])
def test_numpy_scalars_are_strong(scalar):
    """NumPy scalars keep their dtype in promotion (unlike Python scalars)."""
    x8 = np.arange(6, dtype=np.int8)
    f32 = np.linspace(0, 1, 6, dtype=np.float32)
    check(lambda x, y, s: (x + s, y * s, s * 2, s), x8, f32, scalar)


def test_scalar_values_change_without_recompiling():
    f = lumen.jit(lambda x, a: x * a + 1)
    x = rand(4)
    for a in (2.0, -3.5, 0.0, 1e300):
        assert_same(f(x, a), x * a + 1)
    for a in (np.float32(2), np.float32(7)):
        assert_same(f(x, a), x * a + 1)
    assert f.cache_info()["compiles"] == 2          # float, then np.float32
    g = lumen.jit(lambda x, n: x[:2] * n)
    for n in (1, 5, -2**62):
        assert_same(g(np.arange(3), n), np.arange(3)[:2] * n)
    assert g.cache_info()["compiles"] == 1


def test_python_int_and_float_scalars_alone():
    check(lambda a, b: (a + b, a * 2, b / 2, np.sqrt(b), a // 3), 7, 2.5)
    check(lambda a, b: (a & b, a | True, np.logical_not(b)), True, False)


def test_zero_d_arrays_and_numpy_scalars_as_arrays():
    check(lambda a, b: (a + b, a * np.ones(3), np.float32(2) * b), np.array(2.0), np.float32(3.0))


# -- static and keyword arguments ----------------------------------------------------------------

def test_static_argnums():
    def fn(x, n, mode):
        out = x
        for _ in range(n):
            out = out * 2 if mode == "double" else out + 1
        return out.reshape(n, -1)
    f = lumen.jit(fn, static_argnums=(1, 2))
    x = rand(6)
    assert_same(f(x, 2, "double"), fn(x, 2, "double"))
    assert_same(f(x, 3, "inc"), fn(x, 3, "inc"))
    assert_same(f(x * 2, 2, "double"), fn(x * 2, 2, "double"))
    assert f.cache_info()["compiles"] == 2
    assert_same(f(x, 2, "inc"), fn(x, 2, "inc"))
    assert f.cache_info()["compiles"] == 3


def test_static_argnums_negative_and_static_argnames():
    def fn(x, axis, keepdims=False):
        return x.sum(axis=axis, keepdims=keepdims)
    x = rand(3, 4)
    f = lumen.jit(fn, static_argnums=-2, static_argnames="keepdims")
    assert_same(f(x, 1), fn(x, 1))
    assert_same(f(x, 0, keepdims=True), fn(x, 0, keepdims=True))
    assert_same(f(x, axis=(0, 1)), fn(x, (0, 1)))
    g = lumen.jit(fn, static_argnames=("axis", "keepdims"))
    assert_same(g(x, axis=1), fn(x, 1))
    assert_same(g(x, 0, True), fn(x, 0, True))
    assert_same(g(x, axis=None, keepdims=True), fn(x, None, True))


def test_static_arguments_must_be_hashable():
    f = lumen.jit(lambda x, shape: x.reshape(shape), static_argnums=1)
    assert_same(f(rand(6), (2, 3)), rand(6).reshape(2, 3))
    with pytest.raises(TypeError):
        f(rand(6), [2, 3])


def test_keyword_arguments_and_defaults():
    def fn(x, y=None, *, scale=2.0, offset=0):
        out = x * scale + offset
        return out if y is None else out + y
    f = lumen.jit(fn)
    x, y = rand(3), rand(3, seed=1)
    assert_same(f(x), fn(x))
    assert_same(f(x, y), fn(x, y))
    assert_same(f(x, y=y), fn(x, y=y))
    assert_same(f(x, scale=np.float32(3)), fn(x, scale=np.float32(3)))
    assert_same(f(y=y, x=x, offset=1), fn(y=y, x=x, offset=1))
    with pytest.raises(TypeError):
        f(x, bogus=1)
    with pytest.raises(TypeError):
        f()


def test_varargs():
    def fn(*xs, **kw):
        return sum(xs) * kw.get("k", 1)
    f = lumen.jit(fn)
    a, b, c = rand(2), rand(2, seed=1), rand(2, seed=2)
    assert_same(f(a, b), fn(a, b))
    assert_same(f(a, b, c, k=3.0), fn(a, b, c, k=3.0))


# -- shape-generic caching -----------------------------------------------------------------------

def test_no_recompile_for_new_batch_sizes():
    @lumen.jit
    def predict(x, w, b):
        return np.argmax(x @ w + b, axis=1)
    w, b = rand(8, 3, seed=1), rand(3, seed=2)
    for batch in (32, 64, 7, 1000):
        x = rand(batch, 8, seed=batch)
        assert_same(predict(x, w, b), np.argmax(x @ w + b, axis=1))
    info = predict.cache_info()
    assert info["compiles"] == 1
    assert info["memory_hits"] == 3


def test_recompiles_for_dtype_ndim_and_length_one_pattern():
    f = lumen.jit(lambda x: (x * 2).sum(axis=-1))
    calls = [
        (rand(32, 4), 1),                       # first
        (rand(64, 4), 1),                       # new sizes: no compile
        (rand(64, 4, dtype=np.float32), 2),     # new dtype
        (rand(64, 4, 2), 3),                    # new ndim
        (rand(1, 4), 4),                        # a length-1 axis: new broadcast pattern
        (rand(1, 9), 4),                        # same pattern
        (rand(5, 1), 5),                        # another pattern
        (rand(16, 4), 5),                       # back to a known one
        (np.arange(12).reshape(3, 4), 6),       # int64
    ]
    for x, compiles in calls:
        assert_same(f(x), (x * 2).sum(axis=-1))
        assert f.cache_info()["compiles"] == compiles, (x.shape, x.dtype)


def test_length_one_axes_broadcast_correctly():
    f = lumen.jit(lambda x, y: x + y)
    for xs, ys in [((3, 4), (3, 4)), ((1, 4), (3, 4)), ((3, 1), (1, 4)), ((3, 4), (4,)),
                   ((1,), (5,)), ((5, 4), (5, 4))]:
        x, y = rand(*xs), rand(*ys, seed=1)
        assert_same(f(x, y), x + y)
    with pytest.raises(ValueError):
        f(rand(3, 4), rand(2, 4))             # compiled for (?, ?) + (?, ?): checked at run time


def test_layouts_give_correct_results():
    f = lumen.jit(lambda x: x * 2 + x.sum(axis=0))
    base = rand(6, 8)
    for x in (base, base.T, base[::2], base[:, ::-1], np.asfortranarray(base), base[1:4, 2:7]):
        assert_same(f(x), x * 2 + x.sum(axis=0))
    assert f.cache_info()["compiles"] <= 2      # C-contiguous and strided


def test_byte_order_and_unaligned_inputs():
    f = lumen.jit(lambda x: x + 1)
    be = np.arange(5, dtype=">f8")
    assert_same(f(be), be.astype("<f8") + 1)
    raw = np.zeros(41, np.uint8)[1:].view(np.float64)   # unaligned
    assert_same(f(raw), raw + 1)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 50), m=st.integers(2, 9))
def test_hypothesis_one_compilation_for_all_sizes(n, m):
    x, w = rand(n, m, seed=n), rand(m, 3, seed=m)
    compare_tuple(_SIZES(x, w), ((x @ w).max(axis=0), np.tanh(x).mean(axis=1), x[::-1, :2]))
    assert _SIZES.cache_info()["compiles"] == 1


_SIZES = lumen.jit(lambda x, w: ((x @ w).max(axis=0), np.tanh(x).mean(axis=1), x[::-1, :2]))


def compare_tuple(got, expected):
    for g, e in zip(got, expected):
        assert_same(g, e)


def test_numpy_ufuncs_of_sizes_stay_symbolic():
    """``np.sqrt(x.shape[0])``: a traced scalar (NumPy gives a float), no specialisation."""
    f = lumen.jit(lambda x: x / np.sqrt(x.shape[0]) + np.maximum(x.shape[1], 2))
    for rows in (4, 9, 1):
        x = rand(rows, 3, seed=rows)
        assert_same(f(x), x / np.sqrt(rows) + 3)
    assert f.cache_info()["compiles"] <= 2          # a length-1 axis is its own signature


def test_concrete_sizes_specialise():
    """Code that needs a real int (range over a size) works; it is specialised on that size."""
    def fn(x):
        total = x[0]
        for i in range(1, x.shape[0]):
            total = total + x[i]
        return total
    f = lumen.jit(fn)
    for n in (3, 3, 5, 3, 5):
        x = rand(n, 2, seed=n)
        np.testing.assert_allclose(f(x), fn(x), rtol=1e-12)
    assert f.cache_info()["compiles"] == 2


# -- the call path: the native code checks its arguments ----------------------------------------

def test_each_signature_runs_its_own_code():
    """Calls without keywords try the compiled specialisations' native code, which refuses
    arguments of another signature: every dtype, ndim, layout, broadcast pattern and kind of
    scalar gets its own code, called in any order."""
    f = lumen.jit(lambda x, a: x * a)
    x32 = np.linspace(1, 2, 6, dtype=np.float32)
    xs = [x32, x32[::2], x32.reshape(2, 3), x32[:1], x32.astype(np.int16)]
    scalars = [2.0, 3, True, np.float64(2.5), np.array(2.5), np.float32(2), -7,
               np.int8(3), np.array([2.0])]
    for round in range(2):
        for x in xs:
            for a in scalars:
                with np.errstate(all="ignore"):
                    expected = x * a
                assert_same(f(x, a), expected)
        if round == 0:
            first = f.cache_info()
    # 3 and -7 share code, except with int16 (which depends on the int's range); so do
    # np.float64(2.5) and np.array(2.5)
    assert first["compiles"] == len(xs) * (len(scalars) - 2) + 1
    assert f.cache_info() == dict(first, memory_hits=first["memory_hits"] + len(xs) * len(scalars))


def test_equal_dtypes_of_other_type_numbers_share_code():
    f = lumen.jit(lambda x: x + 1)
    for dtype in (np.int64, np.longlong, np.uint64, np.ulonglong):
        x = np.arange(3, dtype=dtype)
        assert_same(f(x), x + 1)
        assert_same(f(x), x + 1)
    assert f.cache_info()["compiles"] == 2


def test_subclasses_and_wrong_arity_take_the_general_path():
    class Sub(np.ndarray):
        pass
    f = lumen.jit(lambda x, y=2.0: x * y)
    x = rand(3)
    assert_same(f(x), x * 2.0)
    assert_same(f(x.view(Sub)), x * 2.0)
    assert type(f(x.view(Sub))) is np.ndarray
    assert_same(f(x, 3.0), x * 3.0)
    assert_same(f(x), x * 2.0)
    assert f.cache_info()["compiles"] == 2


def test_out_of_range_int_after_compiled_ints():
    f = lumen.jit(lambda x, n: x * n)
    x = rand(3)
    assert_same(f(x, 5), x * 5)
    assert_same(f(x, 2**63 + 2), x * (2**63 + 2))
    for n in (2**64, -2**63 - 1):
        with pytest.raises(OverflowError):
            f(x, n)
    assert_same(f(x, -2), x * -2)
    assert f.cache_info()["compiles"] == 2


def test_compiled_function_called_inside_a_trace_is_inlined():
    inner = lumen.jit(lambda x: x * 2)
    x = rand(3)
    assert_same(inner(x), x * 2)
    outer = lumen.jit(lambda x: inner(x) + 1)
    assert_same(outer(x), x * 2 + 1)
    assert inner.cache_info()["compiles"] == 1


def test_captured_constants_on_repeated_calls():
    table = np.random.default_rng(1).standard_normal(5000)
    f = lumen.jit(lambda x: (x[:, None] * table).sum(axis=1))
    for seed in range(3):
        x = rand(3, seed=seed)
        assert_same(f(x), (x[:, None] * table).sum(axis=1))
    assert f.cache_info()["compiles"] == 1


def test_result_structures_on_repeated_calls():
    x = rand(4)
    for fn in (lambda x: [x, x * 2], lambda x: (x,), lambda x: (x, x + 1), lambda x: {"a": x},
               lambda x: (x, None), lambda x: ()):
        f = lumen.jit(fn)
        first, again = f(x), f(x)
        assert type(first) is type(again) is type(fn(x))
        assert f.cache_info()["memory_hits"] == 1


# -- introspection -------------------------------------------------------------------------------

def _model(x, w, b):
    h = np.tanh(x @ w + b)
    return h.sum(axis=1)


def test_lower_ir():
    f = lumen.jit(_model)
    x, w, b = rand(4, 3), rand(3, 5, seed=1), rand(5, seed=2)
    low = f.lower(x, w, b)
    ir = low.ir()
    assert isinstance(ir, str) and ir.startswith("func @_model(")
    header = ir.splitlines()[0]
    assert "%x: f64[?,?]" in header and "%b: f64[?]" in header and "->" in header
    body = [ln for ln in ir.splitlines()[1:] if ln.strip() and not ln.strip().startswith(("return", "guard"))]
    assert body, ir
    for line in body:
        assert re.search(r"# test_jit_api\.py:\d+$", line), line
    assert "matmul" in ir and "tanh" in ir
    assert ir.rstrip().splitlines()[-1].strip().startswith("return")


def test_lower_other_stages():
    f = lumen.jit(_model)
    args = (rand(4, 3), rand(3, 5, seed=1), rand(5, seed=2))
    low = f.lower(*args)
    opt = low.optimized_ir()
    assert isinstance(opt, str) and opt.startswith("func @_model(")
    llvm = low.llvm_ir()
    assert isinstance(llvm, str) and "define" in llvm and "lumen_entry" in llvm
    asm = low.asm()
    assert isinstance(asm, str) and asm.strip()
    assert "lumen_entry" in asm and re.search(r"\bret", asm)
    assert_same(f(*args), _model(*args))


def test_lower_shows_broadcast_pattern_and_dtypes():
    f = lumen.jit(lambda x, y: x * y)
    ir = f.lower(np.ones((1, 4), np.float32), np.ones((3, 1), np.int8)).ir()
    assert "f32[1,?]" in ir and "i8[?,1]" in ir
    assert "f32[?,?]" in ir


def test_lower_with_static_arguments_and_guards():
    def fn(x, n):
        out = x[0]
        for i in range(1, x.shape[0]):
            out = out + x[i] * n
        return out
    f = lumen.jit(fn, static_argnums=1)
    low = f.lower(rand(3, 2), 2.0)
    ir = low.ir()
    assert ir.startswith("func @fn(%x: f64[?,?])")
    assert any(line.strip().startswith("guard") and "== 3" in line for line in ir.splitlines())
    assert low.optimized_ir().startswith("func @fn(")
    assert "lumen_entry" in low.llvm_ir()


def test_cache_info_keys():
    f = lumen.jit(lambda x: x + 1)
    info = f.cache_info()
    assert {"compiles", "memory_hits", "disk_hits"} <= set(info)
    assert info["compiles"] == 0
    f(rand(2))
    f(rand(3))
    info = f.cache_info()
    assert info["compiles"] == 1 and info["memory_hits"] == 1


def test_tracing_error_for_python_control_flow():
    def fn(x):
        if x.sum() > 0:
            return x
        return -x
    with pytest.raises(lumen.TracingError, match=r"test_jit_api\.py:\d+"):
        lumen.jit(fn)(rand(3))


def test_garbage_collector_paused_while_compiling():
    """Tracing and compiling run with the cyclic collector paused (nested compiles too); it
    runs again afterwards, and stays off if the user had turned it off."""
    import gc
    seen = []

    @lumen.jit
    def inner(x):
        seen.append(("inner", gc.isenabled()))
        return x * 2

    @lumen.jit
    def outer(x):
        seen.append(("outer", gc.isenabled()))
        return inner(x) + 1

    assert gc.isenabled()
    np.testing.assert_array_equal(outer(np.arange(3.0)), np.arange(3.0) * 2 + 1)
    assert seen and all(not enabled for _, enabled in seen) and gc.isenabled()
    gc.disable()
    try:
        lumen.jit(lambda x: x - 1)(np.arange(3.0))
        assert not gc.isenabled()
    finally:
        gc.enable()
