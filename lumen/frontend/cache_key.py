"""The disk cache key of a traced graph: everything that decides its compiled code, hashed.

The key is taken from the graph as traced, before the passes and code generation run (about
ninety percent of a cold compile), so that a process whose code is cached pays only for tracing
and loading. It is therefore made of what determines the optimised program and its machine code:

- the graph's exact fingerprint (`lumen.ir.fingerprint`: every constant's bytes, not the
  printed IR, which abbreviates them);
- the options that change the code (``fastmath``, ``parallel``, ``donate_argnums``, and
  ``profile``, `lumen.profile`'s timing counters) and the rewrite rules switched off by
  ``LUMEN_DISABLE_REWRITES``;
- lumen's own version: a sha256 of its source, which covers the rewrite pipeline and the code
  generator, so any change to either invalidates old entries without a version to bump;
- the target: triple, CPU name and features, llvmlite and LLVM versions.

Anything else the passes or the code generator come to depend on (an environment variable, say)
must join the key here, or a process would load code compiled under other settings.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os

from ..codegen_llvm.target import identity
from ..ir.fingerprint import Unfingerprintable, fingerprint
from ..passes.rewrite import disabled_rules

_CODE_OPTIONS = ("fastmath", "parallel", "donate_argnums", "profile")


@functools.cache
def lumen_build() -> str:
    """sha256 over the path and text of every source file of the lumen package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:     # the relative path; relpath() costs ~0.3 ms here
                    h.update(path[len(root) + 1:].encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def cache_key(graph, options) -> str | None:
    """Hex sha256 key for ``graph`` compiled with ``options``; None when the graph holds
    something the fingerprint cannot encode exactly (it is then not cached on disk)."""
    try:
        graph_digest = fingerprint(graph)
    except Unfingerprintable:
        return None
    parts = {"graph": graph_digest, "lumen": lumen_build(), "target": identity(),
             "options": {k: options.get(k) for k in _CODE_OPTIONS},
             "disabled_rules": sorted(disabled_rules())}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
