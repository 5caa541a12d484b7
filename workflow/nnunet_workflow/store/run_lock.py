"""One run at a time per results folder, with stale locks (left by a killed run) taken over.

Snakemake's own lock survives a SIGKILL and then refuses every later run until `--unlock`; the
workflow turns it off (`nolock` in the profile) and keeps this lock instead, which knows whether
the run holding it is still alive.
"""

from __future__ import annotations

import os
import socket

from .records import read_json, write_json


class RunLockError(RuntimeError):
    """Another live run holds the results folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(lock_path) -> None:
    """Take the lock for this process, unless a live run on this host (or any run elsewhere) holds it."""
    try:
        holder = read_json(lock_path)
    except (FileNotFoundError, ValueError):
        holder = None
    here = socket.gethostname()
    if holder and holder.get("pid") != os.getpid():
        if holder.get("host") != here:
            raise RunLockError(
                f"{lock_path} says a run on host {holder.get('host')} (pid {holder.get('pid')}) is using this results "
                "folder; if no such run is active, delete that file and run again"
            )
        if _alive(holder["pid"]):
            raise RunLockError(f"another run (pid {holder['pid']}) is using this results folder ({lock_path})")
    write_json(lock_path, {"host": here, "pid": os.getpid()})


def release(lock_path) -> None:
    """Drop the lock if this process holds it."""
    try:
        if read_json(lock_path).get("pid") == os.getpid():
            os.remove(lock_path)
    except (FileNotFoundError, ValueError):
        pass
