"""Stage records: the JSON file each stage always writes for a case, whether the case succeeded or failed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"

STAGES = ("validate", "preprocess", "predict", "export")


@contextmanager
def atomic_path(final_path, suffix=""):
    """Yield a temporary path beside `final_path`; rename it over `final_path` only if the block succeeds.

    A crash or kill at any moment leaves either the old file or the new one at the final path,
    never a partial one. `suffix` keeps the file ending that format-sniffing writers need.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=f".part{suffix}", dir=final_path.parent)
    os.close(handle)
    try:
        yield Path(temp)
        os.replace(temp, final_path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def remove_partial_files(folder) -> int:
    """Delete temporary files and folders that a killed writer left behind (never a final path);
    returns how many."""
    removed = 0
    for path in sorted(Path(folder).rglob(".*.part*"), key=lambda p: len(p.parts)):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif path.is_file():
            path.unlink()
            removed += 1
    return removed


def write_json(path, content: dict) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(content, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_if_present(path) -> dict | None:
    """A record, or None if it is not there (yet) or was cut short."""
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stage_record(stage, case, status, *, kind=None, message="", seconds=None, peak_rss_mb=None, **extra) -> dict:
    """A stage record: what happened to one case in one stage."""
    return {
        "stage": stage,
        "case": case,
        "status": status,
        "kind": kind,
        "message": message,
        "seconds": None if seconds is None else round(seconds, 3),
        "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1),
        **extra,
    }


def skipped_record(stage, case, upstream: dict) -> dict:
    """Record for a case a stage does not touch because an earlier stage did not finish it."""
    return stage_record(
        stage,
        case,
        SKIPPED,
        kind=upstream.get("kind"),
        message=f"not run: {upstream['stage']} {upstream['status']}",
    )


def is_done(record: dict) -> bool:
    return record.get("status") == DONE
