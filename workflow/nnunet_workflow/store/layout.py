"""Where every file of a run lives under the results folder; the rules and the stages both use these paths.

Each case's work sits in one folder per attempt (`work/{case}/a1`, `a2`, ...): a rerun of a failed
case starts a new attempt, so nothing of the failed one is overwritten or reused.

A cascade's previous stage (`member`, its configuration's name, e.g. 3d_lowres) keeps its intermediates in
`work/{case}/a1/{member}/` and its segmentations in `{results}/{member}/`, where the next stage reads them;
an ensemble's members (m0, m1, ...) keep theirs, probabilities included, in `work/{case}/a1/m{i}/`, and a
cascade member's previous stage in `work/{case}/a1/m{i}/3d_lowres/` and `{results}/m{i}/3d_lowres/`.
"""

from __future__ import annotations

from pathlib import Path

# The longest file name a filesystem takes (bytes; a case id is ASCII: inputs/cases).
NAME_MAX = 255
WORK = "work"
LOGS = "logs"
# With postprocessing, export's segmentations go here and the postprocessed ones to {results}.
BEFORE_POSTPROCESSING = "before_postprocessing"


def longest_case_id(file_ending: str) -> int:
    """The longest case id all of whose file names fit NAME_MAX: the longest name this layout makes of a case
    id (its segmentation, DICOM-SEG, logs, series volumes, previews) while it is written under its temporary
    name (atomic_files: `.{name}.XXXXXXXX.part{suffix}`)."""
    longest = max(len(ending) for ending in (file_ending, ".seg.dcm", ".npz", ".pkl", ".png", "_0000.mha",
                                             ".a9999.log"))
    temporary = len("." + ".XXXXXXXX.part") + max(len(file_ending), len(".seg.dcm"))
    return NAME_MAX - longest - temporary


def member_dir(index: int) -> str:
    """The folder of an ensemble member's files (m0, m1, ...)."""
    return f"m{index}"


def previous_stage_dir(member: str, configuration: str) -> str:
    """The folder of the files of a cascade's previous stage (its configuration), within its member's if any."""
    return f"{member}/{configuration}" if member else configuration


class Layout:
    """Paths of one results folder. Arguments may be Snakemake wildcards such as "{case}"."""

    def __init__(self, results):
        self.results = Path(results)

    def case_dir(self, case: str) -> Path:
        return self.results / WORK / case

    def attempt_numbers(self, case: str) -> list[int]:
        """The numbers of a case's attempt folders on disk (`a1` -> 1), in increasing order."""
        return sorted(int(p.name[1:]) for p in self.case_dir(case).glob("a*") if p.name[1:].isdigit())

    def attempt_dir(self, case: str, attempt: str) -> Path:
        return self.case_dir(case) / attempt

    def record(self, stage: str, case: str, attempt: str) -> Path:
        return self.attempt_dir(case, attempt) / f"{stage}.json"

    def preprocessed(self, case: str, attempt: str, member: str = "") -> Path:
        return self.attempt_dir(case, attempt) / member / "preprocessed.npy"

    def properties(self, case: str, attempt: str, member: str = "") -> Path:
        return self.attempt_dir(case, attempt) / member / "properties.pkl"

    def logits(self, case: str, attempt: str, member: str = "") -> Path:
        return self.attempt_dir(case, attempt) / member / "logits.npy"

    def member_probabilities(self, case: str, attempt: str, member: str) -> Path:
        """An ensemble member's probabilities at the original geometry (float32, one channel per class)."""
        return self.attempt_dir(case, attempt) / member / "probabilities.npy"

    def series_dir(self, case: str, attempt: str) -> Path:
        return self.attempt_dir(case, attempt) / "series"

    def series_volume(self, case: str, attempt: str, channel: int) -> Path:
        """A channel given as a DICOM series, written as one volume file for nnU-Net's reader (dicom_series)."""
        return self.series_dir(case, attempt) / f"{case}_{channel:04d}.mha"

    def manifest(self, batch: str, stage: str) -> Path:
        """The manifest of a stage's job for a batch: where its cases' records are, the worker's starts."""
        return self.results / WORK / "batches" / f"{batch}.{stage}.json"

    def log(self, stage: str, name: str, attempt: str | None = None) -> Path:
        """Log of a stage for a case attempt (or a batch, without attempt)."""
        return self.results / LOGS / stage / (f"{name}.{attempt}.log" if attempt else f"{name}.log")

    def segmentations(self, member: str = "") -> Path:
        """The folder of the segmentations (of a cascade's previous stage, `member`: its configuration)."""
        return self.results / member

    def segmentation(self, case: str, file_ending: str, member: str = "") -> Path:
        return self.segmentations(member) / f"{case}{file_ending}"

    def dicom_seg(self, case: str) -> Path:
        """The case's segmentation as a DICOM Segmentation object (stage dicom_seg)."""
        return self.results / f"{case}.seg.dcm"

    def nnunet_file(self, name: str) -> Path:
        """A file nnUNetv2_predict leaves beside its segmentations (dataset.json, plans.json, ...: nnunet_files)."""
        return self.results / name

    def probabilities(self, case: str) -> tuple[Path, Path]:
        """The `.npz` and `.pkl` files `nnUNetv2_predict --save_probabilities` writes."""
        return self.results / f"{case}.npz", self.results / f"{case}.pkl"

    def provenance(self, run_key: str) -> Path:
        """What a run key stands for (model files' sha256, options, versions): see provenance.py."""
        return self.results / "provenance" / f"{run_key}.json"

    def summary(self) -> Path:
        return self.results / "summary.tsv"

    def statistics(self) -> Path:
        """One row per case and label (stage statistics), for the run's cases."""
        return self.results / "statistics.tsv"

    def preview(self, case: str) -> Path:
        return self.results / "qc" / f"{case}.png"

    def progress(self) -> Path:
        """Cases done, failed and left, and the time left, rewritten as the run's last stage's batches finish."""
        return self.results / "progress.txt"

    def report(self) -> Path:
        return self.results / "report.html"

    def thumbnails(self) -> Path:
        """The previews scaled down for report.html and `snakemake --report` (rewritten with the report)."""
        return self.results / "report" / "thumbnails"

    def plan(self) -> Path:
        return self.results / WORK / "plan.json"

    def run_setup(self) -> Path:
        """The run as the main process resolved it (planning/run_setup), which the jobs read."""
        return self.results / WORK / "run_setup.json"

    def gpu_locks(self) -> Path:
        """One lock file per GPU, held by the predict job using it (gpu_slots)."""
        return self.results / WORK / "gpus"

    def run_lock(self) -> Path:
        return self.results / WORK / "run.lock"
