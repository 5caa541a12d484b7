"""Where every file of a run lives under the results folder; the rules and the stages both use these paths."""

from __future__ import annotations

from pathlib import Path

WORK = "work"
LOGS = "logs"


class Layout:
    """Paths of one results folder. Methods take a case id or batch id; `pattern(...)` forms keep
    Snakemake wildcards such as `{case}` in place."""

    def __init__(self, results):
        self.results = Path(results)

    def case_dir(self, case: str) -> Path:
        return self.results / WORK / case

    def record(self, stage: str, case: str) -> Path:
        return self.case_dir(case) / f"{stage}.json"

    def preprocessed(self, case: str) -> Path:
        return self.case_dir(case) / "preprocessed.npy"

    def properties(self, case: str) -> Path:
        return self.case_dir(case) / "properties.pkl"

    def logits(self, case: str) -> Path:
        return self.case_dir(case) / "logits.npy"

    def batch_record(self, batch: str) -> Path:
        return self.results / WORK / "batches" / f"{batch}.json"

    def log(self, stage: str, name: str) -> Path:
        return self.results / LOGS / stage / f"{name}.log"

    def segmentation(self, case: str, file_ending: str) -> Path:
        return self.results / f"{case}{file_ending}"

    def probabilities(self, case: str) -> tuple[Path, Path]:
        """The `.npz` and `.pkl` files `nnUNetv2_predict --save_probabilities` writes."""
        return self.results / f"{case}.npz", self.results / f"{case}.pkl"

    def summary(self) -> Path:
        return self.results / "summary.tsv"

    def plan(self) -> Path:
        return self.results / WORK / "plan.json"
