"""The stages every case goes through, in order: the one list that the rules' entry point, the plan, the
summary and the resource policy share. A new per-case stage is one line here.

A cascade stage (3d_cascade_fullres) runs its previous stage (3d_lowres) through copies of preprocess,
predict and export first (`prev_preprocess`, `prev_predict`, `prev_export`); its own preprocess then needs
the previous stage's export of the case. An ensemble runs copies for each member (`m0_preprocess`, `m0_predict`,
`m0_export`: its probabilities, `m1_...`), then `ensemble`. With a postprocessing.pkl, `postprocess` follows."""

from __future__ import annotations

from dataclasses import replace

from .ensemble import ENSEMBLE
from .export import EXPORT, EXPORT_MEMBER
from .model import ModelInfo
from .postprocess import POSTPROCESS
from .predict import PREDICT
from .preprocess import PREPROCESS
from .stage import PREVIOUS_PREFIX, Stage, member_stage
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
# the members an ensemble may have (stage names m0_... to m{N-1}_... are known to the plan)
MAX_MEMBERS = 16


def ensemble_pipeline(members: int) -> tuple[Stage, ...]:
    """validate, each member's preprocess, predict and export (of its probabilities), then ensemble."""
    stages = [VALIDATE]
    for index in range(members):
        for stage in (PREPROCESS, PREDICT, EXPORT_MEMBER):
            needs = stage.needs if stage.needs == VALIDATE.name else member_stage(index, stage.needs)
            stages.append(replace(stage, name=member_stage(index, stage.name), member=index, needs=needs))
    exports = tuple(member_stage(index, EXPORT_MEMBER.name) for index in range(members))
    return (*stages, replace(ENSEMBLE, needs=exports))


# every stage name a record may have, in the order a case goes through them
ALL_STAGE_NAMES = tuple(dict.fromkeys((*(stage.name for stage in CASCADE_PIPELINE),
                                       *(stage.name for stage in ensemble_pipeline(MAX_MEMBERS)), POSTPROCESS.name)))


def pipeline_for(model: ModelInfo, postprocessing: bool = False, members: int = 1) -> tuple[Stage, ...]:
    """The stages of a run of this model (or an ensemble of `members` models), with a postprocessing.pkl or
    not, in order."""
    if members > 1:
        stages = ensemble_pipeline(members)
    else:
        stages = CASCADE_PIPELINE if model.previous_stage is not None else PIPELINE
    if postprocessing:
        stages = (*stages, replace(POSTPROCESS, needs=stages[-1].name))
    return stages


def stages_for(model: ModelInfo, postprocessing: bool = False, members: int = 1) -> dict[str, Stage]:
    return {stage.name: stage for stage in pipeline_for(model, postprocessing, members)}


def stage_names_for(model: ModelInfo, postprocessing: bool = False, members: int = 1) -> tuple[str, ...]:
    return tuple(stage.name for stage in pipeline_for(model, postprocessing, members))
