"""The stage protocol: what `run_batch` needs to run any stage over a batch of cases. Each stage module in
`stages/` exports one `Stage`, named in store/stage_names.ORDER and registered in planning/pipeline.REGISTERED;
a cascade's previous stage and an ensemble's members run copies of preprocess, predict and export
(`pipeline.stages_for`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..estimates.stage_needs import NNUNET_WORKER, StageResources
from ..store import stage_names
from ..store.records import StageRecord
from .job import CaseJob


def no_outputs(job: CaseJob) -> list[Path]:
    return []


def no_fields(job: CaseJob) -> dict:
    return {}


@dataclass(frozen=True)
class Stage:
    """name: the stage, its rule and its records' name.
    handle(state, job) -> dict: in the worker, one case; what it returns goes into the case's record.
    needs: the earlier stage whose done record a case needs; a case without one is recorded as skipped.
    setup(model, options) -> state: in the worker, once per worker start (e.g. loading the model).
    outputs(job): the files a done case leaves for the next stage; a done record of the same attempt and
      provenance whose outputs all exist is kept when the batch runs again (a job killed midway).
    fields(job): details the case's record gets whatever the outcome.
    after(job, record): in the job's process once the case's record is saved (e.g. removing intermediates).
    loads_model: each worker start loads the model (the manifest counts `model_loads`).
    previous: the stage runs the cascade's previous stage model (its jobs' model and member are that one's).
    member: the stage runs the ensemble's member of this index (m0_predict: member 0).
    after_segmentation: the stage looks at the final segmentation (statistics): a case is done without it, and
      a segmented case whose record of it is missing or failed runs it alone, its earlier stages kept; the run's
      config turns it on by the stage's name (`statistics: true`).
    resources: its worker's base memory and start-up time, a case's default time limit (estimates/stage_needs).
    reads_images: the stage reads the case's images (the last such stage removes DICOM series volumes).
    needs may name several stages (an ensemble needs every member's export).
    """

    name: str
    handle: Callable[[Any, CaseJob], dict]
    needs: str | tuple[str, ...] | None = None
    setup: Callable[..., Any] | None = None
    outputs: Callable[[CaseJob], list[Path]] = no_outputs
    fields: Callable[[CaseJob], dict] = no_fields
    after: Callable[[CaseJob, StageRecord], None] | None = None
    loads_model: bool = False
    previous: bool = False
    member: int | None = None
    after_segmentation: bool = False
    resources: StageResources = NNUNET_WORKER
    reads_images: bool = True

    def __post_init__(self):
        if stage_names.kind(self.name) not in stage_names.ORDER:
            raise ValueError(f"stage {self.name!r} is not one of store/stage_names.ORDER")

    @property
    def needed(self) -> tuple[str, ...]:
        return () if self.needs is None else (self.needs,) if isinstance(self.needs, str) else self.needs
