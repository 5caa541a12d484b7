"""The run's summary table (rule `summary`, after every stage): one row per case from its stage records: status, failing stage, reason, time, memory, logs,
and the plausibility notes on its input and output; with statistics, the run's `statistics.tsv` too.

It reads what its rule declares: the manifests of the run's batch jobs (which name their cases' records)
and the records of the cases finished in earlier runs. A case's status is its segmentation's; a stage after it
(statistics) has a column of its own."""

from __future__ import annotations

import pandas as pd

from ..store.atomic_files import atomic_path
from ..store.layout import Layout
from ..store.manifest import BatchManifest
from ..planning.pipeline import AFTER_SEGMENTATION
from ..store import stage_names
from ..planning.provenance import run_key_of
from ..store.records import DONE, FAILED, StageRecord
from .statistics_table import STATISTICS_STAGE, run_outliers, statistics_rows, write_statistics

PENDING = "pending"
COLUMNS = ["case", "status", "stage", "kind", "message", "output", "log", "batch", "attempt", "warnings",
           "plausibility", "preview", "provenance"]


def collect_records(manifest_paths, record_paths) -> dict[str, dict[str, StageRecord]]:
    """{case: {stage: record}} from batch manifests and from record files."""
    records: dict[str, dict[str, StageRecord]] = {}
    from_manifests = [r for manifest in manifest_paths for r in BatchManifest.load(manifest).records().values()]
    for record in [*from_manifests, *map(StageRecord.load, record_paths)]:
        records.setdefault(record.case, {})[record.stage] = record
    return records


def outcome(record: StageRecord | None) -> str:
    """A stage after the segmentation in a word or a sentence: done, failed (why), skipped, '' (not run), or what
    the stage said instead of done (dicom_seg of a case without a DICOM series: none: ...)."""
    if record is None:
        return ""
    if record.status == FAILED:
        return f"{FAILED}: {record.kind or 'error'}: {record.message}"
    return record.details.get("outcome", record.status) if record.done else record.status


def plausibility_notes(records: dict[str, StageRecord], run_notes=()) -> list[str]:
    """What validate found implausible in the input, and the statistics in the output (with the run's notes on
    the case's volumes)."""
    validated, statistics = records.get("validate"), records.get(STATISTICS_STAGE)
    notes = [f"input: {note}" for note in (validated.details.get("plausibility", []) if validated else [])]
    output = [*(statistics.details.get("output_notes", []) if statistics and statistics.done else []), *run_notes]
    return notes + [f"output: {note}" for note in output]


# the stages of a run of one model without postprocessing or statistics (a summary's default)
ONE_MODEL = ("validate", *stage_names.MODEL_CHAIN)


def case_row(case: str, attempt: str, records: dict[str, StageRecord], layout: Layout,
             stages=ONE_MODEL, run_notes=()) -> dict:
    """The summary row of one case, from the records of its current attempt through the run's stages."""
    row = {"case": case, "status": PENDING, "stage": "", "kind": "", "message": "", "output": "", "batch": "",
           "attempt": attempt, "log": str(layout.log("validate", case, attempt)), "provenance": "", "preview": "",
           "plausibility": "; ".join(plausibility_notes(records, run_notes)), "warnings": ""}
    segmenting = [stage for stage in stages if stage not in AFTER_SEGMENTATION]
    for stage in stages:
        record = records.get(stage)
        row[f"{stage}_seconds"] = record.seconds if record else None
        row[f"{stage}_peak_mb"] = record.peak_rss_mb if record else None
        row[f"{stage}_slurm_job"] = record.slurm_job_id if record else None
        if record is not None and "gpu_peak_mb" in record.details:  # predict on a GPU, and its estimate of it
            row[f"{stage}_gpu_peak_mb"] = record.details["gpu_peak_mb"]
            row[f"{stage}_gpu_estimate_mb"] = record.details.get("gpu_estimate_mb")
        if stage in AFTER_SEGMENTATION:
            row[stage] = outcome(record)
            if record is not None and record.done and "preview" in record.details:
                row["preview"] = record.details["preview"]
            continue
        if stage == "predict" and record:
            row["batch"] = record.batch or ""
        if record is not None and record.warnings:  # validate's, and e.g. predict's after a GPU retry
            row["warnings"] = "; ".join(filter(None, (row.get("warnings"), *record.warnings)))
        if row["status"] != PENDING or record is None:
            continue
        row["log"] = str(layout.log(stage, case, attempt))
        if not record.done:
            row.update(status=FAILED, stage=stage, kind=record.kind or "error", message=record.message)
        else:
            row["stage"] = stage
            if stage == segmenting[-1]:
                provenance = layout.provenance(run_key_of(record.provenance)) if record.provenance else ""
                row.update(status=DONE, output=record.details.get("output", ""), provenance=str(provenance))
    return row


def write_summary(attempts: dict[str, str], records: dict[str, dict[str, StageRecord]], layout: Layout,
                  path=None, stages=ONE_MODEL, statistics_path=None) -> pd.DataFrame:
    """Write `summary.tsv` (atomically) for every case of the run, in case order, and with `statistics_path`
    the run's statistics table there; returns the summary table."""
    run_records = {case: records.get(case, {}) for case in attempts}
    label_rows = statistics_rows(run_records)
    outliers = run_outliers(label_rows)
    if statistics_path:
        write_statistics(label_rows, statistics_path)
    rows = [case_row(case, attempts[case], run_records[case], layout, stages, outliers.get(case, ()))
            for case in sorted(attempts)]
    table = pd.DataFrame(rows)
    table = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    with atomic_path(path or layout.summary(), suffix=".tsv") as temp:
        table.to_csv(temp, sep="\t", index=False)
    return table


def brief(table: pd.DataFrame, summary_path) -> str:
    """A few lines for the terminal: counts per status and one line per failed case."""
    counts = table["status"].value_counts()
    lines = [
        f"{len(table)} cases: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in (DONE, FAILED, PENDING)),
        f"summary: {summary_path}",
    ]
    for row in table[table["status"] == FAILED].itertuples():
        lines.append(f"  {row.case}: {row.stage} {row.kind}: {row.message}")
    return "\n".join(lines)


def print_brief(summary_path) -> None:
    """Print the brief of an existing summary table (at the end of a run); silent if there is none."""
    try:
        table = pd.read_csv(summary_path, sep="\t", keep_default_na=False)
    except FileNotFoundError:
        return
    print(brief(table, summary_path))
