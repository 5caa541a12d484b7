"""The run resolved once, by the main Snakemake process: the config with a dataset folder's recommended setup in
place, the models (an ensemble's members, a cascade's previous stage), the postprocessing file checked, the
stages in order and the run key. It is saved when the run starts (`Layout.run_setup`); the jobs (a rule's
script, a cluster job's re-parse of the Snakefile) read it and never read the model's files or resolve the
run again."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..execution.stage import Stage
from ..nnunet.model import ModelInfo, load_members
from ..nnunet.model_checks import check_model_files
from ..nnunet.recommended import apply_recommended
from ..stages.postprocess import check_postprocessing_file
from ..store.atomic_files import read_json, write_json
from .pipeline import AFTER_SEGMENTATION, stages_for
from .provenance import provenance_key


@dataclass(frozen=True)
class RunSetup:
    """config: the run's config, recommended setup applied. members: the model, or an ensemble's members (the
    first stands for the run's channels, labels, file ending and reader). recommended: what was taken from a
    dataset folder's inference_information.json ({} without one)."""

    config: dict
    members: tuple[ModelInfo, ...]
    run_key: str
    recommended: dict = field(default_factory=dict)

    @property
    def model(self) -> ModelInfo:
        return self.members[0]

    @cached_property
    def stages(self) -> dict[str, Stage]:
        """The run's stages by name, in the order a case goes through them."""
        config = self.config
        return stages_for(self.members, bool(config["postprocessing"]),
                          [name for name in AFTER_SEGMENTATION if config[name]])

    @property
    def segmenting_stage(self) -> str:
        """The stage that writes the run's final segmentations: the last one before those that look at them."""
        return [name for name in self.stages if name not in AFTER_SEGMENTATION][-1]

    @property
    def after_segmentation(self) -> tuple[str, ...]:
        """The run's stages that look at the final segmentation (statistics, dicom_seg)."""
        return tuple(name for name in self.stages if name in AFTER_SEGMENTATION)

    def save(self, path) -> None:
        write_json(path, {"config": self.config, "members": [m.to_json() for m in self.members],
                          "run_key": self.run_key, "recommended": self.recommended})

    @classmethod
    def load(cls, path) -> RunSetup:
        content = read_json(path)
        return cls(content["config"], tuple(ModelInfo.from_json(m) for m in content["members"]), content["run_key"],
                   content["recommended"])


def resolve_run(config: dict) -> RunSetup:
    """Resolve a run from its (schema-validated) config; the config gets the recommended setup in place."""
    recommended = apply_recommended(config)
    members = load_members(config["model"], config["folds"], config["checkpoint"], config["configuration"],
                           config["previous_stage_model"])
    check_postprocessing_file(config["postprocessing"])
    check_model_files(members, config["postprocessing"], config["trust_model_code"])
    return RunSetup(dict(config), members, provenance_key(members, config), recommended)
