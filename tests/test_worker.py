"""Supervised workers: results, data errors, crashes, kills and timeouts become outcomes."""

import os
import signal
import time

from nnunet_workflow.execution.worker import Worker, run_once
from nnunet_workflow.store.failures import CaseError


def double(state, x):
    return {"y": 2 * x, "state": state}


def data_error(state, x):
    raise CaseError(f"case {x} is bad")


def crash(state, x):
    raise ValueError("broken\nsecond line")


def kill_self(state, x):
    os.kill(os.getpid(), signal.SIGKILL)


def allocate_then_kill(state, x):
    block = bytearray(x * 1024 * 1024)
    block[::4096] = b"\1" * len(block[::4096])
    time.sleep(0.5)  # the parent samples memory every 0.1 s; an OOM kill also comes while memory is held
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_forever(state, x):
    time.sleep(60)


def kill_on_two(state, x):
    return kill_self(state, x) if x == 2 else double(state, x)


def test_result_comes_back():
    outcome = run_once(double, 3, timeout_s=30)
    assert outcome.ok and outcome.result == {"y": 6, "state": None}
    assert outcome.peak_rss_mb > 0


def test_data_error_is_a_sentence_without_traceback(tmp_path):
    log = tmp_path / "case.log"
    outcome = run_once(data_error, 7, timeout_s=30, log_path=str(log))
    assert (outcome.status, outcome.kind, outcome.message) == ("failed", "invalid_input", "case 7 is bad")
    assert "Traceback" in log.read_text()


def test_unexpected_error_keeps_first_line_only():
    outcome = run_once(crash, 1, timeout_s=30)
    assert (outcome.kind, outcome.message) == ("error", "ValueError: broken")


def test_killed_worker_is_reported_with_its_peak_memory():
    outcome = run_once(allocate_then_kill, 200, timeout_s=30)
    assert outcome.kind == "killed" and "SIGKILL" in outcome.message
    assert outcome.peak_rss_mb >= 150


def test_a_worker_killed_near_its_reservation_ran_out_of_memory():
    outcome = run_once(allocate_then_kill, 300, timeout_s=30, reserved_mb=320)
    assert outcome.kind == "out_of_memory", outcome
    assert "SIGKILL" in outcome.message and "MB of 320 MB reserved" in outcome.message
    far_below = run_once(allocate_then_kill, 50, timeout_s=30, reserved_mb=2000)
    assert far_below.kind == "killed"


def test_timeout_stops_the_worker():
    started = time.monotonic()
    outcome = run_once(sleep_forever, 1, timeout_s=1)
    assert outcome.kind == "timeout" and outcome.message == "no result after 1 s; stopped"
    assert time.monotonic() - started < 30


def test_a_killed_task_restarts_the_worker_and_the_next_task_runs():
    worker = Worker(kill_on_two, setup=lambda: "model")
    try:
        outcomes = [worker.run(x, timeout_s=30) for x in range(4)]
    finally:
        worker.close()
    assert [o.status for o in outcomes] == ["done", "done", "failed", "done"]
    assert outcomes[3].result == {"y": 6, "state": "model"}
    assert worker.starts == 2


def failing_setup():
    raise CaseError("model folder unreadable", kind="error")


def test_a_failed_setup_fails_the_task_with_its_reason():
    worker = Worker(double, setup=failing_setup)
    try:
        outcome = worker.run(1, timeout_s=30)
    finally:
        worker.close()
    assert (outcome.kind, outcome.message) == ("error", "worker setup failed: model folder unreadable")


def say(state, word):
    print(f"case {word}", flush=True)
    return {}


def keep(state, megabytes):
    """Allocate and keep memory in the worker (as an allocator may keep what a large case freed)."""
    state.append(bytearray(megabytes * 1024 * 1024))
    state[-1][::4096] = b"\1" * len(state[-1][::4096])
    return {}


def test_each_task_writes_its_own_log(tmp_path):
    worker = Worker(say, setup=lambda: print("setup", flush=True), log_path=tmp_path / "batch.log")
    try:
        for word in ("a", "b"):
            assert worker.run(word, 10, log_path=tmp_path / f"{word}.log").ok
    finally:
        worker.close()
    assert (tmp_path / "batch.log").read_text() == "setup\n"
    assert (tmp_path / "a.log").read_text() == "case a\n" and (tmp_path / "b.log").read_text() == "case b\n"
    assert worker.starts == 1


def test_a_worker_left_holding_memory_is_replaced():
    worker = Worker(keep, setup=list)
    try:
        small = worker.run(1, 10)
        assert small.ok and worker.process is not None and small.note == ""  # a little: the same worker goes on
        large = worker.run(400, 10)
        assert large.ok and worker.process is None  # holds 400 MB more: replaced, and says so
        assert large.note.startswith("worker held") and large.note.endswith("replaced")
        assert worker.run(1, 10).ok
    finally:
        worker.close()
    assert worker.starts == 2
