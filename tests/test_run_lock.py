"""One run per results folder: a live holder refuses a second run, a dead one's lock is taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from nnunet_workflow.store import run_lock


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_acquire_writes_this_process_and_release_removes_it(tmp_path):
    lock = tmp_path / "work" / "run.lock"
    run_lock.acquire(lock)
    assert json.loads(lock.read_text()) == {"host": socket.gethostname(), "pid": os.getpid()}
    run_lock.acquire(lock)  # the holder may take it again
    run_lock.release(lock)
    assert not lock.exists()
    run_lock.release(lock)  # nothing to release: no error


def test_a_live_run_on_this_host_keeps_the_lock(tmp_path):
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid}))
        with pytest.raises(run_lock.RunLockError, match=f"another run \\(pid {holder.pid}\\) is using"):
            run_lock.acquire(lock)
        run_lock.release(lock)  # not ours: left alone
        assert json.loads(lock.read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
    run_lock.acquire(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_lock_of_another_host_is_refused_with_what_to_do(tmp_path):
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"host": "node-17", "pid": 1234}))
    with pytest.raises(run_lock.RunLockError, match="run on host node-17 \\(pid 1234\\).*delete that file"):
        run_lock.acquire(lock)


def test_a_corrupt_lock_is_replaced(tmp_path):
    lock = tmp_path / "run.lock"
    lock.write_text("{")
    run_lock.acquire(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
