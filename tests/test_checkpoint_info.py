"""A checkpoint's trainer, configuration and mirroring axes, read without torch, as nnU-Net reads them;
the configuration of a model folder that is not named TRAINER__PLANS__CONFIGURATION comes from there."""

import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from test_model import model_folder

from nnunet_workflow.nnunet.checkpoint_info import checkpoint_metadata
from nnunet_workflow.nnunet.model import ModelError, load_model


def save_checkpoint(path, configuration="3d_fullres"):
    """A checkpoint shaped like nnU-Net's: weights, optimizer state, numpy values in the logging."""
    torch.save({"network_weights": OrderedDict(conv=torch.randn(4, 2, 3, 3, 3), bias=torch.zeros(4)),
                "optimizer_state": {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": [{"lr": 0.01}]},
                "logging": {"ema_fg_dice": [np.float64(0.5), np.float32(0.7)], "epoch_end_timestamps": [1.5]},
                "current_epoch": 1000, "trainer_name": "nnUNetTrainer",
                "init_args": {"plans": {"huge": "dict"}, "configuration": configuration, "fold": 0,
                              "device": torch.device("cpu")},
                "inference_allowed_mirroring_axes": (0, 1, 2)}, path)


def test_metadata_is_read_without_importing_torch(tmp_path):
    save_checkpoint(tmp_path / "checkpoint_final.pth", "3d_lowres")
    code = ("import sys; from nnunet_workflow.nnunet.checkpoint_info import checkpoint_metadata; "
            f"print(checkpoint_metadata({str(tmp_path / 'checkpoint_final.pth')!r})); print('torch' in sys.modules)")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "{'trainer_name': 'nnUNetTrainer', 'configuration': '3d_lowres', 'mirroring_axes': (0, 1, 2)}", "False"]
    # what torch itself reads
    loaded = torch.load(tmp_path / "checkpoint_final.pth", weights_only=False)
    ours = checkpoint_metadata(tmp_path / "checkpoint_final.pth")
    assert ours["configuration"] == loaded["init_args"]["configuration"]
    assert ours["mirroring_axes"] == loaded["inference_allowed_mirroring_axes"]


def test_a_file_that_is_no_torch_archive_tells_nothing(tmp_path):
    (tmp_path / "old.pth").write_bytes(b"weights")
    assert checkpoint_metadata(tmp_path / "old.pth") == {} and checkpoint_metadata(tmp_path / "missing.pth") == {}


def test_the_configuration_comes_from_the_checkpoint_and_a_given_one_must_agree(tmp_path):
    folder = model_folder(tmp_path, name="my_liver_model", folds=("0",))
    save_checkpoint(folder / "fold_0" / "checkpoint_final.pth", "2d")
    assert load_model(folder).configuration == "2d"
    with pytest.raises(ModelError, match="configuration '3d_fullres' was asked for, but .*fold_0/checkpoint_final.pth "
                                         "was trained as '2d'; give configuration=2d"):
        load_model(folder, configuration="3d_fullres")
    assert load_model(folder, configuration="2d").dimensions == 2
