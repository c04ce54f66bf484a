"""Nested tuples, lists and dicts of arrays ("pytrees"): flattened to leaves and rebuilt."""
from __future__ import annotations

LEAF = ("leaf",)
NONE = ("none",)


_CONTAINERS = (tuple, list, dict, type(None))


def flatten(obj, leaves=None):
    """-> (leaves, treedef); ``treedef`` is hashable and rebuilds the structure."""
    if leaves is None:
        leaves = []
        return leaves, flatten(obj, leaves)
    if obj is None:
        return NONE
    if type(obj) is tuple or type(obj) is list:
        if not any(type(o) in _CONTAINERS for o in obj):      # the common case: all leaves
            leaves.extend(obj)
            return (type(obj).__name__, (LEAF,) * len(obj))
        return (type(obj).__name__, tuple(flatten(o, leaves) for o in obj))
    if type(obj) is dict:
        keys = tuple(sorted(obj))
        return ("dict", keys, tuple(flatten(obj[k], leaves) for k in keys))
    leaves.append(obj)
    return LEAF


def unflatten(treedef, leaves):
    it = iter(leaves)
    out = _build(treedef, it)
    return out


def _build(td, it):
    kind = td[0]
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    if kind == "dict":
        return {k: _build(c, it) for k, c in zip(td[1], td[2])}
    children = [_build(c, it) for c in td[1]]
    return tuple(children) if kind == "tuple" else children


def leaf_paths(treedef, prefix=""):
    """Readable names of the leaves, in order (``x``, ``params['w']``, ``xs[0]``)."""
    kind = treedef[0]
    if kind == "leaf":
        return [prefix]
    if kind == "none":
        return []
    if kind == "dict":
        out = []
        for k, c in zip(treedef[1], treedef[2]):
            out += leaf_paths(c, f"{prefix}[{k!r}]")
        return out
    out = []
    for i, c in enumerate(treedef[1]):
        out += leaf_paths(c, f"{prefix}[{i}]")
    return out
