"""What the workflow needs to know about a trained nnU-Net v2 model folder, read from its JSON files only."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

from .checkpoint_info import checkpoint_metadata

MODEL_FOLDER_PATTERN = re.compile(r"^(?P<trainer>.+)__(?P<plans>.+)__(?P<configuration>.+)$")


class ModelError(ValueError):
    """The model folder is not a usable nnU-Net v2 trained-model folder."""


@dataclass(frozen=True)
class ModelInfo:
    """A trained-model folder and the facts the stages check inputs against."""

    folder: Path
    configuration: str
    folds: tuple[str, ...]
    checkpoint: str
    channel_names: tuple[str, ...]
    labels: dict
    file_ending: str
    image_reader_writer: str
    target_spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    transpose_forward: tuple[int, ...]
    num_classes: int
    # whether export can use the memory-bounded streaming export (see streaming_export.supports)
    streaming_export: bool = True
    # whether the logits are resampled by nnU-Net's torch function, a few classes at a time (stages/torch_resampling)
    torch_resampling: bool = False
    # whether preprocess resamples the image on threads (nnU-Net's default preprocessor and resampling: see
    # stages/case_preprocessing.runs_in_parallel)
    parallel_preprocessing: bool = True
    # a cascade stage's previous stage (e.g. its 3d_lowres), whose segmentations it takes as input
    previous_stage: ModelInfo | None = None
    # the configuration's network as plans.json gives it (`network_class_name`, `arch_kwargs`), for the GPU
    # estimate (gpu_memory); None in plans without it
    architecture: dict | None = None

    @property
    def has_regions(self) -> bool:
        """Whether the model is region-based (a label maps to a list of labels)."""
        return has_regions(self.labels)

    @property
    def foreground_labels(self) -> int:
        """Labels other than background and ignore: the one-hot channels a next cascade stage is given."""
        return len([k for k, v in self.labels.items() if k not in ("background", "ignore") and not isinstance(v, list)])

    @property
    def num_input_channels(self) -> int:
        """Channels of the network's input: the images', plus one per foreground label of the previous
        stage's segmentation for a cascade stage (nnU-Net's determine_num_input_channels)."""
        extra = self.previous_stage.foreground_labels if self.previous_stage is not None else 0
        return self.num_channels + extra

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def dimensions(self) -> int:
        """2 or 3: the spatial dimensionality of the configuration's network."""
        return len(self.patch_size)

    def to_json(self) -> dict:
        """Its facts as JSON (saved with the run's setup, which the jobs read instead of the model's files)."""
        content = {f.name: getattr(self, f.name) for f in fields(self)}
        previous = self.previous_stage
        return {**content, "folder": str(self.folder), "previous_stage": previous and previous.to_json()}

    @classmethod
    def from_json(cls, content: dict) -> ModelInfo:
        tuples = ("folds", "channel_names", "target_spacing", "patch_size", "transpose_forward")
        previous = content.get("previous_stage")
        return cls(**{**content, **{key: tuple(content[key]) for key in tuples}, "folder": Path(content["folder"]),
                      "previous_stage": previous and cls.from_json(previous)})


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model folder {path.parent} has no {path.name}") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{path} is not valid JSON: {error}") from None


def _required(content: dict, path: Path, key: str, kind: type, what: str):
    """content[key], refused with a sentence naming the file and the key when missing, empty or of another
    kind (`what`: what nnU-Net expects there)."""
    value = content.get(key)
    if isinstance(value, kind) and (not isinstance(value, (dict, list, str)) or value):
        return value
    found = "has no" if value is None else f"has {value!r} as"
    raise ModelError(f"{path} {found} {key!r}, which must be {what}")


def check_dataset_json(dataset: dict, path: Path) -> None:
    """dataset.json holds what a run reads: the channels, the labels and the file ending."""
    channels = dataset.get("channel_names") if "channel_names" in dataset else dataset.get("modality")
    key = "channel_names" if "channel_names" in dataset or "modality" not in dataset else "modality"
    _required({key: channels}, path, key, dict, 'the input channels by index, e.g. {"0": "CT"}')
    if not all(str(index).isdigit() for index in channels):
        raise ModelError(f"{path}: {key} has keys {sorted(channels)}; they must be channel indices 0, 1, ...")
    _required(dataset, path, "labels", dict, 'the labels by name, e.g. {"background": 0, "liver": 1}')
    _required(dataset, path, "file_ending", str, 'the images\' file ending, e.g. ".nii.gz"')


