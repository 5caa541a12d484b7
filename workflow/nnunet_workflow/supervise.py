"""Supervised workers: stage work runs in a child process whose death, timeout or error becomes a record.

The parent never imports nnU-Net or torch; it watches the child's peak memory and exit status, so an
out-of-memory kill of one case is reported for that case instead of ending the job (nnU-Net's
"Background workers died").
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from .records import DONE, FAILED

POLL_SECONDS = 0.1
# A worker SIGKILLed at or above this share of its reserved memory is reported as out of memory.
OOM_SHARE = 0.9
# A persistent worker holding this much more than after its setup once a task is done is replaced.
RECYCLE_SLACK_MB = 128


class CaseError(Exception):
    """A failure caused by the case's data: reported as a sentence, without a traceback in the summary."""

    def __init__(self, message, kind="invalid_input"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Outcome:
    """What happened to one task run by a worker."""

    status: str
    kind: str | None = None
    message: str = ""
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    result: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == DONE


def _status_mb(pid, field: str) -> float | None:
    """A memory field of /proc/PID/status (VmHWM, VmRSS) in MB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
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


def _release_freed_memory() -> None:
    """Give memory freed by the last task back to the OS (glibc keeps freed heap chunks otherwise), so
    the next task in a persistent worker starts from the worker's base. (No gc.collect(): it takes
    0.1 s in a process holding torch, and arrays are freed as soon as the task drops them.)"""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> None:
    """Restart the VmHWM count of this process (Linux >= 4.0), so each task gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _classify(error: BaseException) -> str:
    if isinstance(error, CaseError):
        return error.kind
    if isinstance(error, MemoryError):
        return "out_of_memory"
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
        return "gpu_out_of_memory"
    return "error"


