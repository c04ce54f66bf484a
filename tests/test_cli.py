"""``python -m lumen``: precompile into the disk cache, then cache info / verify / clear."""
import os
import subprocess
import sys
import textwrap

from lumen.runtime import disk_cache

from .test_disk_cache import program_entries, runtime_at_link

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODULE = textwrap.dedent("""
    import numpy as np
    import lumen

    @lumen.jit
    def predict(x, w, b):
        return np.argmax(x @ w + b, axis=1)

    plain = len
""")


def lumen_cli(tmp_path, *args):
    env = dict(os.environ, LUMEN_CACHE="1", LUMEN_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]))
    return subprocess.run([sys.executable, "-m", "lumen", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_precompile_then_info_verify_clear(tmp_path):
    (tmp_path / "model.py").write_text(MODULE)
    out = lumen_cli(tmp_path, "precompile", "model:predict",
                    "--args", "f32[?,784]", "f32[784,10]", "f32[10]")
    assert out.returncode == 0, out.stderr
    assert "compiled" in out.stdout
    again = lumen_cli(tmp_path, "precompile", "model:predict",
                      "--args", "f32[?,784]", "f32[784,10]", "f32[10]")
    assert "found in the disk cache" in again.stdout

    run = subprocess.run(
        [sys.executable, "-c", "import numpy as np, model\n"
         "x = np.ones((32, 784), np.float32); w = np.ones((784, 10), np.float32)\n"
         "print(model.predict(x, w, np.zeros(10, np.float32)).shape, "
         "model.predict.cache_info()['disk_hits'])"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, LUMEN_CACHE="1", LUMEN_CACHE_DIR=str(tmp_path / "cache"),
                 PYTHONPATH=ROOT))
    assert run.stdout.split() == ["(32,)", "1"], run.stderr

    info = lumen_cli(tmp_path, "cache", "info")
    entries = 2 + len(runtime_at_link())      # predict, the float32 small products
    assert str(tmp_path / "cache") in info.stdout and f"entries: {entries}" in info.stdout
    assert "predict" in info.stdout and "lumen runtime: result pool" in info.stdout
    assert "lumen runtime: small matrix products (float32)" in info.stdout

    assert lumen_cli(tmp_path, "cache", "verify").returncode == 0
    (key,) = program_entries(tmp_path / "cache")
    obj = tmp_path / "cache" / (key + ".o")
    data = bytearray(obj.read_bytes())
    data[100] ^= 1
    obj.write_bytes(bytes(data))
    verify = lumen_cli(tmp_path, "cache", "verify")
    assert verify.returncode == 1 and "checksum" in verify.stdout and "1 bad" in verify.stdout

    lumen_cli(tmp_path, "precompile", "model:predict", "--args", "f64[?,3]", "f64[3,2]", "f64[2]")
    # the two programs, the float32 small products (the run above linked them) and the
    # runtime linked first
    removed = f"removed {3 + len(runtime_at_link())} entries"
    assert removed in lumen_cli(tmp_path, "cache", "clear").stdout
    assert disk_cache.entries(str(tmp_path / "cache")) == {}


def test_precompile_reports_bad_input(tmp_path):
    (tmp_path / "model.py").write_text(MODULE)
    bad_spec = lumen_cli(tmp_path, "precompile", "model:predict", "--args", "float[3]")
    assert bad_spec.returncode == 2 and "bad argument spec" in bad_spec.stderr
    not_jitted = lumen_cli(tmp_path, "precompile", "model:plain", "--args", "f32[3]")
    assert not_jitted.returncode == 2 and "not a lumen.jit function" in not_jitted.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """``python -m lumen cache info | head``: no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "lumen", "cache", "info"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, LUMEN_CACHE="1",
                                     LUMEN_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT))
    proc.stdout.close()                  # long before the command has imported lumen
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