def check_plans_json(plans: dict, path: Path, configuration: str) -> None:
    """plans.json holds what a run reads: the axis order and the configuration's spacing and patch size."""
    _required(plans, path, "configurations", dict, "the trained configurations by name")
    if configuration not in plans["configurations"]:
        raise ModelError(f"configuration {configuration!r} is not in {path}")
    _required(plans, path, "transpose_forward", list, "the axis order nnU-Net works in, e.g. [0, 1, 2]")
    config = _resolve_configuration(plans, configuration)
    for key in ("spacing", "patch_size"):
        _required(config, path, key, list, f"the configuration {configuration!r}'s {key.replace('_', ' ')}")


def folds_with_checkpoint(folder: Path, checkpoint: str) -> tuple[str, ...]:
    """Every fold folder (`fold_N`, `fold_all`) holding the checkpoint: numbered ones first, in order."""
    folds = [p.name[len("fold_") :] for p in folder.glob("fold_*") if (p / checkpoint).is_file()]
    return tuple(sorted(folds, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else f)))


def default_folds(found: tuple[str, ...]) -> tuple[str, ...]:
    """The folds nnU-Net uses when none are given (its auto-detection): the numbered `fold_N` with the
    checkpoint, never `fold_all`, which is only used when asked for (`folds: all`)."""
    return tuple(f for f in found if f.isdigit())


def has_regions(labels: dict) -> bool:
    """Whether dataset.json's labels define regions (a label maps to a list of labels)."""
    return any(isinstance(v, (list, tuple)) for k, v in labels.items() if k != "ignore")


def count_classes(labels: dict) -> int:
    """Number of output channels: one per label, or one per region for region-based models."""
    if has_regions(labels):
        return len([v for k, v in labels.items() if k not in ("background", "ignore")])
    return len([v for k, v in labels.items() if k != "ignore"])


def model_configuration(folder: Path, checkpoint_path: Path, given: str | None, fallback: str | None = None) -> str:
    """The configuration as nnUNetv2_predict_from_modelfolder finds it: what the (first fold's) checkpoint
    was trained as (`init_args`), else what the folder name `TRAINER__PLANS__CONFIGURATION` says, else
    `fallback`. A given one that disagrees with the checkpoint is refused, naming both."""
    trained_as = checkpoint_metadata(checkpoint_path).get("configuration")
    if given is not None:
        if trained_as is not None and given != trained_as:
            raise ModelError(f"configuration {given!r} was asked for, but {checkpoint_path} was trained as "
                             f"{trained_as!r}; give configuration={trained_as} or leave it out")
        return given
    if trained_as is not None:
        return trained_as
    match = MODEL_FOLDER_PATTERN.match(folder.name)
    if not match and fallback is not None:
        return fallback
    if not match:
        raise ModelError(
            f"cannot tell the configuration from the model folder name {folder.name!r} "
            f"(expected TRAINER__PLANS__CONFIGURATION) nor from {checkpoint_path}; set 'configuration' in the config"
        )
    return match["configuration"]


def previous_stage_folder(folder: Path, plans: dict, previous: str, checkpoint_path: Path) -> Path:
    """Where nnU-Net's layout puts a cascade's previous stage: beside it in the dataset's results folder,
    `TRAINER__PLANS__PREVIOUS`, with the trainer and plans of the cascade's own folder name (else of its
    checkpoint and plans.json)."""
    match = MODEL_FOLDER_PATTERN.match(folder.name)
    if match:
        trainer, plans_name = match["trainer"], match["plans"]
    else:
        trainer = checkpoint_metadata(checkpoint_path).get("trainer_name") or "nnUNetTrainer"
        plans_name = plans.get("plans_name", "nnUNetPlans")
    return folder.parent / f"{trainer}__{plans_name}__{previous}"


def load_previous_stage(folder: Path, plans: dict, configuration: str, previous: str, checkpoint_path: Path,
                        folds, checkpoint: str, given) -> ModelInfo:
    """The model of a cascade stage's previous stage: the folder given, else the one beside it, with the folds
    given (else its own, as nnU-Net's auto-detection finds them); refused with a sentence saying what to give
    when it is missing or is not that configuration."""
    candidate = Path(given).resolve() if given else previous_stage_folder(folder, plans, previous, checkpoint_path)
    if not candidate.is_dir():
        where = f"{candidate} (previous_stage_model) does not exist" if given else \
            f"there is no {candidate.name} beside it in {candidate.parent}"
        raise ModelError(f"configuration {configuration!r} is a cascade stage: each case needs the segmentation of "
                         f"its previous stage {previous!r} first, but {where}; give that model folder as "
                         f"previous_stage_model=PATH (or run another configuration)")
    try:
        model = load_model(candidate, folds, checkpoint, fallback_configuration=previous)
    except ModelError as error:
        raise ModelError(f"previous stage {previous!r} of {configuration!r}: {error}") from None
    if model.configuration != previous:
        raise ModelError(f"{candidate} is configuration {model.configuration!r}, but {configuration!r} needs its "
                         f"previous stage {previous!r}; give that model folder as previous_stage_model=PATH")
    return model


