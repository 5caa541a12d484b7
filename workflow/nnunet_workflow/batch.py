"""One job serves a batch of cases in one stage: a persistent supervised worker imports nnU-Net once
and handles the cases one after the other, each with its own log, record, peak memory and timeout.

A case that kills the worker (out of memory, a signal, a timeout) is recorded as failed, and a fresh
worker goes on with the rest of the batch. This amortizes the seconds of importing nnU-Net and torch
that a process per case and stage would pay (see benchmarks/throughput.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .job import CaseJob
from .supervise import Outcome, Worker

# prepare(case, job) -> (task, timeout_s) to run, or a finished record (the case is skipped)
Prepare = Callable[[str, CaseJob], "tuple[tuple, float] | dict"]


def fresh_log(path) -> str:
    """Create (or empty) a log file and its folder; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def _note(log_path, line: str) -> None:
    if log_path:
        with open(log_path, "a") as log:
            log.write(line + "\n")


def run_batch(stage: str, jobs: dict[str, CaseJob], prepare: Prepare, handle, setup=None, log_path=None,
              reserved_mb=None, after: Callable[[str, CaseJob, Outcome], None] | None = None,
              case_fields: Callable[[str], dict] | None = None, **extra) -> dict:
    """Run `handle` for every case of `jobs` in one persistent worker; returns the batch record with
    each case's stage record under "cases" and how often the worker was started ("worker_starts").
    `extra` goes into every case's record and the batch record, `case_fields(case)` into that case's.

    Each case's record is written as soon as the case is through, so a batch job killed midway and
    run again reuses what it had finished (`CaseJob.finished`) and carries on with the rest.
    """
    worker = Worker(handle, setup=setup, log_path=log_path, reserved_mb=reserved_mb)
    records = {}
    try:
        for case, job in jobs.items():
            earlier = job.finished(stage)
            if earlier is not None:
                records[case] = earlier
                _note(log_path, f"{stage} {case}: finished earlier in attempt {job.attempt}; kept")
                continue
            prepared = prepare(case, job)
            if isinstance(prepared, dict):
                records[case] = prepared
                job.save(stage, prepared)
                continue
            task, timeout_s = prepared
            case_log = fresh_log(job.log_path) if job.log_path else None
            outcome = worker.run(task, timeout_s, job.fault, case_log)
            records[case] = job.record(stage, outcome, **extra, **(case_fields(case) if case_fields else {}))
            job.save(stage, records[case])
            if after is not None:
                after(case, job, outcome)
    finally:
        worker.close()
    return {"stage": stage, "cases": records, "worker_starts": worker.starts, "pid": os.getpid(), **extra}
