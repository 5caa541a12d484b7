"""A model's files checked whole before any job: checkpoints that are truncated, corrupted, not nnU-Net's, or
that reference foreign code are refused naming the file (and the code), without running anything; a
postprocessing.pkl likewise; dataset.json and plans.json name what they lack."""

import json
import os
import pickle
import shutil
import zipfile

import pytest
import torch
from test_checkpoint_info import save_checkpoint
from test_model import model_folder
from test_postprocessing_e2e import write_postprocessing_pkl

from nnunet_workflow.nnunet.model import ModelError, load_model
from nnunet_workflow.nnunet.model_checks import check_checkpoint, check_model_files, check_postprocessing_pickle


class Payload:
    """Runs a shell command when unpickled (what a booby-trapped model file carries)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def booby_trapped(path, marker):
    """A real nnU-Net-shaped checkpoint that also carries the payload in its logging."""
    save_checkpoint(path)
    content = torch.load(path, weights_only=False)
    content["logging"]["note"] = Payload(marker)
    torch.save(content, path)
    return path


def test_a_checkpoint_as_nnunet_writes_it_passes(tmp_path, demo):
    save_checkpoint(tmp_path / "checkpoint_final.pth")
    check_checkpoint(tmp_path / "checkpoint_final.pth")
    check_checkpoint(demo["model"] / "fold_0" / "checkpoint_final.pth")  # trained by nnU-Net's own trainer


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = booby_trapped(tmp_path / "checkpoint_final.pth", marker)
    with pytest.raises(ModelError) as refused:
        check_checkpoint(path)
    assert str(refused.value).startswith(f"{path} references code outside what nnU-Net's trainers write (posix.system)")
    assert "trust_model_code: true" in str(refused.value)
    check_checkpoint(path, trust_code=True)  # trusted: checked for the rest, still not run here
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what nnU-Net would do with it: the payload runs
    assert marker.exists()


def test_a_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    save_checkpoint(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match=f"{path} is not a readable torch checkpoint \\(BadZipFile: .*\\): the file is "
                                         "truncated or corrupted"):
        check_checkpoint(path)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ModelError, match="empty.pth is not a readable torch checkpoint"):
        check_checkpoint(tmp_path / "empty.pth")


def test_a_checkpoint_with_a_tensor_cut_short_is_refused(tmp_path):
    whole, cut = tmp_path / "whole.pth", tmp_path / "cut.pth"
    save_checkpoint(whole)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(cut, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:8] if info.filename.endswith("/data/0") else data)
    with pytest.raises(ModelError, match="cut.pth: tensor data .*/data/0 holds 8 bytes of 864: the file is corrupted"):
        check_checkpoint(cut)


def test_a_checkpoint_that_is_not_an_nnunet_trainers_is_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="other.pth has no network_weights, trainer_name, init_args, which nnU-Net"):
        check_checkpoint(tmp_path / "other.pth")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="plain.zip holds no data.pkl"):
        check_checkpoint(tmp_path / "plain.zip")


def test_every_member_and_previous_stage_is_checked_and_named(tmp_path, demo):
    copies = []
    for name in ("a", "b"):
        copy = tmp_path / name / demo["model"].name
        shutil.copytree(demo["model"], copy)
        copies.append(load_model(copy))
    broken = copies[1].folder / "fold_0" / "checkpoint_final.pth"
    broken.write_bytes(broken.read_bytes()[:1000])
    check_model_files(tuple(copies[:1]))
    with pytest.raises(ModelError, match=f"ensemble member m1 \\({copies[1].folder}\\): {broken} is not a readable"):
        check_model_files(tuple(copies))


def test_a_postprocessing_pickle_names_only_nnunets_functions(tmp_path):
    good = write_postprocessing_pkl(tmp_path / "postprocessing.pkl")
    check_postprocessing_pickle(good)
    marker = tmp_path / "payload_ran"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(([Payload(marker)], [{}])))
    with pytest.raises(ModelError, match="bad.pkl references code other than nnU-Net's postprocessing functions "
                                         "\\(posix.system\\)"):
        check_postprocessing_pickle(bad)
    assert not marker.exists()
    (tmp_path / "odd.pkl").write_bytes(pickle.dumps({"functions": []}))
    with pytest.raises(ModelError, match="odd.pkl is not nnU-Net's \\(functions, keyword arguments\\) pair"):
        check_postprocessing_pickle(tmp_path / "odd.pkl")


@pytest.mark.parametrize(("file", "key", "value", "said"), [
    ("dataset.json", "channel_names", None, "dataset.json has no 'channel_names', which must be the input channels"),
    ("dataset.json", "channel_names", {"T1": "0"}, "channel_names has keys \\['T1'\\]; they must be channel indices"),
    ("dataset.json", "labels", {}, "dataset.json has {} as 'labels', which must be the labels by name"),
    ("dataset.json", "file_ending", None, "dataset.json has no 'file_ending'"),
    ("plans.json", "transpose_forward", None, "plans.json has no 'transpose_forward'"),
    ("plans.json", "configurations", {}, "plans.json has {} as 'configurations'"),
])
def test_dataset_and_plans_json_name_what_they_lack(tmp_path, file, key, value, said):
    folder = model_folder(tmp_path)
    content = json.loads((folder / file).read_text())
    if value is None:
        content.pop(key)
    else:
        content[key] = value
    (folder / file).write_text(json.dumps(content))
    with pytest.raises(ModelError, match=said):
        load_model(folder)


def test_a_configuration_without_its_patch_size_is_named(tmp_path):
    folder = model_folder(tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    for configuration in plans["configurations"].values():
        configuration.pop("patch_size", None)
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ModelError, match="plans.json has no 'patch_size', which must be the configuration '3d_full"):
        load_model(folder)
