"""A case's run of one stage: which attempt, where its files go, how it is supervised, and its records."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .layout import Layout
from .model import ModelInfo
from .records import DONE, FAILED, is_done, read_if_present, skipped_record, stage_record, write_json
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

    def outputs(self, stage: str) -> list:
        """The files a finished stage leaves for the next one (none for validate)."""
        layout, case, attempt = self.layout, self.case, self.attempt
        if stage == "preprocess":
            return [layout.preprocessed(case, attempt), layout.properties(case, attempt)]
        if stage == "predict":
            return [layout.logits(case, attempt)]
        if stage == "export":
            return [layout.segmentation(case, self.model.file_ending)]
        return []

    def save(self, stage: str, record: dict) -> None:
        """Write this case's stage record of this attempt."""
        write_json(self.layout.record(stage, self.case, self.attempt), record)

    def finished(self, stage: str) -> dict | None:
        """The done record this attempt already has for an expensive stage (preprocess, predict, export)
        whose files are all still there, or None. A batch job killed midway and run again keeps what it
        had finished instead of computing it again."""
        outputs = self.outputs(stage)
        record = read_if_present(self.layout.record(stage, self.case, self.attempt)) if outputs else None
        if record and is_done(record) and record.get("provenance") == self.provenance \
                and all(p.exists() for p in outputs):
            return record
        return None

    def skipped(self, stage: str, upstream: dict) -> dict:
        """The record of a stage not run because an earlier stage did not finish the case."""
        return self._stamp(skipped_record(stage, self.case, upstream))
