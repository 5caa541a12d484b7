"""Provenance keys change with the model files and the options that change results, not with the device."""

import os

from nnunet_workflow.model import load_model
from nnunet_workflow.provenance import provenance_key

OPTIONS = {"checkpoint": "checkpoint_final.pth", "step_size": 0.5, "tta": True, "save_probabilities": False,
           "device": "cpu"}


def make_model_folder(tmp_path):
    folder = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights")
    (folder / "dataset.json").write_text('{"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, '
                                         '"file_ending": ".nii.gz"}')
    (folder / "plans.json").write_text('{"transpose_forward": [0, 1, 2], "configurations": {"3d_fullres": '
                                       '{"spacing": [1, 1, 1], "patch_size": [32, 32, 32]}}}')
    return folder


def test_key_follows_model_files_and_options(tmp_path):
    folder = make_model_folder(tmp_path)
    model = load_model(folder)
    key = provenance_key(model, OPTIONS)
    assert provenance_key(model, {**OPTIONS, "device": "cuda"}) == key
    assert provenance_key(model, {**OPTIONS, "step_size": 0.75}) != key
    assert provenance_key(model, {**OPTIONS, "tta": False}) != key
    assert provenance_key(model, {**OPTIONS, "save_probabilities": True}) != key
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(b"retrained weights")
    os.utime(checkpoint, ns=(1, 1))
    assert provenance_key(model, OPTIONS) != key
