"""W8: one epoch of minibatch SGD of the digits MLP — the training loop of examples/digits_mlp.py:
64 -> 500 tanh -> 10 (the MLP of "Theano: new features and speed improvements" on scikit-learn's
8x8 digits), minibatches of 10, mean softmax cross-entropy, SGD.

One call = one epoch: a Python loop over the minibatches that calls each implementation's compiled
training step, as the example does — the steps are W3's (bench/workloads/mlp.py): NumPy's
hand-written backward pass (the reference), lumen.jit of lumen.value_and_grad, jax.jit of
jax.value_and_grad, pytensor.function of pytensor.grad, numba's njit backward pass, eager torch
autograd. Inputs ``(xb, yb, W1, b1, W2, b2)``: xb float32[143, 10, 64] (pixels in [0, 1)),
yb int64[143, 10]; result ``(loss of the last minibatch, W1', b1', W2', b2')``, checked against
NumPy's. 143 minibatches = 1430 of the example's 1438 training images: its last, shorter
minibatch of 8 is left out so that the inputs are one array. Throughput: examples/s = 1430 / time.

The pixels and labels are random rather than the digits themselves (the time does not depend on
the values, and the benchmark then needs no scikit-learn); the learning rate is W3's 0.01 (the
example's is 0.1). Over 143 steps float32 rounding differences between implementations grow a
little, so the check is 10 times looser than W3's; the largest change of every parameter over the
epoch is still far above the tolerance.
"""
import functools

import numpy as np

from ..harness import Workload
from . import mlp

SHAPE = (143, 10, 64, 500, 10)          # minibatches, minibatch size, inputs, hidden units, classes
QUICK_SHAPE = (8, 10, 16, 32, 10)


def make_inputs(shape, dtype, rng):
    n_batches, batch, *sizes = shape
    _, _, *params = mlp.make_inputs((batch, *sizes), dtype, rng)
    xb = rng.random((n_batches, batch, sizes[0])).astype(dtype)
    yb = rng.integers(0, sizes[-1], (n_batches, batch))
    return (xb, yb, *params)


def epoch(step, xb, yb, *params):
    """SGD over the minibatches in order: ``step(x, y, *params) -> (loss, *new params)``."""
    for x, y in zip(xb, yb):
        loss, *params = step(x, y, *params)
    return (loss, *params)


def _one_step(build):
    """W3's builder, given the inputs of one step (minibatch 0) instead of the epoch's."""
    return lambda inputs: build((inputs[0][0], inputs[1][0], *inputs[2:]))


class DigitsWorkload(Workload):
    def describe(self, quick: bool) -> str:
        n_batches, batch, n_in, hidden, n_out = self.quick_shape if quick else self.shape
        return (f"one SGD epoch of the digits MLP {n_in} -> {hidden} tanh -> {n_out}: {n_batches} "
                f"minibatches of {batch}, {np.dtype(self.dtype).name}, a Python loop calling the "
                f"compiled step (W3's); examples/s = {n_batches * batch} / time")


WORKLOADS = [
    DigitsWorkload(
        name="W8.digits-mlp", family="digits",
        expr="for x, y in minibatches: loss, *params = step(x, y, *params)",
        dtype=mlp.DTYPE, shape=SHAPE, quick_shape=QUICK_SHAPE, n_inputs=6,
        reference=functools.partial(epoch, mlp.numpy_step), make_inputs=make_inputs,
        loop=epoch, rtol=1e-3, atol=1e-5, notes=mlp.NOTES,
        impls={"numpy": lambda inputs: mlp.numpy_step, "lumen": mlp._lumen,
               **{name: _one_step(build) for name, build in
                  (("numba", mlp._numba), ("jax", mlp._jax), ("pytensor", mlp._pytensor),
                   ("torch", mlp._torch))}}),
]
