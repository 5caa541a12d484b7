"""A case's run of one stage: which attempt, the model and options, where its files go, the records of
the stages before it, how it is supervised; and the records it makes."""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, dataclass, field, replace

from ..inputs.cases import Case
from ..nnunet.model import ModelInfo
from ..store.layout import BEFORE_POSTPROCESSING, Layout
from ..store.records import DONE, FAILED, StageRecord
from .worker import Outcome


@dataclass(frozen=True)
class RunOptions:
    """The run's options the stages use (nnUNetv2_predict's where they exist)."""

    step_size: float = 0.5
    tta: bool = True
    device: str = "auto"
    threads: int = 1
    save_probabilities: bool = False
    keep_intermediates: bool = False
    postprocessing: str | None = None  # a postprocessing.pkl applied after export (stage postprocess)
    max_job_mb: int | None = None  # a case estimated to need more in some stage is refused at validate
    plausibility: str = "warn"  # input plausibility against the training data: warn, fail or off
    statistics: bool = False  # the statistics stage runs after the segmentation
    export_threads: int = 1  # slabs the streaming export resamples at once (a job's own `threads` may be fewer)
    preprocess_threads: int = 1  # slabs the preprocessing resamples at once (likewise)
    trust_model_code: bool = False  # load checkpoints and a postprocessing.pkl naming foreign code (model_checks)
    out_of_core: str = "auto"  # predict's sums on disk: auto (large logits on the CPU), always or never

    @classmethod
    def from_config(cls, config: dict, threads: int = 1, max_job_mb: int | None = None) -> RunOptions:
        return cls(step_size=config["step_size"], tta=config["tta"], device=config["device"], threads=threads,
                   save_probabilities=config["save_probabilities"],
                   keep_intermediates=config["keep_intermediates"], max_job_mb=max_job_mb,
                   postprocessing=config.get("postprocessing"), plausibility=config.get("plausibility", "warn"),
                   statistics=config.get("statistics", False),
                   trust_model_code=config.get("trust_model_code", False),
                   export_threads=config.get("export_threads", 1),
                   preprocess_threads=config.get("preprocess_threads", 1),
                   out_of_core=config.get("out_of_core", "auto"))


@dataclass(frozen=True)
class CaseJob:
    """One case in one stage. `member_dir`: the folder under the case's attempt (and the results) where the
    stage's files go: an ensemble member's (m1), a cascade's previous stage's (3d_lowres, m1/3d_lowres), else
    "" (see Layout)."""

    case: Case
    attempt: str
    model: ModelInfo
    layout: Layout
    options: RunOptions = RunOptions()
    _: KW_ONLY
    provenance: str = ""
    batch: str | None = None
    log_path: str | None = None
    reserved_mb: int | None = None
    upstream: dict[str, StageRecord] = field(default_factory=dict)  # this attempt's earlier stage records
    member_dir: str = ""
    ensemble: tuple[ModelInfo, ...] = ()  # an ensemble's members (m0 is `model` outside member stages)
    carried_from: str | None = None  # the case's failed attempt, whose finished members this one keeps
    segmented: bool = False  # the case's segmentation is finished: only the stages after it run

    @property
    def id(self) -> str:
        return self.case.id

    def preprocessed(self):
        return self.layout.preprocessed(self.id, self.attempt, self.member_dir)

    def properties(self):
        return self.layout.properties(self.id, self.attempt, self.member_dir)

    def logits(self):
        return self.layout.logits(self.id, self.attempt, self.member_dir)

    def member_probabilities(self, member_dir: str | None = None):
        chosen = self.member_dir if member_dir is None else member_dir
        return self.layout.member_probabilities(self.id, self.attempt, chosen)

    def segmentation(self):
        """The case's final segmentation (of its member)."""
        return self.layout.segmentation(self.id, self.model.file_ending, self.member_dir)

    def exported(self):
        """What export writes: the final segmentation, or with postprocessing the one it is applied to."""
        if self.options.postprocessing and not self.member_dir:
            return self.layout.segmentation(self.id, self.model.file_ending, BEFORE_POSTPROCESSING)
        return self.segmentation()

    def record_path(self, stage: str):
        return self.layout.record(stage, self.id, self.attempt)

    def stamp(self) -> dict:
        """What every record of this job carries: attempt, batch, provenance, reservation, SLURM job."""
        return {"attempt": self.attempt, "batch": self.batch, "provenance": self.provenance,
                "reserved_mb": self.reserved_mb, "slurm_job_id": os.environ.get("SLURM_JOB_ID")}

    def record(self, stage: str, outcome: Outcome, details: dict | None = None) -> StageRecord:
        """The stage record of a supervised outcome."""
        return StageRecord(stage, self.id, DONE if outcome.ok else FAILED, kind=outcome.kind,
                           message=outcome.message, seconds=outcome.seconds, peak_rss_mb=outcome.peak_rss_mb,
                           details={**(details or {}), **outcome.result}, **self.stamp())

    def skipped(self, stage: str, upstream: StageRecord | None, needs: str) -> StageRecord:
        """The record of a stage not run because the earlier stage it needs did not finish the case."""
        if upstream is None:
            upstream = StageRecord(needs, self.id, FAILED, kind="error", message=f"no {needs} record")
        return replace(upstream.skipped(stage), **self.stamp())

    def save(self, record: StageRecord) -> None:
        """Write this case's record of this attempt (each case's record is written as the case is through)."""
        record.save(self.record_path(record.stage))