def _describe(error: BaseException) -> str:
    """One line for the summary: the sentence of a data error, else the exception type and text."""
    if isinstance(error, CaseError):
        return str(error)
    if isinstance(error, MemoryError):
        return f"ran out of memory (MemoryError{': ' + str(error) if str(error) else ''})"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def inject_fault(fault: str) -> None:
    """Test-only faults: SIGKILL this worker, exhaust its memory (MemoryError), stall until killed
    (the stage's timeout or a test ends it), or raise an error."""
    print(f"injecting fault {fault!r}", flush=True)
    if fault == "stall":
        while True:
            time.sleep(60)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "oom":
        import resource

        with open("/proc/self/statm") as statm:
            address_space = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limits = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (address_space + 512 * 1024 * 1024, limits[1]))
        hog = []
        try:
            while True:
                hog.append(b"\1" * (64 * 1024 * 1024))
        finally:
            hog.clear()
            resource.setrlimit(resource.RLIMIT_AS, limits)
    raise RuntimeError("injected fault")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its supervisor dies, so no orphan keeps writing files."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _output_to(log_path) -> None:
    """Send this process's stdout and stderr (Python's and the C level's) to the end of a log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _child_main(connection, setup, handle, log_path):
    _die_with_parent()
    if log_path is not None:
        _output_to(log_path)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    state = None
    try:
        state = setup() if setup is not None else None
        connection.send(("ready", None))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which records it
        traceback.print_exc()
        connection.send(("setup_failed", (_classify(error), _describe(error))))
        return
    while True:
        message = connection.recv()
        if message is None:
            return
        fault, task, task_log = message
        if task_log is not None:
            _output_to(task_log)
        _reset_peak_rss()
        try:
            if fault:
                inject_fault(fault)
            result = handle(state, *task)
            reply = ("done", result or {})
        except BaseException as error:  # noqa: BLE001
            traceback.print_exc()
            reply = ("failed", (_classify(error), _describe(error)))
        sys.stdout.flush()
        sys.stderr.flush()
        peak = peak_rss_mb()
        _release_freed_memory()
        connection.send((reply[0], reply[1], peak))


class Worker:
    """A forked child that runs `setup()` once, then `handle(state, *task)` for each task it is given.

    If the child dies or overruns a timeout, that task fails with kind `killed`/`out_of_memory` or
    `timeout`, and the next task starts a fresh child (running `setup` again). A child that still holds
    more than `RECYCLE_SLACK_MB` beyond what it held after `setup` once a task is done (memory the
    allocator kept after a large case) is replaced too, so the next case starts from a clean base.
    """

    def __init__(self, handle, setup=None, log_path=None, setup_timeout_s=600, reserved_mb=None):
        self.handle, self.setup, self.log_path = handle, setup, log_path
        self.setup_timeout_s = setup_timeout_s
        self.reserved_mb = reserved_mb
        self.process = None
        self.connection = None
        self.starts = 0
        self.base_mb = None

    def _start(self) -> Outcome | None:
        context = multiprocessing.get_context("fork")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_child_main, args=(child_end, self.setup, self.handle, self.log_path))
        self.process.start()
        child_end.close()
        self.starts += 1
        started = time.monotonic()
        outcome = self._wait(started, self.setup_timeout_s)
        if isinstance(outcome, Outcome):
            self.close()
            return outcome
        tag, payload = outcome[:2]
        if tag == "setup_failed":
            self.close()
            return Outcome(FAILED, kind=payload[0], message=f"worker setup failed: {payload[1]}")
        self.base_mb = resident_mb(self.process.pid)
        return None

    def _wait(self, started: float, timeout_s: float, peak: float | None = None):
        """The child's next message, or an Outcome if it died or ran out of time first."""
        while True:
            if self.connection.poll(POLL_SECONDS):
                try:
                    return self.connection.recv()
                except EOFError:
                    return self._died(time.monotonic() - started, peak)
            peak = max(filter(None, (peak, peak_rss_mb(self.process.pid))), default=None)
            elapsed = time.monotonic() - started
            if not self.process.is_alive():
                return self._died(elapsed, peak)
            if elapsed > timeout_s:
                self.process.kill()
                self.process.join()
                message = f"no result after {timeout_s:.0f} s; stopped"
                return Outcome(FAILED, kind="timeout", message=message, seconds=elapsed, peak_rss_mb=peak)

    def _died(self, elapsed: float, peak: float | None) -> Outcome:
        self.process.join()
        code = self.process.exitcode
        reason = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit status {code}"
        kind = "killed" if code == -signal.SIGKILL else "error"
        message = f"worker process died ({reason})"
        if kind == "killed" and self.reserved_mb and peak and peak >= OOM_SHARE * self.reserved_mb:
            kind = "out_of_memory"
            message += f" at {peak:.0f} MB of {self.reserved_mb} MB reserved"
        return Outcome(FAILED, kind=kind, message=message, seconds=elapsed, peak_rss_mb=peak)

    def run(self, task: tuple, timeout_s: float, fault: str | None = None, log_path=None) -> Outcome:
        """Run one task in the child, starting one if needed; `fault` is injected first (tests only).
        The task's output goes to `log_path` when given (and stays there for later tasks until another)."""
        if self.process is None:
            failed_start = self._start()
            if failed_start is not None:
                return failed_start
        started = time.monotonic()
        resident = peak_rss_mb(self.process.pid)  # a worker killed at once still reports what it held
        self.connection.send((fault, task, None if log_path is None else str(log_path)))
        reply = self._wait(started, timeout_s, resident)
        seconds = time.monotonic() - started
        if isinstance(reply, Outcome):
            self.close()
            return reply
        tag, payload, peak = reply
        now = resident_mb(self.process.pid)
        if self.base_mb is not None and now is not None and now > self.base_mb + RECYCLE_SLACK_MB:
            self.close()
        if tag == "done":
            return Outcome(DONE, seconds=seconds, peak_rss_mb=peak, result=payload)
        return Outcome(FAILED, kind=payload[0], message=payload[1], seconds=seconds, peak_rss_mb=peak)

    def close(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            try:
                self.connection.send(None)
                self.process.join(5)
            except (BrokenPipeError, OSError):
                pass
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.connection.close()
        self.process = None


def run_once(handle, task: tuple, timeout_s: float, log_path=None, fault=None, reserved_mb=None) -> Outcome:
    """Run a single task in a fresh supervised child."""
    worker = Worker(handle, log_path=log_path, reserved_mb=reserved_mb)
    try:
        return worker.run(task, timeout_s, fault)
    finally:
        worker.close()
