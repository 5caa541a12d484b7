"""The run plan, made at parse time from what is on disk (read-only): which attempt each case is at,
which cases still need work, and which of those form each batch (one job per batch and stage).

Finished cases are not in any batch and run no job. A case whose last attempt failed gets a new
attempt, with more memory reserved for the stage that ran out of it. The main Snakemake process
makes the plan and writes it when the run starts; job processes that re-parse the Snakefile
(cluster jobs) read that file instead of re-deciding from files that jobs are busy writing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..inputs.cases import Case
from ..inputs.dicom_series import folder_bytes, is_series
from ..store import stage_names
from ..store.atomic_files import read_json, write_json
from ..store.layout import Layout
from ..store.records import FAILED, StageRecord

# A retry after running out of memory reserves this much more than the failed attempt measured.
RETRY_MEMORY_FACTOR = 1.5
MEMORY_KINDS = ("out_of_memory", "killed")


@dataclass
class CaseState:
    """Where a case stands: its current attempt, whether it is finished, and memory floors per stage."""

    attempt: str
    finished: bool = False
    memory_floor_mb: dict = field(default_factory=dict)
    carried_from: str | None = None  # the failed attempt whose finished ensemble members the new one keeps
    segmented: bool = False  # only the stages after the segmentation (statistics) are left to run


@dataclass
class RunPlan:
    attempts: dict
    pending: list
    batches: dict
    memory_floor_mb: dict
    max_job_mem_mb: int | None = None
    provenance: dict = field(default_factory=dict)  # case -> its provenance key (provenance.case_provenance)
    carried_from: dict = field(default_factory=dict)  # case -> the failed attempt it may keep members of
    segmented: list = field(default_factory=list)  # pending cases with only the stages after segmentation left
    channels: dict = field(default_factory=dict)  # pending case -> {channel index: file or DICOM series folder}

    def pending_cases(self) -> dict[str, Case]:
        """The pending cases as the plan found them (for the jobs, which do not look for cases again)."""
        return {case: Case(case, self.channels[case]) for case in self.pending}

    def finished_records(self, layout: Layout) -> list:
        """Paths of the stage records of the cases finished in earlier runs (in no batch), those that exist (a
        cascade's include its previous stage's)."""
        pending = set(self.pending)
        return [path for case, attempt in self.attempts.items() if case not in pending
                for path in record_paths(layout, case, attempt)]

    def save(self, path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path) -> RunPlan:
        content = read_json(path)
        channels = {case: {int(index): file for index, file in found.items()}  # JSON's keys are strings
                    for case, found in content.pop("channels", {}).items()}
        return cls(**content, channels=channels)


def record_paths(layout: Layout, case: str, attempt: str) -> list:
    """The stage records an attempt of a case has on disk, in the order of the stages (one listing of its
    folder, whatever stages the run had: a cascade's, an ensemble's members')."""
    folder = layout.attempt_dir(case, attempt)
    found = [path for path in folder.glob("*.json") if stage_names.is_stage(path.stem)] if folder.is_dir() else []
    return sorted(found, key=lambda path: stage_names.journey_key(path.stem))


def input_bytes(case: Case) -> int:
    """Total size on disk of a case's channel files or series folders (missing ones count as 0)."""
    return sum(folder_bytes(p) if is_series(p) else os.path.getsize(p) for p in case.files() if os.path.exists(p))


def memory_floors(records) -> dict:
    """{stage: MB} a retry reserves at least, for the stages that ran out of memory or were killed."""
    return {record.stage: int(max(record.peak_rss_mb or 0, record.reserved_mb or 0) * RETRY_MEMORY_FACTOR)
            for record in records if record.status == FAILED and record.kind in MEMORY_KINDS}


def case_state(layout: Layout, case: str, file_ending: str, provenance: str, final_stage: str = "export",
               after_stages=()) -> CaseState:
    """The state of one case from its latest attempt's records; it is finished when the stage that writes the
    run's segmentations (`final_stage`: export, ensemble or postprocess) is done, its segmentation is there and
    the stages after it (`after_stages`: statistics) are done. A segmented case without them stays in its
    attempt and runs them alone."""
    numbers = layout.attempt_numbers(case)
    if not numbers:
        return CaseState("a1")
    number = numbers[-1]
    attempt = f"a{number}"
    records = {r.stage: r for path in record_paths(layout, case, attempt)
               if (r := StageRecord.load_if_present(path))}
    stale = any(r.provenance != provenance for r in records.values())
    final = records.get(final_stage)
    if final and final.done and not stale and layout.segmentation(case, file_ending).exists():
        after = [records.get(stage) for stage in after_stages]
        if all(record is not None and record.done for record in after):
            return CaseState(attempt, finished=True)
        return CaseState(attempt, memory_floor_mb=memory_floors(r for r in after if r), segmented=True)
    unfinished = [r for r in records.values() if not r.done]
    if not stale and not unfinished and not final:
        return CaseState(attempt)  # interrupted: carry on with the same attempt
    return CaseState(f"a{number + 1}", memory_floor_mb=memory_floors(unfinished),
                     carried_from=None if stale else attempt)


def batch_id(members: list[tuple[str, str]]) -> str:
    """A batch id unique to its (case, attempt) members, so a new plan never reuses an old batch's record."""
    return "batch_" + hashlib.sha256(json.dumps(members).encode()).hexdigest()[:12]


def plan_batches(cases: dict[str, Case], attempts: dict[str, str], batch_size: int) -> dict[str, list[str]]:
    """Batches of at most `batch_size` cases, largest inputs first, so similar sizes share a batch."""
    order = sorted(cases, key=lambda c: (-input_bytes(cases[c]), c))
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return {batch_id([(c, attempts[c]) for c in chunk]): chunk for chunk in chunks}


def make_plan(cases: dict[str, Case], layout: Layout, file_ending: str, provenance: dict[str, str],
              batch_size: int | Callable[[int], int], max_job_mem_mb: int | None = None,
              final_stage: str = "export", after_stages=()) -> RunPlan:
    """The plan of a run over `cases`, decided from the records on disk and each case's provenance key.
    `batch_size` may be a function of the number of pending cases (batch_size: auto)."""
    states = {case: case_state(layout, case, file_ending, provenance[case], final_stage, after_stages)
              for case in cases}
    pending = [case for case, state in states.items() if not state.finished]
    if callable(batch_size):
        batch_size = batch_size(len(pending))
    return RunPlan(
        attempts={case: state.attempt for case, state in states.items()},
        pending=pending,
        batches=plan_batches({c: cases[c] for c in pending}, {c: states[c].attempt for c in pending}, batch_size),
        memory_floor_mb={case: states[case].memory_floor_mb for case in pending if states[case].memory_floor_mb},
        max_job_mem_mb=max_job_mem_mb,
        provenance={case: provenance[case] for case in cases},
        carried_from={case: states[case].carried_from for case in pending if states[case].carried_from},
        segmented=[case for case in pending if states[case].segmented],
        channels={case: cases[case].channels for case in pending},
    )
