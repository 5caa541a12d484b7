"""Readings and housekeeping of a process's memory on Linux: peak and current resident memory from
/proc, restarting the peak count, and handing freed heap back to the OS."""

from __future__ import annotations


def _status_mb(pid, name: str) -> float | None:
    """A memory field of /proc/PID/status (VmHWM, VmRSS) in MB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def peak_rss_mb(pid="self") -> float | None:
    """Peak resident memory (VmHWM) of a process in MB, or None if it is gone."""
    return _status_mb(pid, "VmHWM")


def resident_mb(pid="self") -> float | None:
    """Resident memory (VmRSS) of a process in MB now, or None if it is gone."""
    return _status_mb(pid, "VmRSS")


def reset_peak_rss() -> None:
    """Restart the VmHWM count of this process (Linux >= 4.0), so each task gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def release_freed_memory() -> None:
    """Give memory freed by the last task back to the OS (glibc keeps freed heap chunks otherwise), so
    the next task in a persistent worker starts from the worker's base. (No gc.collect(): it takes
    0.1 s in a process holding torch, and arrays are freed as soon as the task drops them.)"""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
