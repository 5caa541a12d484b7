"""The stages every case goes through, in order: the one list that the rules' entry point, the plan, the
summary and the resource policy share. A new per-case stage is one line here.

A cascade stage (3d_cascade_fullres) runs its previous stage (3d_lowres) through copies of preprocess,
predict and export first (`prev_preprocess`, `prev_predict`, `prev_export`); its own preprocess then needs
the previous stage's export of the case. With a postprocessing.pkl, `postprocess` follows export."""

from __future__ import annotations

from dataclasses import replace

from .export import EXPORT
from .model import ModelInfo
from .postprocess import POSTPROCESS
from .predict import PREDICT
from .preprocess import PREPROCESS
from .stage import PREVIOUS_PREFIX, Stage
from .validate import VALIDATE

PIPELINE = (VALIDATE, PREPROCESS, PREDICT, EXPORT)
STAGES = {stage.name: stage for stage in PIPELINE}
STAGE_NAMES = tuple(STAGES)
PREVIOUS_STAGES = tuple(
    replace(stage, name=PREVIOUS_PREFIX + stage.name, previous=True,
            needs=stage.needs if stage.needs == VALIDATE.name else PREVIOUS_PREFIX + stage.needs)
    for stage in PIPELINE[1:]
)
CASCADE_PIPELINE = (VALIDATE, *PREVIOUS_STAGES, replace(PREPROCESS, needs=PREVIOUS_STAGES[-1].name), PREDICT, EXPORT)
# every stage name a record may have, in the order a case goes through them
ALL_STAGE_NAMES = (*(stage.name for stage in CASCADE_PIPELINE), POSTPROCESS.name)


def pipeline_for(model: ModelInfo, postprocessing: bool = False) -> tuple[Stage, ...]:
    """The stages of a run of this model (with a postprocessing.pkl or not), in order."""
    stages = CASCADE_PIPELINE if model.previous_stage is not None else PIPELINE
    return (*stages, POSTPROCESS) if postprocessing else stages


def stages_for(model: ModelInfo, postprocessing: bool = False) -> dict[str, Stage]:
    return {stage.name: stage for stage in pipeline_for(model, postprocessing)}


def stage_names_for(model: ModelInfo, postprocessing: bool = False) -> tuple[str, ...]:
    return tuple(stage.name for stage in pipeline_for(model, postprocessing))
