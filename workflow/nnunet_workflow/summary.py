"""Stage `summary`: one row per case from its stage records: status, failing stage, reason, time, memory, logs."""

from __future__ import annotations

import json

import pandas as pd

from .layout import Layout
from .records import DONE, FAILED, STAGES, atomic_path, read_json

PENDING = "pending"
COLUMNS = ["case", "status", "stage", "kind", "message", "output", "log", "batch"]


def _record(layout: Layout, stage: str, case: str, batch: str | None) -> dict | None:
    """The stage record of a case, or None if the stage has not run for it yet."""
    try:
        if stage == "predict":
            return read_json(layout.batch_record(batch))["cases"].get(case) if batch else None
        return read_json(layout.record(stage, case))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def case_row(case: str, batch: str | None, layout: Layout) -> dict:
    """The summary row of one case."""
    row = {"case": case, "status": PENDING, "stage": "", "kind": "", "message": "", "output": "", "batch": batch or ""}
    logs = {stage: layout.log(stage, batch if stage == "predict" else case) for stage in STAGES}
    row["log"] = str(logs["validate"])
    for stage in STAGES:
        record = _record(layout, stage, case, batch)
        row[f"{stage}_seconds"] = record.get("seconds") if record else None
        row[f"{stage}_peak_mb"] = record.get("peak_rss_mb") if record else None
        if row["status"] != PENDING or record is None:
            continue
        row["log"] = str(logs[stage])
        if record["status"] == FAILED:
            row.update(status=FAILED, stage=stage, kind=record.get("kind") or "error", message=record.get("message", ""))
        elif record["status"] != DONE:
            row.update(status=record["status"], stage=stage, kind=record.get("kind") or "", message=record.get("message", ""))
        else:
            row["stage"] = stage
            if stage == STAGES[-1]:
                row.update(status=DONE, output=record.get("output", ""))
    return row


def write_summary(batches: dict[str, list[str]], layout: Layout) -> pd.DataFrame:
    """Write `summary.tsv` (atomically) for every case of the run, in case order; returns the table."""
    batch_of = {case: batch for batch, cases in batches.items() for case in cases}
    rows = [case_row(case, batch_of[case], layout) for case in sorted(batch_of)]
    table = pd.DataFrame(rows)
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
