"""One run per results folder: the lock is a kernel file lock held for the run's life; of runs started
together exactly one gets it, a killed run's lock is free again, a lock file of another host is refused."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from nnunet_workflow.store import run_lock

HOLD_AND_WAIT = textwrap.dedent("""
    import sys, time
    from nnunet_workflow.store import run_lock
    run_lock.acquire(sys.argv[1])
    print("held", flush=True)
    time.sleep(60)
""")


def hold_in_child(lock):
    child = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT, str(lock)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_acquire_writes_this_process_and_release_removes_it(tmp_path):
    lock = tmp_path / "work" / "run.lock"
    run_lock.acquire(lock)
    content = json.loads(lock.read_text())
    assert (content["host"], content["pid"]) == (socket.gethostname(), os.getpid())
    run_lock.acquire(lock)  # the holder may take it again
    run_lock.release(lock)
    assert not lock.exists()
    run_lock.release(lock)  # nothing to release: no error


def test_a_live_run_keeps_the_lock_and_is_named(tmp_path):
    lock = tmp_path / "run.lock"
    holder = hold_in_child(lock)
    try:
        with pytest.raises(run_lock.RunLockError, match=f"another run \\(pid {holder.pid} on host "
                                                        f"{socket.gethostname()}, started .*\\) is using"):
            run_lock.acquire(lock)
        run_lock.release(lock)  # not ours: left alone
        assert json.loads(lock.read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_runs_lock_is_free_at_once(tmp_path):
    lock = tmp_path / "run.lock"
    holder = hold_in_child(lock)
    holder.kill()  # SIGKILL: no release ran, the file stays, the kernel dropped the lock
    holder.wait()
    assert json.loads(lock.read_text())["pid"] == holder.pid
    run_lock.acquire(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    run_lock.release(lock)


def test_a_lock_file_of_another_host_is_refused_with_what_to_do(tmp_path):
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"host": "node-17", "pid": 1234}))
    with pytest.raises(run_lock.RunLockError, match="run on host node-17 \\(pid 1234\\).*delete that file"):
        run_lock.acquire(lock)


def test_a_corrupt_lock_file_is_replaced(tmp_path):
    lock = tmp_path / "run.lock"
    lock.write_text("{")
    run_lock.acquire(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    run_lock.release(lock)


def _contend(lock, barrier, done, results):
    barrier.wait()
    try:
        run_lock.acquire(lock)
    except run_lock.RunLockError as error:
        results.put(("refused", str(error)))
        return
    results.put(("held", os.getpid()))
    done.wait(timeout=30)  # hold until every contender has been answered
    run_lock.release(lock)


@pytest.mark.parametrize("round_", range(20))
def test_of_five_runs_started_together_exactly_one_proceeds(tmp_path, round_):
    context = multiprocessing.get_context("fork")
    lock, barrier, done, results = str(tmp_path / "run.lock"), context.Barrier(5), context.Event(), context.Queue()
    runs = [context.Process(target=_contend, args=(lock, barrier, done, results)) for _ in range(5)]
    for run in runs:
        run.start()
    answers = [results.get(timeout=30) for _ in runs]
    done.set()
    for run in runs:
        run.join(timeout=30)
    held = [pid for kind, pid in answers if kind == "held"]
    assert len(held) == 1, answers
    refused = [message for kind, message in answers if kind == "refused"]
    assert len(refused) == 4 and all(f"another run (pid {held[0]} on host" in message for message in refused), refused
    assert not os.path.exists(lock)
