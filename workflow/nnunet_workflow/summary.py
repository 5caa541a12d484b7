"""Stage `summary`: one row per case from its stage records: status, failing stage, reason, time, memory, logs."""

from __future__ import annotations

import pandas as pd

from .layout import Layout
from .records import DONE, FAILED, STAGES, atomic_path, read_if_present

PENDING = "pending"
COLUMNS = ["case", "status", "stage", "kind", "message", "output", "log", "batch", "attempt", "warnings"]


def case_row(case: str, attempt: str, layout: Layout) -> dict:
    """The summary row of one case, from the records of its current attempt."""
    row = {"case": case, "status": PENDING, "stage": "", "kind": "", "message": "", "output": "", "batch": "",
           "attempt": attempt, "log": str(layout.log("validate", case, attempt))}
    for stage in STAGES:
        record = read_if_present(layout.record(stage, case, attempt))
        row[f"{stage}_seconds"] = record.get("seconds") if record else None
        row[f"{stage}_peak_mb"] = record.get("peak_rss_mb") if record else None
        row[f"{stage}_slurm_job"] = record.get("slurm_job_id") if record else None
        if stage == "predict" and record:
            row["batch"] = record.get("batch", "")
        if stage == "validate":
            row["warnings"] = "; ".join(record.get("warnings", [])) if record else ""
        if row["status"] != PENDING or record is None:
            continue
        row["log"] = str(layout.log(stage, case, attempt))
        if record["status"] != DONE:
            kind = record.get("kind") or "error"
            row.update(status=FAILED, stage=stage, kind=kind, message=record.get("message", ""))
        else:
            row["stage"] = stage
            if stage == STAGES[-1]:
                row.update(status=DONE, output=record.get("output", ""))
    return row


def write_summary(attempts: dict[str, str], layout: Layout) -> pd.DataFrame:
    """Write `summary.tsv` (atomically) for every case of the run, in case order; returns the table."""
    table = pd.DataFrame([case_row(case, attempts[case], layout) for case in sorted(attempts)])
    table = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    with atomic_path(layout.summary(), suffix=".tsv") as temp:
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