def load_model(folder, folds=None, checkpoint="checkpoint_final.pth", configuration=None,
               previous_stage_model=None, fallback_configuration=None) -> ModelInfo:
    """Read dataset.json and plans.json of a trained-model folder and resolve folds and configuration; a
    cascade stage's previous stage is read too (`previous_stage_model`, else the folder beside it), taken
    to be that configuration where neither its checkpoint nor its name tells (`fallback_configuration`)."""
    given_folds = folds
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    dataset = _read_json(folder / "dataset.json")
    check_dataset_json(dataset, folder / "dataset.json")
    plans = _read_json(folder / "plans.json")
    found = folds_with_checkpoint(folder, checkpoint)
    if folds is None:
        folds = default_folds(found)
        if not folds and "all" in found:
            raise ModelError(f"model folder {folder} has no fold_N folder with {checkpoint}, only fold_all, which "
                             "nnU-Net uses only when asked for: set folds: all")
    folds = tuple(str(f) for f in folds)
    missing = [f for f in folds if f not in found]
    if not folds or missing:
        raise ModelError(
            f"model folder {folder} has no {checkpoint} for fold(s) {', '.join(missing) or 'any'}"
        )
    configuration = model_configuration(folder, folder / f"fold_{folds[0]}" / checkpoint, configuration,
                                        fallback_configuration)
    check_plans_json(plans, folder / "plans.json", configuration)
    config = _resolve_configuration(plans, configuration)
    previous = None
    if config.get("previous_stage"):
        previous = load_previous_stage(folder, plans, configuration, config["previous_stage"],
                                       folder / f"fold_{folds[0]}" / checkpoint, given_folds, checkpoint,
                                       previous_stage_model)
    channels = dataset.get("channel_names") or dataset.get("modality")
    channel_names = tuple(channels[k] for k in sorted(channels, key=int))
    return ModelInfo(
        folder=folder,
        configuration=configuration,
        folds=folds,
        checkpoint=checkpoint,
        channel_names=channel_names,
        labels=dataset["labels"],
        file_ending=dataset["file_ending"],
        image_reader_writer=plans.get("image_reader_writer", "SimpleITKIO"),
        target_spacing=tuple(float(s) for s in config["spacing"]),
        patch_size=tuple(int(s) for s in config["patch_size"]),
        transpose_forward=tuple(plans["transpose_forward"]),
        num_classes=count_classes(dataset["labels"]),
        streaming_export=supports_configuration(config),
        torch_resampling=torch_resampling_configuration(config),
        parallel_preprocessing=(supports_data_configuration(config)
                                and config.get("preprocessor_name", "DefaultPreprocessor") == "DefaultPreprocessor"),
        previous_stage=previous,
        architecture=config.get("architecture"),
    )


# nnU-Net's probability resampling, the one the memory-bounded export reproduces (stages/streaming_export)
NNUNET_RESAMPLING = "resample_data_or_seg_to_shape"
# nnU-Net's torch resampling (its *_torchres planners), which the export calls a few classes at a time
TORCH_RESAMPLING = "resample_torch_fornnunet"


def resampling_kwargs(configuration: dict) -> dict:
    """The probability resampling's keyword arguments from a configuration's dict in plans.json."""
    return dict(configuration.get("resampling_fn_probabilities_kwargs") or {})


def _default_resampling(configuration: dict, which: str, orders) -> bool:
    """Whether the configuration's `resampling_fn_{which}` is nnU-Net's default function on non-segmentation
    values, of a spline order in `orders`, nearest along z on the separate-z path."""
    kwargs = dict(configuration.get(f"resampling_fn_{which}_kwargs") or {})
    return (
        configuration.get(f"resampling_fn_{which}") == NNUNET_RESAMPLING
        and not kwargs.get("is_seg", False)
        and kwargs.get("order", 3) in orders
        and kwargs.get("order_z", 0) == 0
    )


def supports_configuration(configuration: dict) -> bool:
    """Whether the configuration's probability resampling (its dict in plans.json, inheritance applied) is one
    the memory-bounded export reproduces exactly (stages/streaming_export.supports)."""
    return _default_resampling(configuration, "probabilities", (0, 1)) or torch_resampling_configuration(configuration)


