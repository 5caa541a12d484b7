"""A case's estimates of every stage after validate, from its geometry (nnU-Net's axis order) and the run's
models: peak memory (host and GPU) and time limit, a cascade's previous stage's under `prev_` names, an
ensemble's members' under `m{i}_` names (store/stage_names spells them), postprocess's and statistics' when
they run; and the refusal of a case that would need more memory than the largest job allowed."""

from __future__ import annotations

from ..nnunet.model import ModelInfo
from ..store import stage_names
from ..store.failures import CaseError
from . import gpu_memory, memory, timeouts


def check_memory(estimates: dict, max_job_mb: int | None) -> None:
    """Refuse, from the header alone, a case whose estimated peak in some stage exceeds the largest job allowed
    (host memory: the GPU estimates are not held against it)."""
    if not max_job_mb:
        return
    host = [key for key in estimates if key.endswith("_mb") and not gpu_memory.is_gpu_estimate(key)]
    for stage in [key.removesuffix("_mb") for key in host]:
        needed = estimates[f"{stage}_mb"]
        if needed > max_job_mb:
            raise CaseError(
                f"needs an estimated {needed / 1024:.1f} GB in {stage} ({estimates['voxels']:,} voxels), more than "
                f"the largest job allowed ({max_job_mb / 1024:.1f} GB, max_job_mem_mb)",
                kind="out_of_memory",
            )


def stage_keys(estimates: dict, prefix: str) -> dict:
    """A copied stage's estimates (memory, time, network-grid voxels) under its prefixed names."""
    return {prefix + key: value for key, value in estimates.items()
            if key.endswith(("_mb", "_timeout_s")) or key == "voxels_resampled"}


def ensemble_estimates(shape, spacing, channels, bytes_per_voxel, members, save_probabilities=False) -> dict:
    """An ensemble's: each member's stages under `m{i}_` names (its export keeps probabilities; a cascade
    member's previous stage under `m{i}_prev_`), the ensemble's."""
    estimates = {}
    for index, member in enumerate(members):
        own = case_estimates(shape, spacing, channels, bytes_per_voxel, member, True)
        own["export_mb"] = max(own["export_mb"], memory.member_export_mb(own["voxels"], member.num_classes))
        estimates.update(stage_keys(own, stage_names.member_prefix(index)))
        estimates.setdefault("voxels", own["voxels"])
    classes = members[0].num_classes
    estimates["ensemble_mb"] = memory.ensemble_mb(estimates["voxels"], classes)
    estimates["ensemble_timeout_s"] = timeouts.ensemble_timeout_s(estimates["voxels"], classes, len(members),
                                                                save_probabilities)
    return estimates


def case_estimates(shape, spacing, channels, bytes_per_voxel, model: ModelInfo, save_probabilities,
                   postprocessing: bool = False, ensemble=(), statistics: bool = False) -> dict:
    """Memory and time estimates of every later stage of a case; a cascade's previous stage's under
    `prev_` names (its own target spacing and classes); an ensemble's members' under `m{i}_` names and the
    ensemble's; postprocess's and statistics' when they run."""
    if len(ensemble) > 1:
        estimates = ensemble_estimates(shape, spacing, channels, bytes_per_voxel, ensemble, save_probabilities)
    else:
        estimates = memory.stage_estimates(shape, spacing, channels, bytes_per_voxel, model, save_probabilities)
        estimates.update(timeouts.stage_timeouts_s(estimates["voxels"], estimates["voxels_resampled"],
                                                   model.num_input_channels, model.num_classes, len(model.folds)))
        if model.previous_stage is not None:
            previous = case_estimates(shape, spacing, channels, bytes_per_voxel, model.previous_stage, False)
            estimates.update(stage_keys(previous, stage_names.PREVIOUS_PREFIX))
    if postprocessing:
        estimates["postprocess_mb"] = memory.postprocess_mb(estimates["voxels"])
        estimates["postprocess_timeout_s"] = timeouts.postprocess_timeout_s(estimates["voxels"], model.num_classes)
    if statistics:
        estimates["statistics_mb"] = memory.statistics_mb(estimates["voxels"], channels)
        estimates["statistics_timeout_s"] = timeouts.statistics_timeout_s(estimates["voxels"], channels,
                                                                          model.num_classes)
    return estimates
