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

from ..codegen_llvm.target import code_key
from ..ir.fingerprint import Unfingerprintable, fingerprint
from ..passes.rewrite import disabled_rules

_CODE_OPTIONS = ("fastmath", "parallel", "donate_argnums", "profile")


def cache_key(graph, options) -> str | None:
    """Hex sha256 key for ``graph`` compiled with ``options``; None when the graph holds
    something the fingerprint cannot encode exactly (it is then not cached on disk)."""
    try:
        graph_digest = fingerprint(graph)
    except Unfingerprintable:
        return None
    return code_key({"graph": graph_digest,
                     "options": {k: options.get(k) for k in _CODE_OPTIONS},
                     "disabled_rules": sorted(disabled_rules())})
