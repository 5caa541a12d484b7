"""The run's `statistics.tsv`: one row per case and label from the cases' `statistics` records, and the notes
on label volumes far from the run's (output_checks.volume_outliers), which the summary shows per case."""

from __future__ import annotations

import pandas as pd

from ..store.atomic_files import atomic_path
from ..stages.output_checks import volume_outliers
from ..store.records import StageRecord
from ..stages.statistics import STATISTICS

STATISTICS_STAGE = STATISTICS.name
LEADING_COLUMNS = ["case", "label", "value", "voxels", "volume_ml", "border"]


def statistics_rows(records: dict[str, dict[str, StageRecord]]) -> list[dict]:
    """{case, label, ...} rows of every case whose statistics are done, in case order."""
    rows = []
    for case in sorted(records):
        record = records[case].get(STATISTICS_STAGE)
        if record is not None and record.done:
            rows += [{"case": case, **row} for row in record.details.get("labels", [])]
    return rows


def run_outliers(rows: list[dict]) -> dict[str, list[str]]:
    """{case: notes} on label volumes far from the other cases' of the run (empty labels left out)."""
    volumes: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["voxels"]:
            volumes.setdefault(row["label"], {})[row["case"]] = row["volume_ml"]
    return volume_outliers(volumes)


def write_statistics(rows: list[dict], path) -> pd.DataFrame:
    """Write the rows (atomically) as a TSV; returns the table."""
    table = pd.DataFrame(rows, columns=None if rows else LEADING_COLUMNS)
    table = table[LEADING_COLUMNS + [c for c in table.columns if c not in LEADING_COLUMNS]]
    with atomic_path(path, suffix=".tsv") as temp:
        table.to_csv(temp, sep="\t", index=False, na_rep="")
    return table
