"""One run at a time per results folder: a kernel file lock held for the run's life.

The run's main process opens `work/run.lock` and holds an exclusive `flock` on it until the run ends;
the kernel drops it when the process dies, however it dies, so a killed run's lock needs no taking over
and no `--unlock`. Taking the lock is one atomic step: of N runs started together exactly one gets it,
the others are refused at once with the holder the file names (host, pid, start). Snakemake's own lock
is turned off (`nolock` in the profile) because it survives a SIGKILL and then refuses every later run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class RunLockError(RuntimeError):
    """Another live run holds the results folder."""


# lock path -> the open file descriptor whose flock this process holds
_HELD: dict[str, int] = {}


def _holder(fd: int) -> dict:
    """What the lock file says about its holder ({} when empty or unreadable: a holder still writing it)."""
    try:
        content = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another run"
    started = f", started {holder['started']}" if holder.get("started") else ""
    return f"another run (pid {holder['pid']} on host {holder.get('host', '?')}{started})"


def _open_locked(path: str) -> int:
    """An fd of the file now at `path`, exclusively flocked by this process; RunLockError if another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            for _ in range(40):  # a holder that has just taken the lock writes who it is within moments
                if holder:
                    break
                time.sleep(0.05)
                holder = _holder(fd)
            os.close(fd)
            raise RunLockError(f"{_describe(holder)} is using this results folder ({path}); wait for it to "
                               "finish, or stop it, then run again") from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        # the holder released (removed) the file between our open and our flock: lock the one at the path now
        os.close(fd)


def acquire(lock_path) -> None:
    """Take the results folder's lock for this process's life (again: nothing to do), or raise RunLockError
    naming the run that holds it. A file naming another host whose lock is not held is refused too: that
    host's run may be alive on a filesystem whose locks it does not share."""
    path = str(lock_path)
    if path in _HELD:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path)
    previous, here = _holder(fd), socket.gethostname()
    if previous.get("host") not in (None, here):
        os.close(fd)
        raise RunLockError(
            f"{path} says a run on host {previous.get('host')} (pid {previous.get('pid')}) is using this results "
            "folder; if no such run is active, delete that file and run again"
        )
    content = json.dumps({"host": here, "pid": os.getpid(),
                          "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, content, 0)
    os.fsync(fd)
    _HELD[path] = fd


def release(lock_path) -> None:
    """Drop the lock if this process holds it: the file is removed while still locked, then closed."""
    fd = _HELD.pop(str(lock_path), None)
    if fd is None:
        return
    try:
        os.remove(lock_path)
    except FileNotFoundError:
        pass
    os.close(fd)
