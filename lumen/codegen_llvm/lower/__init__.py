"""Lowering functions keyed by primitive: ``LOWER[op](ctx, node, input_arrays) -> output arrays``."""
from __future__ import annotations

from . import control, creation, cumulative, indexing, kernel_matvec, linalg, movement
from .kernel import lower_kernel, lower_kernel_map_reduce

LOWER = {"kernel": lower_kernel, "kernel_map_reduce": lower_kernel_map_reduce}
for _family in (movement, indexing, linalg, creation, cumulative, control, kernel_matvec):
    LOWER.update(_family.LOWER)
