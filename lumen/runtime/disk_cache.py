"""The on-disk kernel cache (SPEC §6): object code plus JSON metadata, found by a content key.

An entry is two files in one flat directory: ``KEY.o``, the object code (the objects of the
program's parts, one after another), and ``KEY.json``, its metadata — the objects' sizes, the
file's sha256, the versions that built it, and a checksum of the metadata itself. Nothing read
back is unpickled or evaluated: the objects only go to the linker, the metadata only to
``json``, and both are checked before use; a bad entry is reported (`CacheWarning`), removed
and rebuilt by the caller.

Each file is written to a temporary file in the same directory and ``os.replace``d into place,
the metadata last: it commits the entry, so no reader ever sees a partial one, and processes
writing the same key at once each leave a complete entry (code generation is deterministic, so
the copies agree). The directory is created with mode 0700; one writable by group or others
is not used (anyone who can write there could plant code). A directory that cannot be created
or written leaves lumen caching in memory only. ``LUMEN_CACHE_MAX_MB`` (default 1024) caps
the size; the least recently used entries (a hit touches the metadata's mtime) go first.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import threading
import time
import warnings

from ..errors import CacheWarning

FORMAT = 2
_TMP_PREFIX = ".tmp-"

_lock = threading.Lock()
_state: dict = {}        # directory -> "ok" | "read-only" | "off", decided once per process
_warned: set = set()


class CorruptEntry(Exception):
    """An entry failed its checks (the message says which)."""


def location() -> str:
    """``LUMEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/lumen``, else ``~/.cache/lumen``."""
    path = os.environ.get("LUMEN_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "lumen")
    return os.path.abspath(os.path.expanduser(path))


def enabled() -> bool:
    """``LUMEN_CACHE=0`` turns the disk cache off."""
    return os.environ.get("LUMEN_CACHE", "1").strip() != "0"


def max_bytes() -> int:
    text = os.environ.get("LUMEN_CACHE_MAX_MB", "1024")
    try:
        return int(float(text) * 2**20)
    except ValueError:
        _warn_once(("max", text), f"LUMEN_CACHE_MAX_MB={text!r} is not a number; using 1024")
        return 1024 * 2**20


# -- the directory ------------------------------------------------------------------------------

def _warn_once(tag, message):
    with _lock:
        if tag in _warned:
            return
        _warned.add(tag)
    warnings.warn(message, CacheWarning, stacklevel=4)


def _directory(writing=False):
    """The cache directory if it may be used (for writing, if ``writing``), else None."""
    if not enabled():
        return None
    path = location()
    state = _state.get(path)
    if state is None:
        state = _state.setdefault(path, _check_directory(path))
    if state == "off" or (writing and state == "read-only"):
        return None
    return path


def _check_directory(path) -> str:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        mode = os.stat(path).st_mode
    except OSError as e:
        _warn_once(("dir", path), f"lumen cannot use its cache directory {path} "
                   f"({e.strerror or e}); compiled code is cached in memory only")
        return "off"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        _warn_once(("dir", path), f"lumen cache directory {path} is writable by group or others, "
                   "so its entries are not loaded (chmod 700 it or set LUMEN_CACHE_DIR); "
                   "compiled code is cached in memory only")
        return "off"
    return "ok"


def _paths(path, key):
    return os.path.join(path, key + ".o"), os.path.join(path, key + ".json")


# -- entries ------------------------------------------------------------------------------------

def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _checksum(meta: dict) -> str:
    rest = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(_canonical(rest)).hexdigest()


def check_entry(path, key) -> tuple[dict, list[bytes]]:
    """-> (metadata, the objects) of the entry ``key``; `CorruptEntry` if any check fails,
    ``FileNotFoundError`` if it is not there."""
    obj_path, meta_path = _paths(path, key)
    with open(meta_path, "rb") as f:
        raw = f.read()
    try:
        meta = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptEntry("metadata is not valid JSON (truncated?)") from None
    if not isinstance(meta, dict) or _canonical(meta) != raw or \
            meta.get("checksum") != _checksum(meta):
        raise CorruptEntry("metadata checksum mismatch")
    if meta.get("format") != FORMAT or meta.get("key") != key:
        raise CorruptEntry("metadata is for another entry or format")
    try:
        with open(obj_path, "rb") as f:
            obj = f.read()
    except FileNotFoundError:
        raise CorruptEntry("object file missing") from None
    if len(obj) != meta.get("object_size"):
        raise CorruptEntry(f"object file has {len(obj)} bytes, expected {meta.get('object_size')}")
    if hashlib.sha256(obj).hexdigest() != meta.get("object_sha256"):
        raise CorruptEntry("object file checksum mismatch")
    sizes = meta.get("object_sizes")
    if not isinstance(sizes, list) or not sizes or sum(sizes) != len(obj) or \
            not all(isinstance(n, int) and n > 0 for n in sizes):
        raise CorruptEntry("object sizes do not add up to the object file")
    ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
    return meta, [obj[end - n:end] for n, end in zip(sizes, ends)]


def _remove(path, key):
    obj_path, meta_path = _paths(path, key)
    for p in (meta_path, obj_path):        # the metadata first: it is what makes an entry
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


def load(key: str) -> list[bytes] | None:
    """The objects cached under ``key``, or None (no entry, cache off, or a corrupt entry,
    which is reported and removed)."""
    path = _directory()
    if path is None:
        return None
    try:
        meta, obj = check_entry(path, key)
    except FileNotFoundError:
        return None
    except CorruptEntry as e:
        if not os.path.exists(_paths(path, key)[1]):
            return None                    # evicted by another process while being read
        warnings.warn(f"lumen disk cache entry {key[:16]}... in {path} is corrupt ({e}); "
                      "removed, compiling again", CacheWarning, stacklevel=3)
        _remove(path, key)
        return None
    except OSError as e:
        _warn_once(("read", path), f"lumen cannot read its cache directory {path} "
                   f"({e.strerror or e}); compiling instead")
        return None
    try:
        os.utime(_paths(path, key)[1])     # most recently used
    except OSError:
        pass
    return obj


def store(key: str, objects: list[bytes], **info) -> None:
    """Save ``objects`` under ``key``, with ``info`` (JSON values) in its metadata."""
    path = _directory(writing=True)
    if path is None:
        return
    object_code = b"".join(objects)
    meta = dict(info, format=FORMAT, key=key, object_size=len(object_code),
                object_sizes=[len(o) for o in objects],
                object_sha256=hashlib.sha256(object_code).hexdigest(), created=time.time())
    meta["checksum"] = _checksum(meta)
    obj_path, meta_path = _paths(path, key)
    try:
        _write_atomically(obj_path, object_code)
        _write_atomically(meta_path, _canonical(meta))
    except OSError as e:
        _state[path] = "read-only"
        _warn_once(("write", path), f"lumen cannot write to its cache directory {path} "
                   f"({e.strerror or e}); new code is cached in memory only")
        return
    evict(path, keep=key)


def _write_atomically(target, data: bytes):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=_TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


# -- the whole cache (eviction and the CLI) -----------------------------------------------------

def entries(path) -> dict:
    """key -> (bytes on disk, last use) for every entry, complete or not, in ``path``; the last
    use is the metadata's mtime (the object's when there is no metadata)."""
    sizes, mtimes = {}, {}
    try:
        listing = list(os.scandir(path))
    except FileNotFoundError:
        return {}
    for e in listing:
        key, ext = os.path.splitext(e.name)
        if ext in (".o", ".json") and len(key) == 64:
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            sizes[key] = sizes.get(key, 0) + st.st_size
            mtimes[key, ext] = st.st_mtime
    return {key: (size, mtimes.get((key, ".json"), mtimes.get((key, ".o"), 0.0)))
            for key, size in sizes.items()}


def evict(path, keep=None):
    """Remove least recently used entries until the cache fits ``LUMEN_CACHE_MAX_MB``."""
    limit = max_bytes()
    found = entries(path)
    total = sum(size for size, _ in found.values())
    for key, (size, _) in sorted(found.items(), key=lambda kv: kv[1][1]):
        if total <= limit:
            break
        if key != keep:
            _remove(path, key)
            total -= size


def verify(path) -> dict:
    """Check every entry's checksums; remove the bad ones. -> key -> problem (None if good)."""
    report = {}
    for key in entries(path):
        try:
            check_entry(path, key)
            report[key] = None
        except FileNotFoundError:
            report[key] = "metadata missing (incomplete entry)"
        except CorruptEntry as e:
            report[key] = str(e)
        if report[key] is not None:
            _remove(path, key)
    return report


def clear(path) -> int:
    """Remove every entry and leftover temporary file; -> the number of entries removed."""
    found = entries(path)
    for key in found:
        _remove(path, key)
    for e in os.scandir(path) if os.path.isdir(path) else ():
        if e.name.startswith(_TMP_PREFIX):
            try:
                os.remove(e.path)
            except FileNotFoundError:
                pass
    return len(found)
