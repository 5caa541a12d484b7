"""Batch manifests: the output of a stage's job for one batch. A manifest names the stage records of its
cases (it copies none of them) and says how often the job started its worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .atomic_files import read_json, write_json
from .records import FAILED, StageRecord


@dataclass(frozen=True)
class BatchManifest:
    stage: str
    batch: str
    cases: dict[str, str]  # case -> path of its stage record
    worker_starts: int
    pid: int
    # predict's worker loads the model when it starts: one load per worker start
    model_loads: int | None = None
    # the GPU the job claimed for its worker (gpu_slots), where it claims one
    gpu: str | None = None
    # case -> {"kind", "message"}: why its record could not be written (its bookkeeping failed: a full disk, a
    # path the filesystem refuses); the case reads as failed at this stage with that kind and message
    unrecorded: dict[str, dict] | None = None

    def records(self) -> dict[str, StageRecord]:
        """The stage record of each case of the batch, read from where the manifest says; a case whose record
        is not there reads as failed at this stage, with what the job said about it."""
        return {case: StageRecord.load_if_present(path) or self.missing_record(case)
                for case, path in self.cases.items()}

    def missing_record(self, case: str) -> StageRecord:
        said = (self.unrecorded or {}).get(case) or {
            "kind": "error", "message": f"its {self.stage} record {self.cases[case]} is missing"}
        return StageRecord(self.stage, case, FAILED, kind=said["kind"], message=said["message"], batch=self.batch)

    def save(self, path) -> None:
        write_json(path, {k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def load(cls, path) -> BatchManifest:
        return cls(**read_json(path))
