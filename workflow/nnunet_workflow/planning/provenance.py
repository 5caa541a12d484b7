"""Provenance of a result: what model files, options and input files produced it, as one short key per case,
and a readable provenance file per run key.

A finished case counts as done only while its key matches the current run's: a changed model file or
prediction option (the run key), or a changed input file of the case (its size and mtime, or its content
with `hash_inputs`), makes it stale, so it is recomputed instead of mixed with new results. A case's key is
`{run key}-{inputs key}`; `{results}/provenance/{run key}.json` says what the run key stands for.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path

from ..inputs.cases import Case
from ..inputs.dicom_series import is_series, series_files_on_disk
from ..inputs.image_reading import SIDECAR_READERS, spacing_sidecar
from ..nnunet.model import ModelInfo
from ..store.atomic_files import write_json
from ..store.layout import Layout

# Options that change the segmentation or the files written. `device` is left out: switching
# between CPU and GPU is not treated as a new result (nnU-Net itself is not bit-identical across them).
OPTION_KEYS = ("configuration", "folds", "checkpoint", "step_size", "tta", "save_probabilities", "postprocessing")
# The packages whose versions the provenance file lists.
PACKAGES = ("nnunetv2", "torch", "snakemake", "SimpleITK", "nibabel", "numpy", "scipy")
HASH_BLOCK = 1 << 24


def model_files(model: ModelInfo) -> tuple[list[Path], dict[str, Path]]:
    """A model's files a result depends on: dataset.json and plans.json, and each used fold's checkpoint."""
    return ([model.folder / "dataset.json", model.folder / "plans.json"],
            {fold: model.folder / f"fold_{fold}" / model.checkpoint for fold in model.folds})


def _hash_model(digest, model: ModelInfo) -> None:
    """The json files by content, the checkpoints by size and mtime (hashing them would cost every run seconds)."""
    jsons, checkpoints = model_files(model)
    for path in jsons:
        digest.update(path.read_bytes())
    for fold, path in checkpoints.items():
        stat = path.stat()
        digest.update(f"{fold}:{stat.st_size}:{stat.st_mtime_ns}".encode())


def _members(model) -> tuple[ModelInfo, ...]:
    return (model,) if isinstance(model, ModelInfo) else tuple(model)


def provenance_key(model: ModelInfo | tuple[ModelInfo, ...], config: dict) -> str:
    """The run key: hash of dataset.json and plans.json contents, each used checkpoint's size and mtime, and
    the options (a postprocessing.pkl by its content); for a cascade stage, its previous stage's model files
    too; for an ensemble, every member's, in order."""
    digest = hashlib.sha256()
    members = _members(model)
    for index, member in enumerate(members):
        if index:
            digest.update(f"member {index} {member.folder}".encode())
        _hash_model(digest, member)
        if member.previous_stage is not None:
            digest.update(f"previous stage {member.previous_stage.folder}".encode())
            _hash_model(digest, member.previous_stage)
    if config.get("postprocessing"):
        digest.update(Path(config["postprocessing"]).read_bytes())
    options = {key: config.get(key) for key in OPTION_KEYS if key != "postprocessing"}
    options.update(configuration=members[0].configuration, folds=list(members[0].folds))
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def input_files(case: Case, reader: str = "") -> list[str]:
    """The files a case's result depends on: its channel files (every file of a DICOM series folder), and the
    spacing sidecar of a reader that has one."""
    files = [str(f) for path in case.files() for f in (series_files_on_disk(path) if is_series(path) else [path])]
    if reader in SIDECAR_READERS and case.files():
        files.append(str(spacing_sidecar(case.files()[0])))
    return files


def inputs_key(case: Case, reader: str = "", hash_contents: bool = False) -> str:
    """Hash of a case's input files: each one's name with its size and mtime, or its content's sha256."""
    digest = hashlib.sha256()
    for path in input_files(case, reader):
        digest.update(f"{Path(os.path.realpath(path)).name}:".encode())  # a link: its target's name, as ever
        try:
            if hash_contents:
                digest.update(file_sha256(path).encode())
            else:
                stat = os.stat(path)
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        except FileNotFoundError:
            digest.update(b"missing;")
    return digest.hexdigest()[:12]


def case_provenance(run_key: str, case: Case, reader: str = "", hash_contents: bool = False) -> str:
    """A case's provenance key: `{run key}-{inputs key}`."""
    return f"{run_key}-{inputs_key(case, reader, hash_contents)}"


def run_key_of(case_key: str) -> str:
    return case_key.split("-")[0]


def _package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _model_files_sha256(model: ModelInfo) -> dict:
    jsons, checkpoints = model_files(model)
    return {str(path): file_sha256(path) for path in (*jsons, *checkpoints.values())}


def provenance_record(model: ModelInfo | tuple[ModelInfo, ...], config: dict, run_key: str) -> dict:
    """What a run key stands for: the model files with their sha256, the options, the packages, the host."""
    members = _members(model)
    model = members[0]
    models = [m for member in members for m in (member, member.previous_stage) if m is not None]
    return {
        "run_key": run_key,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": str(model.folder),
        "ensemble": [str(m.folder) for m in members] if len(members) > 1 else None,
        "configuration": model.configuration,
        "folds": list(model.folds),
        "previous_stage_model": None if model.previous_stage is None else str(model.previous_stage.folder),
        "files_sha256": {**{path: digest for m in models for path, digest in _model_files_sha256(m).items()},
                         **({str(Path(config["postprocessing"]).resolve()): file_sha256(config["postprocessing"])}
                            if config.get("postprocessing") else {})},
        "options": {key: config.get(key) for key in (*OPTION_KEYS, "device", "hash_inputs")},
        "versions": _package_versions(),
        "host": platform.node(),
        "input": str(Path(config["input"]).resolve()),
    }


def write_provenance_file(layout: Layout, model: ModelInfo | tuple[ModelInfo, ...], config: dict,
                          run_key: str) -> Path:
    """Write `{results}/provenance/{run key}.json` unless it exists (the first run of a key keeps its date);
    return its path. Hashing the checkpoints happens only then."""
    path = layout.provenance(run_key)
    if not path.is_file():
        write_json(path, provenance_record(model, config, run_key))
    return path
