"""Stage records: what happened to one case in one stage, written by the stage whether the case succeeded or
failed. `StageRecord` is the only reader and writer of their JSON (`work/{case}/{attempt}/{stage}.json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .atomic_files import read_json, read_json_if_present, write_json

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"


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
    def estimates(self) -> dict:
        """Validate's memory (`{stage}_mb`) and time (`{stage}_timeout_s`) estimates; read them through
        `resources`, which holds the one default of each."""
        return self.details.get("estimates", {})

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
