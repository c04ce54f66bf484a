"""``python -m lumen``: look after the disk cache and fill it ahead of time.

    python -m lumen cache info | clear | verify
    python -m lumen precompile MODULE:FUNCTION --args "f32[?,784]" "f32[784,500]" ...

``verify`` re-checks every entry's checksums and removes the bad ones (exit status 1 if there
were any). ``precompile`` imports MODULE, takes the `lumen.jit` function FUNCTION from it and
compiles it for the given argument types (see `lumen.ShapeDtype.parse` for the grammar) into the
disk cache, so that the processes that later run it start warm.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import time

from . import disk_cache


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lumen", description="Look after lumen's disk "
                                     "cache of compiled code, and fill it ahead of time.")
    commands = parser.add_subparsers(dest="command", required=True)
    cache = commands.add_parser("cache", help="the disk cache of compiled code")
    cache.add_argument("action", choices=("info", "clear", "verify"))
    pre = commands.add_parser("precompile", help="compile a lumen.jit function into the disk cache")
    pre.add_argument("target", metavar="MODULE:FUNCTION")
    pre.add_argument("--args", nargs="*", default=[], metavar="SPEC",
                     help="one type per argument: a dtype (f32 f64 i8..i64 u8..u64 bool) and "
                          "its sizes, ? for any size other than 1, e.g. f32[?,784]")
    args = parser.parse_args(argv)
    if args.command == "cache":
        return {"info": _info, "clear": _clear, "verify": _verify}[args.action]()
    return _precompile(parser, args.target, args.args)


def _status() -> str:
    return "on" if disk_cache.enabled() else "off (LUMEN_CACHE=0)"


def _info() -> int:
    path = disk_cache.location()
    found = disk_cache.entries(path)
    total = sum(size for size, _ in found.values())
    print(f"lumen disk cache: {path}\n  status: {_status()}\n  entries: {len(found)}, "
          f"{total / 2**20:.2f} MB of {disk_cache.max_bytes() / 2**20:.0f} MB (LUMEN_CACHE_MAX_MB)")
    for key, (size, used) in sorted(found.items(), key=lambda kv: -kv[1][1]):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(used))
        print(f"  {key[:16]}  {size / 1024:8.1f} KB  last used {stamp}  {_name(path, key)}")
    return 0


def _name(path, key) -> str:
    """The function name in an entry's metadata (unchecked: for display only)."""
    try:
        with open(os.path.join(path, key + ".json"), "rb") as f:
            return str(json.loads(f.read().decode("ascii")).get("name", "?"))
    except (OSError, ValueError, AttributeError):
        return "(no readable metadata)"


def _clear() -> int:
    path = disk_cache.location()
    print(f"removed {disk_cache.clear(path)} entries from {path}")
    return 0


def _verify() -> int:
    path = disk_cache.location()
    report = disk_cache.verify(path)
    bad = {key: problem for key, problem in report.items() if problem}
    for key, problem in sorted(bad.items()):
        print(f"  {key[:16]}: {problem} (removed)")
    print(f"{len(report)} entries checked in {path}: {len(report) - len(bad)} good, {len(bad)} bad")
    return 1 if bad else 0


def _precompile(parser, target, specs) -> int:
    import lumen
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        parser.error(f"expected MODULE:FUNCTION, got {target!r}")
    try:
        types = [lumen.ShapeDtype.parse(s) for s in specs]
    except ValueError as e:
        parser.error(str(e))
    fn = importlib.import_module(module_name)
    for name in attribute.split("."):
        fn = getattr(fn, name)
    if not callable(getattr(fn, "precompile", None)):
        parser.error(f"{target} is not a lumen.jit function")
    before = fn.cache_info()
    start = time.perf_counter()
    fn.precompile(*types)
    after = fn.cache_info()
    what = ("compiled" if after["compiles"] > before["compiles"] else
            "found in the disk cache" if after["disk_hits"] > before["disk_hits"] else
            "already compiled")
    print(f"{target}({', '.join(specs)}): {what} in {time.perf_counter() - start:.2f} s; "
          f"disk cache {disk_cache.location()}: {_status()}")
    return 0