def torch_resampling_configuration(configuration: dict) -> bool:
    """Whether the configuration resamples probabilities with nnU-Net's torch function in the modes whose values
    the export reproduces class group by class group (stages/torch_resampling): linear, nearest along z on the
    separate-z path, not as a segmentation, on more than one torch thread."""
    kwargs = resampling_kwargs(configuration)
    return (
        configuration.get("resampling_fn_probabilities") == TORCH_RESAMPLING
        and not kwargs.get("is_seg", False)
        and kwargs.get("mode", "linear") == "linear"
        and kwargs.get("aniso_axis_mode", "nearest-exact") in ("nearest-exact", "nearest")
        and kwargs.get("num_threads", 4) != 1
    )


def supports_data_configuration(configuration: dict) -> bool:
    """Whether the configuration's image resampling (its dict in plans.json) is one the parallel preprocessing
    reproduces exactly (stages/image_resampling): nnU-Net's default function on images, nearest along z."""
    return _default_resampling(configuration, "data", range(6))


def _resolve_configuration(plans: dict, name: str) -> dict:
    """A configuration with its `inherits_from` chain applied, as nnU-Net's PlansManager does."""
    config = dict(plans["configurations"][name])
    parent = config.pop("inherits_from", None)
    if parent is not None:
        return {**_resolve_configuration(plans, parent), **config}
    return config


def nnunet_plans_manager(model: ModelInfo):
    """nnU-Net's plans manager and the dataset.json dict, for what needs no configuration (labels, writer)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    return PlansManager(str(model.folder / "plans.json")), _read_json(model.folder / "dataset.json")


def nnunet_plans(model: ModelInfo):
    """nnU-Net's own plans and configuration managers and the dataset.json dict (imports nnU-Net)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(str(model.folder / "plans.json"))
    configuration_manager = plans_manager.get_configuration(model.configuration)
    return plans_manager, configuration_manager, _read_json(model.folder / "dataset.json")


def _load_member(index: int, folder, folds, checkpoint) -> ModelInfo:
    try:
        return load_model(folder, folds, checkpoint)
    except ModelError as error:
        raise ModelError(f"ensemble member m{index} ({folder}): {error}") from None


def load_members(folders, folds=None, checkpoint="checkpoint_final.pth", configuration=None,
                 previous_stage_model=None) -> tuple[ModelInfo, ...]:
    """The model of a run: one folder, or the members of an ensemble (a list of folders of one dataset, e.g.
    its 2d and 3d_fullres, each with the same folds and checkpoint). Members must agree on what the ensemble
    averages: channels, labels and file ending. A cascade member runs its previous stage (found beside it)
    first; a given configuration or previous_stage_model is refused for an ensemble. A member's error names
    the member."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if len(folders) == 1:
        return (load_model(folders[0], folds, checkpoint, configuration, previous_stage_model),)
    if configuration is not None or previous_stage_model is not None:
        raise ModelError("configuration and previous_stage_model apply to one model; leave them out for an "
                         "ensemble (each member's configuration comes from its own folder)")
    members = tuple(_load_member(index, folder, folds, checkpoint) for index, folder in enumerate(folders))
    first = members[0]
    if len({m.folder for m in members}) < len(members):
        raise ModelError("an ensemble's members must be different model folders")
    for member in members[1:]:
        for fact in ("channel_names", "labels", "file_ending"):
            if getattr(member, fact) != getattr(first, fact):
                raise ModelError(f"ensemble members {first.folder} and {member.folder} differ in {fact} "
                                 f"({getattr(first, fact)} vs {getattr(member, fact)}); nnUNetv2_ensemble averages "
                                 "the probabilities of models of one dataset")
    return members


def describe_run(members: tuple[ModelInfo, ...], postprocessing=None, recommended=None) -> list[str]:
    """The resolved plan of a run, for its first lines: where it comes from (a dataset folder's
    recommendation), the model or each member, folds, postprocessing."""
    def line(model: ModelInfo, name: str) -> str:
        previous = model.previous_stage
        after = f", after its previous stage {previous.configuration} ({previous.folder}, folds " \
                f"{', '.join(previous.folds)})" if previous is not None else ""
        return f"{name}: {model.folder} ({model.configuration}, folds {', '.join(model.folds)}){after}"

    lines = [f"as recommended by {recommended['source']}:"] if recommended else []
    if len(members) == 1:
        lines += [line(members[0], "model")]
    else:
        lines += [f"ensemble of {len(members)} members, probabilities averaged as nnUNetv2_ensemble:"]
        lines += [line(member, f"  m{index}") for index, member in enumerate(members)]
    if postprocessing:
        lines.append(f"postprocessing: {postprocessing}")
    return lines
