"""Supervised workers: results, data errors, crashes, kills and timeouts become outcomes."""

import os
import signal
import time

from nnunet_workflow.supervise import CaseError, Worker, run_once


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
    outcome = run_once(double, (3,), timeout_s=30)
    assert outcome.ok and outcome.result == {"y": 6, "state": None}
    assert outcome.peak_rss_mb > 0


def test_data_error_is_a_sentence_without_traceback(tmp_path):
    log = tmp_path / "case.log"
    outcome = run_once(data_error, (7,), timeout_s=30, log_path=str(log))
    assert (outcome.status, outcome.kind, outcome.message) == ("failed", "invalid_input", "case 7 is bad")
    assert "Traceback" in log.read_text()


def test_unexpected_error_keeps_first_line_only():
    outcome = run_once(crash, (1,), timeout_s=30)
    assert (outcome.kind, outcome.message) == ("error", "ValueError: broken")


def test_killed_worker_is_reported_with_its_peak_memory():
    outcome = run_once(allocate_then_kill, (200,), timeout_s=30)
    assert outcome.kind == "killed" and "SIGKILL" in outcome.message
    assert outcome.peak_rss_mb >= 150


def test_timeout_stops_the_worker():
    started = time.monotonic()
    outcome = run_once(sleep_forever, (1,), timeout_s=1)
    assert outcome.kind == "timeout"
    assert time.monotonic() - started < 30


def test_a_killed_task_restarts_the_worker_and_the_next_task_runs():
    worker = Worker(kill_on_two, setup=lambda: "model")
    try:
        outcomes = [worker.run((x,), timeout_s=30) for x in range(4)]
    finally:
        worker.close()
    assert [o.status for o in outcomes] == ["done", "done", "failed", "done"]
    assert outcomes[3].result == {"y": 6, "state": "model"}
    assert worker.starts == 2
