"""Provenance keys change with the model files and the options that change results, not with the device."""

import os

from nnunet_workflow.nnunet.model import load_model
from nnunet_workflow.planning.provenance import provenance_key

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


def test_a_case_key_follows_its_input_files_by_size_and_mtime_or_by_content(tmp_path):
    from nnunet_workflow.inputs.cases import Case
    from nnunet_workflow.planning.provenance import case_provenance, run_key_of

    image = tmp_path / "c1_0000.tif"
    image.write_bytes(b"voxels")
    case = Case("c1", {0: str(image)})
    key = case_provenance("run1", case)
    assert run_key_of(key) == "run1" and key.startswith("run1-")
    assert case_provenance("run2", case) != key  # another model or option
    os.utime(image, ns=(5, 5))
    assert case_provenance("run1", case) != key  # same bytes, touched: stale by mtime
    hashed = case_provenance("run1", case, hash_contents=True)
    os.utime(image, ns=(7, 7))
    assert case_provenance("run1", case, hash_contents=True) == hashed  # by content: a touch is no change
    image.write_bytes(b"other voxels")
    assert case_provenance("run1", case, hash_contents=True) != hashed
    # Tiff3DIO's spacing sidecar is an input too
    tiff_key = case_provenance("run1", case, "Tiff3DIO")
    (tmp_path / "c1.json").write_text('{"spacing": [1, 1, 1]}')
    assert case_provenance("run1", case, "Tiff3DIO") != tiff_key
    assert case_provenance("run1", case) == case_provenance("run1", case)


def test_the_provenance_file_says_what_a_run_key_stands_for(tmp_path):
    import hashlib
    import json

    from nnunet_workflow.planning.provenance import write_provenance_file
    from nnunet_workflow.store.layout import Layout

    model = load_model(make_model_folder(tmp_path))
    config = {**OPTIONS, "input": str(tmp_path / "images"), "hash_inputs": False}
    layout = Layout(tmp_path / "results")
    key = provenance_key(model, config)
    path = write_provenance_file(layout, model, config, key)
    assert path == tmp_path / "results" / "provenance" / f"{key}.json"
    content = json.loads(path.read_text())
    checkpoint = model.folder / "fold_0" / "checkpoint_final.pth"
    assert content["files_sha256"][str(checkpoint)] == hashlib.sha256(b"weights").hexdigest()
    assert set(content["files_sha256"]) == {str(model.folder / n) for n in ("dataset.json", "plans.json")} | {
        str(checkpoint)}
    assert content["options"]["step_size"] == 0.5 and content["options"]["device"] == "cpu"
    assert content["versions"]["nnunetv2"] and content["versions"]["snakemake"] and content["created"]
    path.write_text(json.dumps({**content, "created": "first run"}))
    write_provenance_file(layout, model, config, key)  # a later run of the same key keeps the first's file
    assert json.loads(path.read_text())["created"] == "first run"
