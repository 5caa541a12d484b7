"""Case discovery: which cases exist and which file holds each of their channels."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..store.layout import longest_case_id

CHANNEL_FILE_PATTERN = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\..+)$")
# A channel given as a DICOM series: a folder CASE_XXXX holding the series' slice files.
SERIES_FOLDER_PATTERN = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
CASE_COLUMN = "case"
# What a case id may be: it names the case's folders and files, so letters, digits (any script's) and a few
# characters that mean nothing to a shell, a TSV or a path, starting with a letter, digit or underscore (never
# "." or "..", never a hidden or option-like name), and no longer than every name made of it can take.
CASE_ID_PUNCTUATION = " ._+=,@()-"
# how many refused ids an error lists
LISTED = 20


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


def _allowed(character: str) -> bool:
    return character.isalnum() or character in CASE_ID_PUNCTUATION


def case_id_problem(case_id: str, file_ending: str = ".nii.gz") -> str | None:
    """Why a case id cannot be used (None if it can): a character that is not a letter, a digit or one of
    CASE_ID_PUNCTUATION, a first one that is not a letter, digit or underscore (`.`, `..`, `-rf`), a space at
    either end, or more bytes than its longest file name (with the model's file ending) allows."""
    if not case_id:
        return "it is empty"
    longest, size = longest_case_id(file_ending), len(case_id.encode("utf-8"))
    if size > longest:
        return f"it has {size} bytes, more than the {longest} its file names can take"
    odd = sorted({c for c in case_id if not _allowed(c)})
    if odd:
        return (f"it holds the character(s) {', '.join(map(repr, odd))}; a case id holds letters, digits and "
                f"{CASE_ID_PUNCTUATION.strip()} and spaces")
    if case_id != case_id.strip():
        return "it begins or ends with a space"
    if not (case_id[0].isalnum() or case_id[0] == "_"):
        return f"it starts with {case_id[0]!r}; a case id starts with a letter, a digit or an underscore"
    return None


def _shown(case_id: str) -> str:
    """A case id as a message shows it: quoted, a long one cut after 40 characters."""
    return repr(case_id) if len(case_id) <= 60 else f"{case_id[:40]!r}..."


def _refuse_ids(problems: list[str], source) -> None:
    if problems:
        more = f"\n  ... and {len(problems) - LISTED} more" if len(problems) > LISTED else ""
        raise InputError(f"input {source} has {len(problems)} case id(s) that cannot name files:\n  "
                         + "\n  ".join(problems[:LISTED]) + more)


def discover_cases(source, channel_names, file_ending: str = ".nii.gz") -> dict[str, Case]:
    """Cases of a folder in nnU-Net naming or of a sample sheet (a .tsv file), sorted by id; refused, each
    bad one named with its file or sheet line, when any case id cannot name the files made for it
    (`file_ending`: the model's)."""
    source = Path(source)
    if source.is_dir():
        cases = cases_from_folder(source, file_ending)
    elif source.is_file():
        cases = cases_from_sample_sheet(source, channel_names, file_ending)
    else:
        raise InputError(f"input {source} is neither a folder nor a sample sheet file")
    if not cases:
        raise InputError(
            f"input {source} holds no cases (expected files named CASE_XXXX.ext, e.g. case1_0000.nii.gz)"
        )
    return dict(sorted(cases.items()))


def cases_from_folder(folder: Path, file_ending: str = ".nii.gz") -> dict[str, Case]:
    """Group `CASE_XXXX.ext` files (and `CASE_XXXX` folders of a DICOM series) of a folder by case; other files
    are not cases and are left alone."""
    cases: dict[str, Case] = {}
    problems: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        match = (SERIES_FOLDER_PATTERN if path.is_dir() else CHANNEL_FILE_PATTERN).fullmatch(path.name)
        if path.name.startswith(".") or not match:
            continue
        problem = case_id_problem(match["case"], file_ending)
        if problem:
            problems.setdefault(match["case"], f"{path}: case id {_shown(match['case'])}: {problem}")
            continue
        case = cases.setdefault(match["case"], Case(match["case"]))
        case.channels[int(match["channel"])] = given_path(path)
    _refuse_ids(list(problems.values()), folder)
    return cases


def given_path(path: Path) -> str:
    """A channel's path as given, made absolute without following links (a link is named as itself in
    messages; the readers follow it)."""
    return os.path.abspath(path)


def _channel_index(column: str, channel_names) -> int:
    if re.fullmatch(r"\d{4}", column):
        return int(column)
    if column in channel_names:
        return list(channel_names).index(column)
    raise InputError(
        f"sample sheet column {column!r} is neither '{CASE_COLUMN}', a channel name of the model "
        f"({', '.join(channel_names)}) nor a 4-digit channel index"
    )


def cases_from_sample_sheet(sheet: Path, channel_names, file_ending: str = ".nii.gz") -> dict[str, Case]:
    """Cases of a TSV with a `case` column and one column per channel (named as the model's channels
    or by 4-digit index): an image file or a folder of one DICOM series; relative paths are relative to the
    sheet's folder; empty cells are missing files."""
    with open(sheet, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = [(reader.line_num, row) for row in reader]  # the sheet line each row ends on
    if not rows or CASE_COLUMN not in rows[0][1]:
        raise InputError(f"sample sheet {sheet} has no '{CASE_COLUMN}' column")
    columns = {c: _channel_index(c, channel_names) for c in rows[0][1] if c != CASE_COLUMN}
    cases: dict[str, Case] = {}
    problems = []
    for line, row in rows:
        case_id = (row[CASE_COLUMN] or "").strip(" ")
        problem = case_id_problem(case_id, file_ending)
        if problem:
            problems.append(f"sample sheet {sheet} line {line}: case id {_shown(case_id)}: {problem}")
            continue
        if case_id in cases:
            raise InputError(f"sample sheet {sheet} line {line}: case {case_id!r} appears twice")
        channels = {
            index: given_path(sheet.parent / row[column].strip())
            for column, index in columns.items()
            if (row[column] or "").strip()
        }
        cases[case_id] = Case(case_id, channels)
    _refuse_ids(problems, sheet)
    return cases
