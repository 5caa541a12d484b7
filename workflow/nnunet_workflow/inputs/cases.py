"""Case discovery: which cases exist and which file holds each of their channels."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

CHANNEL_FILE_PATTERN = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\..+)$")
# A channel given as a DICOM series: a folder CASE_XXXX holding the series' slice files.
SERIES_FOLDER_PATTERN = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
CASE_COLUMN = "case"


class InputError(ValueError):
    """The input folder or sample sheet cannot be read as a set of cases."""


@dataclass(frozen=True)
class Case:
    """One case: its id and its channel files by channel index (as found, not yet checked)."""

    id: str
    channels: dict[int, str] = field(default_factory=dict)

    def files(self) -> list[str]:
        """The channel files in channel order."""
        return [self.channels[index] for index in sorted(self.channels)]


def discover_cases(source, channel_names) -> dict[str, Case]:
    """Cases of a folder in nnU-Net naming or of a sample sheet (a .tsv file), sorted by id."""
    source = Path(source)
    if source.is_dir():
        cases = cases_from_folder(source)
    elif source.is_file():
        cases = cases_from_sample_sheet(source, channel_names)
    else:
        raise InputError(f"input {source} is neither a folder nor a sample sheet file")
    if not cases:
        raise InputError(
            f"input {source} holds no cases (expected files named CASE_XXXX.ext, e.g. case1_0000.nii.gz)"
        )
    return dict(sorted(cases.items()))


def cases_from_folder(folder: Path) -> dict[str, Case]:
    """Group `CASE_XXXX.ext` files (and `CASE_XXXX` folders of a DICOM series) of a folder by case; other files
    are not cases and are left alone."""
    cases: dict[str, Case] = {}
    for path in sorted(folder.iterdir()):
        match = (SERIES_FOLDER_PATTERN if path.is_dir() else CHANNEL_FILE_PATTERN).match(path.name)
        if path.name.startswith(".") or not match:
            continue
        case = cases.setdefault(match["case"], Case(match["case"]))
        case.channels[int(match["channel"])] = str(path.resolve())
    return cases


def _channel_index(column: str, channel_names) -> int:
    if re.fullmatch(r"\d{4}", column):
        return int(column)
    if column in channel_names:
        return list(channel_names).index(column)
    raise InputError(
        f"sample sheet column {column!r} is neither '{CASE_COLUMN}', a channel name of the model "
        f"({', '.join(channel_names)}) nor a 4-digit channel index"
    )


def cases_from_sample_sheet(sheet: Path, channel_names) -> dict[str, Case]:
    """Cases of a TSV with a `case` column and one column per channel (named as the model's channels
    or by 4-digit index): an image file or a folder of one DICOM series; relative paths are relative to the
    sheet's folder; empty cells are missing files."""
    with open(sheet, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or CASE_COLUMN not in rows[0]:
        raise InputError(f"sample sheet {sheet} has no '{CASE_COLUMN}' column")
    columns = {c: _channel_index(c, channel_names) for c in rows[0] if c != CASE_COLUMN}
    cases: dict[str, Case] = {}
    for line, row in enumerate(rows, start=2):
        case_id = (row[CASE_COLUMN] or "").strip()
        if not case_id or "/" in case_id:
            raise InputError(f"sample sheet {sheet} line {line}: invalid case id {case_id!r}")
        if case_id in cases:
            raise InputError(f"sample sheet {sheet} line {line}: case {case_id!r} appears twice")
        channels = {
            index: str((sheet.parent / row[column].strip()).resolve())
            for column, index in columns.items()
            if (row[column] or "").strip()
        }
        cases[case_id] = Case(case_id, channels)
    return cases
