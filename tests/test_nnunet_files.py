"""The files nnUNetv2_predict leaves beside its segmentations, written into the results folder."""

import json

from test_model import model_folder

from nnunet_workflow.nnunet.model import load_model
from nnunet_workflow.nnunet.nnunet_files import write_nnunet_files
from nnunet_workflow.store.layout import Layout

CONFIG = {"input": "/data/in", "results": "/data/out", "save_probabilities": False, "step_size": 0.5, "tta": True,
          "device": "cpu"}


def test_the_model_files_and_the_arguments_land_in_results_and_are_rewritten_only_when_they_change(tmp_path):
    model = load_model(model_folder(tmp_path))
    layout = Layout(tmp_path / "results")
    paths = write_nnunet_files(layout, model, CONFIG)
    assert [p.name for p in paths] == ["dataset.json", "plans.json", "predict_from_raw_data_args.json"]
    assert json.loads(paths[0].read_text()) == json.loads((model.folder / "dataset.json").read_text())
    assert json.loads(paths[1].read_text()) == json.loads((model.folder / "plans.json").read_text())
    arguments = json.loads(paths[2].read_text())
    assert arguments["save_probabilities"] is False and arguments["folder_with_segs_from_prev_stage"] is None
    assert arguments["workflow_options"]["folds"] == ["0", "1"]
    mtimes = [p.stat().st_mtime_ns for p in paths]
    write_nnunet_files(layout, model, CONFIG)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    write_nnunet_files(layout, model, {**CONFIG, "save_probabilities": True})
    assert json.loads(paths[2].read_text())["save_probabilities"] is True
    assert [p.stat().st_mtime_ns for p in paths[:2]] == mtimes[:2]
