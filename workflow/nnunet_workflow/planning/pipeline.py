"""The stages of a run, in order, from the registered stages (`REGISTERED`, one line each).

A cascade stage (3d_cascade_fullres) runs its previous stage (3d_lowres) through copies of preprocess,
predict and export first (`prev_preprocess`, `prev_predict`, `prev_export`); its own preprocess then needs
the previous stage's export of the case. An ensemble runs copies for each member (`m0_preprocess`, `m0_predict`,
`m0_export`: its probabilities, `m1_...`; a cascade member `m1_prev_preprocess`, ... first), then `ensemble`.
With a postprocessing.pkl, `postprocess` follows. With `statistics` on, `statistics` looks at the final
segmentation, and with `dicom_seg` on, `dicom_seg` writes it as DICOM-SEG: a case is segmented without them,
and a rerun that finds a segmentation without them runs them alone (`AFTER_SEGMENTATION`). The run's stages are
resolved once, by the main process (planning/run_setup)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..estimates.stage_needs import StageResources
from ..execution.stage import Stage
from ..inputs.dicom_series import remove_volumes
from ..nnunet.model import ModelInfo
from ..stages.dicom_seg import DICOM_SEG
from ..stages.ensemble import ENSEMBLE
from ..stages.export import EXPORT, EXPORT_MEMBER
from ..stages.postprocess import POSTPROCESS
from ..stages.predict import PREDICT
from ..stages.preprocess import PREPROCESS
from ..stages.statistics import STATISTICS
from ..stages.validate import VALIDATE
from ..store import stage_names
from ..store.records import FAILED

# Every stage by name, as its module makes it: adding a stage is its module, its rule and its line here (and its
# name in store/stage_names.ORDER, which says where in a case's journey it runs).
REGISTERED = {stage.name: stage for stage in (VALIDATE, PREPROCESS, PREDICT, EXPORT, ENSEMBLE, POSTPROCESS, STATISTICS,
                                              DICOM_SEG)}
assert tuple(REGISTERED) == stage_names.ORDER, "store/stage_names.ORDER names every registered stage, in order"
# stages that look at a case's final segmentation: a case is done when it is segmented, and a segmented case
# without their records runs them alone; the config turns each on by its name
AFTER_SEGMENTATION = tuple(name for name, stage in REGISTERED.items() if stage.after_segmentation)


def stage_resources(name: str) -> StageResources:
    """A stage's resources; a copy (prev_predict, m1_predict) has those of the stage it copies."""
    return REGISTERED[stage_names.kind(name)].resources


def model_stages(cascade: bool, member: int | None = None) -> list[Stage]:
    """The stages of one model after validate, each needing the one before: a cascade's previous stage's
    copies first; for an ensemble's member `m{i}_` copies, whose export writes the member's probabilities."""
    chain = [replace(stage, name=stage_names.previous(stage.name), previous=True)
             for stage in (PREPROCESS, PREDICT, EXPORT)] if cascade else []
    chain += [PREPROCESS, PREDICT, EXPORT if member is None else EXPORT_MEMBER]
    stages, needs = [], VALIDATE.name
    for stage in chain:
        name = stage.name if member is None else stage_names.member(member, stage.name)
        stages.append(replace(stage, name=name, needs=needs, member=member))
        needs = name
    return stages


def ensemble_pipeline(cascades: Sequence[bool]) -> tuple[Stage, ...]:
    """validate, each member's stages (`cascades`: whether member i is a cascade stage), then ensemble."""
    stages = [VALIDATE]
    for index, cascade in enumerate(cascades):
        stages += model_stages(cascade, index)
    exports = tuple(stage_names.member(index, EXPORT_MEMBER.name) for index in range(len(cascades)))
    return (*stages, replace(ENSEMBLE, needs=exports))


def pipeline_for(models: ModelInfo | Sequence[ModelInfo], postprocessing: bool = False,
                 after_segmentation: Sequence[str] = ()) -> tuple[Stage, ...]:
    """The stages of a run of one model or an ensemble's members, with a postprocessing.pkl or not, and the stages
    after the segmentation it turns on (`after_segmentation`: names in AFTER_SEGMENTATION), in order. The last
    stage that reads the images removes a case's DICOM series volumes."""
    members = (models,) if isinstance(models, ModelInfo) else tuple(models)
    cascades = [member.previous_stage is not None for member in members]
    stages = ensemble_pipeline(cascades) if len(members) > 1 else (VALIDATE, *model_stages(cascades[0]))
    if postprocessing:
        stages = (*stages, replace(POSTPROCESS, needs=stages[-1].name))
    segmenting = stages[-1].name
    stages = (*stages, *(replace(REGISTERED[name], needs=segmenting) for name in AFTER_SEGMENTATION
                         if name in after_segmentation))
    last_reader = max(index for index, stage in enumerate(stages) if stage.reads_images)
    return tuple(removing_series_volumes(stage, index == last_reader) for index, stage in enumerate(stages))


def removing_series_volumes(stage: Stage, last_reader: bool) -> Stage:
    """A stage that reads a case's images also removes its DICOM series volumes where the case failed in it, and
    the last of them once the case is through it."""
    def after(job, record) -> None:
        if stage.after is not None:
            stage.after(job, record)
        if last_reader or record.status == FAILED:
            remove_volumes(job)

    return replace(stage, after=after)


def stages_for(models: ModelInfo | Sequence[ModelInfo], postprocessing: bool = False,
               after_segmentation: Sequence[str] = ()) -> dict[str, Stage]:
    return {stage.name: stage for stage in pipeline_for(models, postprocessing, after_segmentation)}
