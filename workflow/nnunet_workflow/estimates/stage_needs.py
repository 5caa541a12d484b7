"""What a case needs in each stage: its peak memory and its time limit, from validate's estimates in the case's
validate record (validate's own from the channel files), else the stage's defaults. One line per stage in
STAGE_RESOURCES; the resource policy (planning/resources) and the batch runner both read through here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..inputs.cases import Case
from ..store import stage_names
from ..store.records import StageRecord
from . import memory, timeouts


@dataclass(frozen=True)
class StageResources:
    """base_mb: a stage worker before it reads a case, and the reservation of a case without an estimate
    (one that failed validate is only skipped). setup_s: seconds the worker may need to start (load a model).
    default_timeout_s: a case's time without an estimate. from_geometry: the estimate from the geometry of a
    validate record written before the stage existed (a rerun adding statistics to older results)."""

    base_mb: int
    setup_s: int = 0
    default_timeout_s: int = 600
    from_geometry: Callable[[dict], int] | None = None


def statistics_mb_from_geometry(geometry: dict) -> int:
    return memory.statistics_mb(math.prod(geometry["shape_nnunet"]), geometry["channels"])


def dicom_seg_mb_from_geometry(geometry: dict) -> int:
    return memory.dicom_seg_mb(math.prod(geometry["shape_nnunet"]))


STAGE_RESOURCES = {
    "validate": StageResources(memory.VALIDATE_BASE_MB),
    "preprocess": StageResources(memory.NNUNET_BASE_MB),
    "predict": StageResources(memory.PREDICT_BASE_MB, setup_s=600),
    "export": StageResources(memory.NNUNET_BASE_MB),
    "ensemble": StageResources(memory.NNUNET_BASE_MB),
    "postprocess": StageResources(memory.NNUNET_BASE_MB),
    "statistics": StageResources(memory.VALIDATE_BASE_MB, from_geometry=statistics_mb_from_geometry),
    "dicom_seg": StageResources(memory.VALIDATE_BASE_MB, default_timeout_s=1800,
                                from_geometry=dicom_seg_mb_from_geometry),
}


def stage_resources(stage: str) -> StageResources:
    """A stage's line; a copy (prev_predict, m1_predict) has the line of the stage it copies."""
    return STAGE_RESOURCES[stage_names.kind(stage)]


def estimated_mb(stage: str, case: Case, validated: StageRecord | None) -> int:
    """A case's estimated peak in a stage: validate's from the channel files, the others' from validate."""
    if stage == "validate":
        return memory.validate_memory_mb(case.files())
    estimates = validated.estimates if validated else {}
    if stage_names.memory_key(stage) in estimates:
        return int(estimates[stage_names.memory_key(stage)])
    line, geometry = stage_resources(stage), validated.details.get("geometry") if validated else None
    return line.from_geometry(geometry) if line.from_geometry and geometry else line.base_mb


def estimated_s(stage: str, case: Case, validated: StageRecord | None) -> int:
    """A case's time limit in a stage, found the same way as its memory."""
    if stage == "validate":
        return timeouts.validate_timeout_s(case.files())
    estimates = validated.estimates if validated else {}
    return int(estimates.get(stage_names.timeout_key(stage), stage_resources(stage).default_timeout_s))
