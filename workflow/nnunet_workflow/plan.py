"""The run plan: which cases form which predict batch, decided at parse time from file sizes alone."""

from __future__ import annotations

import os

from .cases import Case


def input_bytes(case: Case) -> int:
    """Total size on disk of a case's channel files (missing files count as 0)."""
    return sum(os.path.getsize(p) for p in case.files() if os.path.exists(p))


def plan_batches(cases: dict[str, Case], batch_size: int) -> dict[str, list[str]]:
    """Batches of at most `batch_size` cases, largest inputs first, so similar sizes share a batch.

    Ids are `batch_0000`, ... The order is deterministic (size, then case id), so every re-parse of
    the Snakefile in a job process sees the same batches.
    """
    order = sorted(cases, key=lambda c: (-input_bytes(cases[c]), c))
    return {
        f"batch_{number:04d}": order[start : start + batch_size]
        for number, start in enumerate(range(0, len(order), batch_size))
    }
