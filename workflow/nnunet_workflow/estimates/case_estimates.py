"""A case's estimates of every stage after validate, from its geometry (nnU-Net's axis order) and the run's
models: peak memory (host and GPU), time limit and disk space written, a cascade's previous stage's under
`prev_` names, an ensemble's members' under `m{i}_` names (store/stage_names spells them), postprocess's and
statistics' when they run; and the refusal of a case that would need more memory than the largest job allowed."""

from __future__ import annotations

from functools import partial

from ..nnunet.model import ModelInfo
from ..store import stage_names
from ..store.failures import CaseError
from ..store.records import Estimates
from . import disk, host_memory, timeouts


def check_memory(estimates: Estimates, max_job_mb: int | None) -> None:
    """Refuse, from the header alone, a case whose estimated peak in some stage exceeds the largest job allowed
    (host memory: the GPU estimates are not held against it)."""
    if not max_job_mb:
        return
    for stage, needed in estimates.memory_mb.items():
        if needed > max_job_mb:
            raise CaseError(
                f"needs an estimated {needed / 1024:.1f} GB in {stage} ({estimates.voxels:,} voxels), more than "
                f"the largest job allowed ({max_job_mb / 1024:.1f} GB, max_job_mem_mb)",
                kind="out_of_memory",
            )


def ensemble_estimates(shape, spacing, channels, bytes_per_voxel, members, save_probabilities=False,
                       predict_on_disk: bool = False) -> Estimates:
    """An ensemble's: each member's stages under `m{i}_` names (its export keeps probabilities; a cascade
    member's previous stage under `m{i}_prev_`), the ensemble's."""
    estimates = Estimates()
    for index, member in enumerate(members):
        own = case_estimates(shape, spacing, channels, bytes_per_voxel, member, True, predict_on_disk=predict_on_disk)
        if not host_memory.streams_probabilities(member):  # nnU-Net's own export of the probabilities
            own.memory_mb["export"] = max(own.memory_mb["export"], host_memory.member_export_mb(own.voxels,
                                                                                              member.num_classes))
        estimates.add(own.renamed(partial(stage_names.member, index)))
    voxels, classes = estimates.voxels, members[0].num_classes
    estimates.memory_mb["ensemble"] = host_memory.ensemble_mb(voxels, classes)
    estimates.timeout_s["ensemble"] = timeouts.ensemble_timeout_s(voxels, classes, len(members), save_probabilities)
    return estimates


def case_estimates(shape, spacing, channels, bytes_per_voxel, model: ModelInfo, save_probabilities,
                   postprocessing: bool = False, ensemble=(), statistics: bool = False,
                   export_threads: int = 1, preprocess_threads: int = 1, predict_on_disk: bool = False) -> Estimates:
    """Memory and time estimates of every later stage of a case; a cascade's previous stage's under
    `prev_` names (its own target spacing and classes); an ensemble's members' under `m{i}_` names and the
    ensemble's; postprocess's and statistics' when they run."""
    if len(ensemble) > 1:
        estimates = ensemble_estimates(shape, spacing, channels, bytes_per_voxel, ensemble, save_probabilities,
                                       predict_on_disk)
    else:
        estimates = host_memory.stage_estimates(shape, spacing, channels, bytes_per_voxel, model, save_probabilities,
                                                export_threads, preprocess_threads, predict_on_disk)
        estimates.disk_mb.update(disk.stage_disk_mb(estimates.voxels, estimates.voxels_resampled["predict"],
                                                    model.num_input_channels, model.num_classes, save_probabilities))
        estimates.timeout_s.update(timeouts.stage_timeouts_s(estimates.voxels, estimates.voxels_resampled["predict"],
                                                             model.num_input_channels, model.num_classes,
                                                             len(model.folds)))
        if model.previous_stage is not None:
            previous = case_estimates(shape, spacing, channels, bytes_per_voxel, model.previous_stage, False,
                                      export_threads=export_threads, preprocess_threads=preprocess_threads,
                                      predict_on_disk=predict_on_disk)
            estimates.add(previous.renamed(stage_names.previous))
    voxels = estimates.voxels
    if postprocessing:
        estimates.memory_mb["postprocess"] = host_memory.postprocess_mb(voxels)
        estimates.timeout_s["postprocess"] = timeouts.postprocess_timeout_s(voxels, model.num_classes)
    if statistics:
        estimates.memory_mb["statistics"] = host_memory.statistics_mb(voxels, channels)
        estimates.timeout_s["statistics"] = timeouts.statistics_timeout_s(voxels, channels, model.num_classes)
    return estimates
