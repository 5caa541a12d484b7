"""What a case needs in each stage: its peak memory and its time limit, from validate's estimates in the case's
validate record (validate's own from the channel files), else the stage's defaults (its `StageResources`, which
each stage module gives its `Stage`). The resource policy (planning/resources) and the batch runner both read
through here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..inputs.cases import Case
from ..store.records import StageRecord
from . import host_memory, timeouts


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
    return host_memory.statistics_mb(math.prod(geometry["shape_nnunet"]), geometry["channels"])


def dicom_seg_mb_from_geometry(geometry: dict) -> int:
    return host_memory.dicom_seg_mb(math.prod(geometry["shape_nnunet"]))


# a worker that imports nnU-Net and torch (preprocess, export, ensemble, postprocess)
NNUNET_WORKER = StageResources(host_memory.NNUNET_BASE_MB)


def estimated_mb(stage: str, resources: StageResources, case: Case, validated: StageRecord | None) -> int:
    """A case's estimated peak in a stage (with the stage's `resources`): validate's from the channel files, the
    others' from validate."""
    if stage == "validate":
        return host_memory.validate_memory_mb(case.files())
    estimates = validated.estimates.memory_mb if validated else {}
    if stage in estimates:
        return int(estimates[stage])
    geometry = validated.details.get("geometry") if validated else None
    return resources.from_geometry(geometry) if resources.from_geometry and geometry else resources.base_mb


def estimated_s(stage: str, resources: StageResources, case: Case, validated: StageRecord | None) -> int:
    """A case's time limit in a stage, found the same way as its memory."""
    if stage == "validate":
        return timeouts.validate_timeout_s(case.files())
    estimates = validated.estimates.timeout_s if validated else {}
    return int(estimates.get(stage, resources.default_timeout_s))
