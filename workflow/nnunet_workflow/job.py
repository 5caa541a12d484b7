"""A case's run of one stage: which attempt, where its files go, how it is supervised, and its records."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .layout import Layout
from .model import ModelInfo
from .records import DONE, FAILED, skipped_record, stage_record
from .supervise import Outcome


@dataclass(frozen=True)
class CaseJob:
    case: str
    attempt: str
    model: ModelInfo
    layout: Layout
    provenance: str = ""
    log_path: str | None = None
    fault: str | None = None  # test-only fault to inject in this stage (see supervise.inject_fault)
    reserved_mb: int | None = None

    def _stamp(self, record: dict) -> dict:
        return {**record, "attempt": self.attempt, "provenance": self.provenance, "reserved_mb": self.reserved_mb,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID")}

    def record(self, stage: str, outcome: Outcome, **extra) -> dict:
        """The stage record of a supervised outcome."""
        return self._stamp(stage_record(
            stage, self.case, DONE if outcome.ok else FAILED, kind=outcome.kind, message=outcome.message,
            seconds=outcome.seconds, peak_rss_mb=outcome.peak_rss_mb, **extra, **outcome.result,
        ))

    def skipped(self, stage: str, upstream: dict) -> dict:
        """The record of a stage not run because an earlier stage did not finish the case."""
        return self._stamp(skipped_record(stage, self.case, upstream))
