"""examples/digits_cnn.py, shortened: the conv + max-pool network trains to >= 95% test
accuracy on the held-out 8x8 digits, with one compiled training step."""
import importlib.util
import pathlib
import sys

import pytest

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "digits_cnn.py"
sys.path.insert(0, str(EXAMPLE.parent))         # the example imports examples/digits.py


def _load():
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_cnn_reaches_95_percent():
    cnn = _load()
    accuracy, rate, epoch_s = cnn.train(epochs=30, verbose=False)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.4f} after 30 epochs"
    assert rate > 0 and epoch_s > 0
    assert cnn.sgd_step.cache_info()["compiles"] == 1
