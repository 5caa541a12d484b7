"""The files `nnUNetv2_predict` leaves in its output folder beside the segmentations: `dataset.json`,
`plans.json` and `predict_from_raw_data_args.json`. With them in `{results}`, nnU-Net's own tools
(`nnUNetv2_apply_postprocessing`, `nnUNetv2_ensemble`, ...) can be pointed at a results folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..store.atomic_files import atomic_path
from ..store.layout import Layout
from .model import ModelInfo


def _json_text(content: dict) -> str:
    return json.dumps(content, indent=4, sort_keys=False, default=str)  # as nnU-Net's save_json writes it


def predict_args(layout: Layout, model: ModelInfo, config: dict) -> dict:
    """nnUNetv2_predict's record of its arguments, with this run's values, and the options it takes from
    its command line besides (folds, checkpoint, step size, mirroring, device) under `workflow_options`.
    A cascade stage's previous stage writes its segmentations to `{results}/{its configuration}`."""
    previous, options = model.previous_stage, {}
    if previous is not None:
        options = {"previous_stage_model": str(previous.folder), "previous_stage_folds": list(previous.folds)}
    return {
        "list_of_lists_or_source_folder": str(Path(config["input"]).resolve()),
        "output_folder_or_list_of_truncated_output_files": str(layout.results.resolve()),
        "save_probabilities": config["save_probabilities"],
        "overwrite": False,
        "num_processes_preprocessing": 1,
        "num_processes_segmentation_export": 1,
        "folder_with_segs_from_prev_stage": None if previous is None else
        str(layout.segmentations(previous.configuration).resolve()),
        "num_parts": 1,
        "part_id": 0,
        "workflow_options": {"model": str(model.folder), "configuration": model.configuration,
                             "folds": list(model.folds), "checkpoint": model.checkpoint,
                             "step_size": config["step_size"], "tta": config["tta"], "device": config["device"],
                             **options},
    }


def write_nnunet_files(layout: Layout, model: ModelInfo, config: dict) -> list[Path]:
    """Write the three files into the results folder (atomically; a file whose content is already the
    same is left alone, mtime included); return their paths."""
    contents = {
        "dataset.json": json.loads((model.folder / "dataset.json").read_text()),
        "plans.json": json.loads((model.folder / "plans.json").read_text()),
        "predict_from_raw_data_args.json": predict_args(layout, model, config),
    }
    paths = []
    for name, content in contents.items():
        path, text = layout.nnunet_file(name), _json_text(content)
        if not path.is_file() or path.read_text() != text:
            with atomic_path(path) as temp:
                temp.write_text(text)
        paths.append(path)
    return paths
