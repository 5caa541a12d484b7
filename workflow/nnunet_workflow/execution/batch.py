"""One job serves a batch of cases in one stage: a persistent supervised worker imports nnU-Net once
and handles the cases one after the other, each with its own log, record, peak memory and timeout.

A case that kills the worker (out of memory, a signal, a timeout) is recorded as failed, and a fresh
worker goes on with the rest of the batch. This amortizes the seconds of importing nnU-Net and torch
that a process per case and stage would pay (see benchmarks/throughput.py).
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..estimates.stage_needs import estimated_s
from ..store import stage_names
from ..store.failures import NO_SPACE, error_kind, error_message, free_mb, no_space_message
from ..store.layout import member_dir
from ..store.manifest import BatchManifest
from ..store.records import FAILED, StageRecord
from .faults import with_bookkeeping_faults, with_faults
from .job import CaseJob
from .stage import Stage
from .worker import Worker


def fresh_log(path) -> str:
    """Create (or empty) a log file and its folder; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def _note(log_path, line: str) -> None:
    """A line in the batch's log (which a full disk may refuse: the record says it too)."""
    if log_path:
        try:
            with open(log_path, "a") as log:
                log.write(line + "\n")
        except OSError:
            pass


def finished_record(stage: Stage, job: CaseJob) -> StageRecord | None:
    """The done record this attempt already has for a stage that leaves files, with the same provenance and
    all its files still there, or None. A batch job killed midway and run again keeps what it had finished
    instead of computing it again. For a case already segmented (`job.segmented`), every stage up to the
    segmentation keeps its done record: only the stages after it (statistics) run."""
    outputs = stage.outputs(job)
    kept_as_segmented = job.segmented and not stage.after_segmentation
    if not outputs and not kept_as_segmented:
        return None
    record = StageRecord.load_if_present(job.record_path(stage.name))
    if not (record and record.done and record.provenance == job.provenance):
        return None
    return record if kept_as_segmented or all(p.exists() for p in outputs) else None


def carried_record(stage: Stage, job: CaseJob) -> StageRecord | None:
    """An ensemble member's stage that the case's failed attempt finished, kept in the new attempt: when that
    attempt's export of the member is done with the same provenance and its probabilities are still there,
    the member's records are carried over (its probabilities and properties moved into the new attempt), so a
    rerun after one member failed redoes only what is missing."""
    if stage.member is None or not job.carried_from:
        return None
    old, new, name = job.carried_from, job.attempt, member_dir(stage.member)
    export_name = stage_names.member(stage.member, "export")
    export = StageRecord.load_if_present(job.layout.record(export_name, job.id, old))
    if not (export and export.done and export.provenance == job.provenance):
        return None
    # what the ensemble reads of the member: its probabilities and properties (moved at its export's turn;
    # a cascade member's previous stage, whose records come first, has nothing the ensemble reads)
    layout = job.layout
    moves = [(layout.member_probabilities(job.id, old, name), layout.member_probabilities(job.id, new, name)),
             (layout.properties(job.id, old, name), layout.properties(job.id, new, name))]
    if not all(source.exists() or target.exists() for source, target in moves):
        return None
    record = export if stage.name == export_name else StageRecord.load_if_present(
        job.layout.record(stage.name, job.id, old))
    if record is None or not record.done:
        return None
    if stage.name == export_name:
        for source, target in moves:
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
    return replace(record, attempt=job.attempt, batch=job.batch, reserved_mb=job.reserved_mb,
                   details={**record.details, "carried_from": old})


def space_shortfall(stage: Stage, job: CaseJob) -> StageRecord | None:
    """The failed record of a case whose estimated writes in this stage (validate's disk estimate) exceed the
    free space of the results folder's filesystem now; None when they fit or nothing is estimated."""
    validated = job.upstream.get("validate")
    needed = validated.estimates.disk_mb.get(stage.name) if validated is not None else None
    free = free_mb(job.layout.results) if needed else None
    if needed is None or free is None or needed <= free:
        return None
    detail = f"{stage.name} writes about {needed:,} MB for this case"
    return StageRecord(stage.name, job.id, FAILED, kind=NO_SPACE, message=detail, **job.stamp())


def _run_case(stage: Stage, job: CaseJob, worker: Worker, log_path=None) -> StageRecord:
    for needed in stage.needed:
        upstream = job.upstream.get(needed)
        if upstream is None or not upstream.done:
            return job.skipped(stage.name, upstream, needed)
    short = space_shortfall(stage, job)
    if short is not None:
        return short
    case_log = fresh_log(job.log_path) if job.log_path else None
    timeout_s = estimated_s(stage.name, stage.resources, job.case, job.upstream.get("validate"))
    outcome = worker.run(job, timeout_s, case_log)
    if outcome.note:
        _note(log_path, f"{stage.name} {job.id}: {outcome.note}")
    return job.record(stage.name, outcome, stage.fields(job))


