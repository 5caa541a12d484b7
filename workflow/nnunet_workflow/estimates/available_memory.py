"""How much memory this process may still use: the host's MemAvailable, or less where the memory
cgroup it runs in (a container, a SLURM allocation, a systemd slice) or any cgroup above it is
limited. Works with cgroup v2 and v1, with and without a cgroup namespace.

A cgroup's headroom is its limit minus what it holds that the kernel cannot simply drop: its usage
less the file cache (pages of files read or written, still charged to a cgroup after the process
that read them ended), except file pages mapped by running processes (their libraries).
"""

from __future__ import annotations

import os
from pathlib import Path

MB = 1024 * 1024
# cgroup v1 writes "no limit" as a page-rounded LONG_MAX; treat anything this large as unlimited.
UNLIMITED = 1 << 60


def _read_int(path) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):  # absent, or "max" (no limit)
        return None


def _stat(path) -> dict[str, int]:
    try:
        with open(path) as handle:
            return {key: int(value) for key, value in (line.split() for line in handle if line.strip())}
    except (OSError, ValueError):
        return {}


def memory_cgroup_dirs(proc_self="/proc/self") -> list[tuple[int, Path]]:
    """(version, folder) of each memory cgroup this process is in, from its own folder up to the
    hierarchy's mount point: the limits of all of them apply."""
    proc_self = Path(proc_self)
    try:
        memberships = (proc_self / "cgroup").read_text().splitlines()
        mounts = (proc_self / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    paths = {}  # version -> the process's cgroup path in that hierarchy
    for line in memberships:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths.setdefault(2, path)
        elif "memory" in controllers.split(","):
            paths[1] = path
    found = []
    for line in mounts:
        fields = line.split()
        if "-" not in fields or fields.index("-") < 5 or len(fields) < fields.index("-") + 4:
            continue  # not a mountinfo line
        separator = fields.index("-")
        root, mount_point, fs_type, options = fields[3], fields[4], fields[separator + 1], fields[-1]
        version = {"cgroup2": 2, "cgroup": 1}.get(fs_type)
        if version is None or version not in paths or (version == 1 and "memory" not in options.split(",")):
            continue
        path = paths[version]
        relative = path[len(root):] if path.startswith(root) else path  # a mount of a sub-tree
        folder = Path(mount_point) / relative.lstrip("/")
        while True:
            found.append((version, folder))
            if folder == Path(mount_point) or folder.parent == folder:
                break
            folder = folder.parent
    return found


def cgroup_limit_and_held_bytes(version: int, folder: Path) -> tuple[int | None, int | None]:
    """A memory cgroup's limit (None: unlimited) and what it holds that the kernel cannot simply drop
    (None: unreadable)."""
    stat = _stat(folder / "memory.stat")
    if version == 2:
        limit, usage = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
        cache = stat.get("active_file", 0) + stat.get("inactive_file", 0) - stat.get("file_mapped", 0)
    else:
        limit, usage = _read_int(folder / "memory.limit_in_bytes"), _read_int(folder / "memory.usage_in_bytes")
        cache = stat.get("total_active_file", 0) + stat.get("total_inactive_file", 0) - stat.get("total_mapped_file", 0)
    held = None if usage is None else max(usage - max(cache, 0), 0)
    return (None if limit is None or limit >= UNLIMITED else limit), held


def cgroup_headroom_bytes(version: int, folder: Path) -> int | None:
    """Limit of one memory cgroup minus what it holds that cannot be dropped, or None where it has
    no limit."""
    limit, held = cgroup_limit_and_held_bytes(version, folder)
    if limit is None or held is None:
        return None
    return max(limit - held, 0)


def host_available_bytes(meminfo="/proc/meminfo") -> int | None:
    try:
        with open(meminfo) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory_mb(proc_self="/proc/self", meminfo="/proc/meminfo") -> int:
    """Memory free for this run now (MB): the least of the host's and of every limited memory cgroup
    this process is in."""
    candidates = [host_available_bytes(meminfo)]
    candidates += [cgroup_headroom_bytes(version, folder) for version, folder in memory_cgroup_dirs(proc_self)]
    known = [c for c in candidates if c is not None]
    return min(known) // MB if known else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB
