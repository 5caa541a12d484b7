"""Atomic writes: every final file appears by rename only, so a kill at any moment leaves the old file or
the new one, never a partial one; and the JSON reading and writing every record and manifest goes through."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Temporary names start with "." and hold ".part": remove_partial_files finds them by that pattern.
PARTIAL_PATTERN = ".*.part*"


@contextmanager
def atomic_path(final_path, suffix=""):
    """Yield a temporary path beside `final_path`; rename it over `final_path` only if the block succeeds.

    `suffix` keeps the file ending that format-sniffing writers need.
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


def partial_dir(final_path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside `final_path`, named like atomic_path's files (so a run killed meanwhile
    has it removed at the next start), for writers that write several files at once."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{final_path.name}.part.", dir=final_path.parent)


def publish_written(temp_dir: str, final: Path, case_id: str, file_ending: str) -> list[Path]:
    """Move what a writer wrote as `{temp_dir}/case{file_ending}` to `final`, and the other files it wrote
    beside it (Tiff3DIO's case.json) next to `final` first, named after the case; return those others."""
    beside = {final.parent / (case_id + name[len("case"):]): os.path.join(temp_dir, name)
              for name in sorted(os.listdir(temp_dir)) if name.startswith("case.") and name != "case" + file_ending}
    for destination, path in beside.items():
        os.replace(path, destination)
    os.replace(os.path.join(temp_dir, "case" + file_ending), final)
    return list(beside)


def remove_partial_files(folder) -> int:
    """Delete temporary files and folders that a killed writer left behind (never a final path);
    returns how many."""
    removed = 0
    for path in sorted(Path(folder).rglob(PARTIAL_PATTERN), key=lambda p: len(p.parts)):
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


def read_json_if_present(path) -> dict | None:
    """A JSON file's content, or None if it is not there (yet) or was cut short."""
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
