"""Cached artefacts built on first use, safe when many threads or processes ask at once.

Pods of one Deployment start together, and each node thread may be the first to need an artefact
(the pod network shim, a hosts file). Every build goes to a temporary name unique to that build
(never one derived from the process id: threads share it) and is renamed into place, so a reader
sees either nothing or the whole file; `build_once` also holds a per-path lock (a threading lock for
this process, an fcntl lock for other processes) so the work is done once.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def unique_tmp(out: Path) -> Path:
    """A fresh, empty file next to out, to write a new version of out into."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    return Path(name)


def write_atomic(path: Path, content: str, mode: int = 0o644) -> None:
    """Replace path's content in one step; concurrent writers never see each other's halves.

    ``mode`` is set explicitly: mkstemp makes 0600 files, and containers read these as other users."""
    tmp = unique_tmp(path)
    try:
        tmp.write_text(content)
        os.chmod(tmp, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def build_once(out: Path, build: Callable[[Path], None], mode: int = 0o755) -> Path:
    """Return out, calling build(tmp) to make it first if it does not exist; one build at a time.

    The result gets ``mode`` (mkstemp's 0600 would hide it from a container's non-root user)."""
    if out.exists():
        _ensure_mode(out, mode)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(out), open(out.parent / f".{out.name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if out.exists():  # built by another thread or process while we waited
            _ensure_mode(out, mode)
            return out
        tmp = unique_tmp(out)
        try:
            build(tmp)
            os.chmod(tmp, mode)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def _ensure_mode(path: Path, mode: int) -> None:
    """A cache entry left with fewer permissions (e.g. by an older harness that kept mkstemp's 0600)."""
    if path.stat().st_mode & mode != mode:
        os.chmod(path, path.stat().st_mode | mode)
