"""Supervised workers: stage work runs in a forked child whose death, timeout or error becomes an outcome.

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

from ..store.failures import death_kind_and_message, error_kind, error_message
from ..store.records import DONE, FAILED
from .process_memory import peak_rss_mb, release_freed_memory, reset_peak_rss, resident_mb

POLL_SECONDS = 0.1
# A persistent worker holding this much more than after its setup once a task is done is replaced.
RECYCLE_SLACK_MB = 128


@dataclass
class Outcome:
    """What happened to one task run by a worker."""

    status: str
    kind: str | None = None
    message: str = ""
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    result: dict = field(default_factory=dict)
    note: str = ""  # what the worker did besides (e.g. replaced itself after the task)

    @property
    def ok(self) -> bool:
        return self.status == DONE


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
        connection.send(("setup_failed", (error_kind(error), error_message(error))))
        return
    while True:
        message = connection.recv()
        if message is None:
            return
        task, task_log = message
        if task_log is not None:
            _output_to(task_log)
        reset_peak_rss()
        try:
            reply = ("done", handle(state, task) or {})
        except BaseException as error:  # noqa: BLE001
            traceback.print_exc()
            reply = ("failed", (error_kind(error), error_message(error)))
        sys.stdout.flush()
        sys.stderr.flush()
        peak = peak_rss_mb()
        release_freed_memory()
        connection.send((reply[0], reply[1], peak))


class Worker:
    """A forked child that runs `setup()` once, then `handle(state, task)` for each task it is given.

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
        outcome = self._wait(time.monotonic(), self.setup_timeout_s)
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
        kind, message = death_kind_and_message(self.process.exitcode, peak, self.reserved_mb)
        return Outcome(FAILED, kind=kind, message=message, seconds=elapsed, peak_rss_mb=peak)

    def run(self, task, timeout_s: float, log_path=None) -> Outcome:
        """Run one task in the child, starting one if needed. The task's output goes to `log_path` when
        given (and stays there for later tasks until another)."""
        if self.process is None:
            failed_start = self._start()
            if failed_start is not None:
                return failed_start
        started = time.monotonic()
        resident = peak_rss_mb(self.process.pid)  # a worker killed at once still reports what it held
        self.connection.send((task, None if log_path is None else str(log_path)))
        reply = self._wait(started, timeout_s, resident)
        seconds = time.monotonic() - started
        if isinstance(reply, Outcome):
            self.close()
            return reply
        tag, payload, peak = reply
        now, note = resident_mb(self.process.pid), ""
        if self.base_mb is not None and now is not None and now > self.base_mb + RECYCLE_SLACK_MB:
            note = f"worker held {now:.0f} MB after the case, {self.base_mb:.0f} MB after its setup: replaced"
            self.close()
        if tag == "done":
            return Outcome(DONE, seconds=seconds, peak_rss_mb=peak, result=payload, note=note)
        return Outcome(FAILED, kind=payload[0], message=payload[1], seconds=seconds, peak_rss_mb=peak, note=note)

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


def run_once(handle, task, timeout_s: float, log_path=None, reserved_mb=None) -> Outcome:
    """Run a single task in a fresh supervised child."""
    worker = Worker(handle, log_path=log_path, reserved_mb=reserved_mb)
    try:
        return worker.run(task, timeout_s)
    finally:
        worker.close()