def _case_record(stage: Stage, job: CaseJob, worker: Worker, log_path) -> StageRecord:
    """Run (or keep, or carry over) one case of the batch and save its record."""
    case = job.id
    record = finished_record(stage, job)
    carried = None if record is not None else carried_record(stage, job)
    if record is not None:
        _note(log_path, f"{stage.name} {case}: finished earlier in attempt {job.attempt}; kept")
        return record
    if carried is not None:
        job.save(carried)
        _note(log_path, f"{stage.name} {case}: finished in attempt {job.carried_from}; carried over")
        return carried
    record = _run_case(stage, job, worker, log_path)
    if record.kind == NO_SPACE:
        record = replace(record, message=_out_of_space(job, record.message))
    job.save(record)
    _note(log_path, f"{stage.name} {case}: {record.status} {record.kind or ''} {record.message}".rstrip())
    return record


def _out_of_space(job: CaseJob, detail: str) -> str:
    """A case failed for want of space: the sentence that says so (the free space as found), and its attempt's
    intermediates removed at once."""
    message = no_space_message(job.layout.results, detail)
    free_attempt_space(job)
    return message


def free_attempt_space(job: CaseJob) -> None:
    """Remove a case attempt's intermediates (all but its records) at once: what it failed for is space, and
    a rerun starts a new attempt, which never reads them."""
    try:
        for path in job.layout.attempt_dir(job.id, job.attempt).rglob("*"):
            if path.is_file() and path.suffix != ".json":
                path.unlink(missing_ok=True)
    except OSError:
        pass  # what could not be removed is left to the next run's clean start


def _bookkeeping_failed(stage: Stage, job: CaseJob, error: Exception, log_path) -> tuple[StageRecord, dict | None]:
    """A case whose bookkeeping raised (its log or record path refused, a full disk): its failed record, saved
    if it can be, and, when it cannot, what the manifest says for the case instead."""
    kind = error_kind(error)
    message = error_message(error)
    if kind == NO_SPACE:
        message = _out_of_space(job, message)
    else:
        kind, message = "error", f"the workflow could not keep this case's files: {message}"
    _note(log_path, f"{stage.name} {job.id}: failed {kind} {message}")
    record = StageRecord(stage.name, job.id, FAILED, kind=kind, message=message, **job.stamp())
    try:
        job.save(record)
    except Exception as save_error:  # noqa: BLE001 - told in the manifest instead
        _note(log_path, f"{stage.name} {job.id}: its record could not be written: {error_message(save_error)}")
        return record, {"kind": kind, "message": message}
    return record, None


def run_batch(stage: Stage, jobs: dict[str, CaseJob], log_path=None, reserved_mb=None,
              faults: dict[str, str] | None = None) -> BatchManifest:
    """Run `stage` for every case of `jobs` (one batch) in one persistent worker; return the batch's manifest.

    Each case's record is written as soon as the case is through, so a batch job killed midway and run
    again reuses what it had finished (`finished_record`) and carries on with the rest. Nothing about one
    case fails its batch mates: a case whose own bookkeeping raises is recorded as failed (or, when even its
    record cannot be written, in the manifest), and the others go on. `faults`: test-only faults to inject,
    {case: action} (execution/faults).
    """
    jobs = with_bookkeeping_faults(jobs, faults)
    first = next(iter(jobs.values()), None)
    setup = partial(stage.setup, first.model, first.options) if stage.setup and first else None
    worker = Worker(with_faults(stage.handle, faults), setup=setup, log_path=log_path, reserved_mb=reserved_mb)
    unrecorded: dict[str, dict] = {}
    try:
        for case, job in jobs.items():
            try:
                record = _case_record(stage, job, worker, log_path)
            except Exception as error:  # noqa: BLE001 - one case's bookkeeping never fails the batch
                record, said = _bookkeeping_failed(stage, job, error, log_path)
                if said:
                    unrecorded[case] = said
            if stage.after is not None:  # also for a kept record: a job killed before its `after` ran
                try:
                    stage.after(job, record)
                except Exception as error:  # noqa: BLE001 - a clean-up left undone fails nothing
                    _note(log_path, f"{stage.name} {case}: clean-up after the stage failed: {error_message(error)}")
    finally:
        worker.close()
    return BatchManifest(stage=stage.name, batch=first.batch if first else "", pid=os.getpid(),
                         cases={case: str(job.record_path(stage.name)) for case, job in jobs.items()},
                         worker_starts=worker.starts, model_loads=worker.starts if stage.loads_model else None,
                         unrecorded=unrecorded or None)
