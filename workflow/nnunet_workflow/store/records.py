"""Stage records: what happened to one case in one stage, written by the stage whether the case succeeded or
failed. `StageRecord` is the only reader and writer of their JSON (`work/{case}/{attempt}/{stage}.json`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import ClassVar

from .atomic_files import read_json, read_json_if_present, write_json

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass
class Estimates:
    """Validate's estimates of a case's later stages, each by stage name (a copy's under its own: prev_predict,
    m1_export): peak host memory (MB), time limit (s), GPU memory of a predicting stage (MB, with its logits on
    the device and in host memory: never held against host memory), disk space written (MB), and the voxels they
    come from (the original image's, and each predicting stage's network grid's)."""

    PER_STAGE: ClassVar[tuple[str, ...]] = ("memory_mb", "timeout_s", "gpu_mb", "voxels_resampled", "disk_mb")

    voxels: int = 0
    memory_mb: dict[str, int] = field(default_factory=dict)
    timeout_s: dict[str, int] = field(default_factory=dict)
    gpu_mb: dict[str, dict[str, int]] = field(default_factory=dict)
    voxels_resampled: dict[str, int] = field(default_factory=dict)
    disk_mb: dict[str, int] = field(default_factory=dict)  # what the stage writes for the case (estimates/disk)
    separate_z: bool | None = None  # nnU-Net resamples the case along z apart (one model's estimates only)

    def renamed(self, name: Callable[[str], str]) -> Estimates:
        """The estimates of copies of these stages (`name`: a stage's copy's name), without separate_z."""
        return Estimates(self.voxels, **{key: {name(stage): value for stage, value in getattr(self, key).items()}
                                         for key in self.PER_STAGE})

    def add(self, other: Estimates) -> None:
        """Take in the stages of `other` (a cascade's previous stage's, an ensemble member's)."""
        for key in self.PER_STAGE:
            getattr(self, key).update(getattr(other, key))
        self.voxels = self.voxels or other.voxels

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, content: dict | None) -> Estimates:
        """A record's estimates (an older record's, whose estimates were named `{stage}_mb`, read as none)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (content or {}).items() if key in names})


@dataclass(frozen=True)
class StageRecord:
    """One case's record of one stage. `details` holds what the stage found or wrote (validate: geometry,
    estimates, warnings, files; export: output, export_method; ...); on disk they sit beside the rest."""

    stage: str
    case: str
    status: str
    kind: str | None = None
    message: str = ""
    seconds: float | None = None
    peak_rss_mb: float | None = None
    attempt: str | None = None
    batch: str | None = None
    provenance: str = ""
    reserved_mb: int | None = None
    slurm_job_id: str | None = None
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.seconds is not None:
            object.__setattr__(self, "seconds", round(self.seconds, 3))
        if self.peak_rss_mb is not None:
            object.__setattr__(self, "peak_rss_mb", round(self.peak_rss_mb, 1))

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def estimates(self) -> Estimates:
        """Validate's estimates of the later stages; read them through estimates/stage_needs, which falls back
        to each stage's defaults."""
        return Estimates.from_json(self.details.get("estimates"))

    @property
    def warnings(self) -> list[str]:
        return self.details.get("warnings", [])

    def skipped(self, stage: str) -> StageRecord:
        """The record of a later stage that does not run because this one did not finish the case (a skipped
        one passes on what it was skipped for: the stage that failed)."""
        message = self.message if self.status == SKIPPED else f"not run: {self.stage} {self.status}"
        return replace(self, stage=stage, status=SKIPPED, message=message, seconds=None, peak_rss_mb=None,
                       details={})

    def to_json(self) -> dict:
        content = {k: v for k, v in asdict(self).items() if k != "details"}
        return {**self.details, **content}

    @classmethod
    def from_json(cls, content: dict) -> StageRecord:
        names = {f.name for f in fields(cls)} - {"details"}
        return cls(**{k: v for k, v in content.items() if k in names},
                   details={k: v for k, v in content.items() if k not in names})

    def save(self, path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path) -> StageRecord:
        return cls.from_json(read_json(path))

    @classmethod
    def load_if_present(cls, path) -> StageRecord | None:
        """The record at `path`, or None if it is not there (yet) or was cut short."""
        content = read_json_if_present(path)
        return None if content is None else cls.from_json(content)
