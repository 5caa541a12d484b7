"""Shared fixtures: a model description for header-level tests, image writers, and the demo model."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.dev.runner import REPO
from nnunet_workflow.nnunet.model import ModelInfo

# The demo model's 3d_fullres network as its plans.json gives it (dev/demo_model.py shrinks nnU-Net's plans to
# these features and 1 conv per stage), and its patch.
DEMO_ARCHITECTURE = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {"n_stages": 4, "features_per_stage": [8, 16, 32, 64], "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                    "n_conv_per_stage": [1, 1, 1, 1], "n_conv_per_stage_decoder": [1, 1, 1], "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
DEMO_PATCH = (56, 56, 56)


@pytest.fixture
def two_channel_model(tmp_path) -> ModelInfo:
    """A 3D, 2-channel, 3-class model description (no weights needed for header checks)."""
    return ModelInfo(
        folder=tmp_path / "model",
        configuration="3d_fullres",
        folds=("0",),
        checkpoint="checkpoint_final.pth",
        channel_names=("T1", "T2"),
        labels={"background": 0, "sphere": 1, "box": 2},
        file_ending=".nii.gz",
        image_reader_writer="SimpleITKIO",
        target_spacing=(1.0, 1.0, 1.0),
        patch_size=(32, 32, 32),
        transpose_forward=(0, 1, 2),
        num_classes=3,
    )


def write_image(path, size=(20, 18, 16), spacing=(1.0, 1.0, 1.0), origin=None, direction=None, dtype=np.int16):
    """Write a small image; `size` is SimpleITK order (x, y, z) and may have 2 or 4 entries."""
    array = np.arange(np.prod(size), dtype=dtype).reshape(tuple(reversed(size))) % 50
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(spacing[: len(size)])
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture(scope="session")
def demo() -> dict:
    """The built-in demo (built into .demo/ on first use, ~2 min on 2 cores): model, input, truth, case ids."""
    from nnunet_workflow.dev.demo_model import prepare_demo
    from nnunet_workflow.inputs.cases import discover_cases

    paths = prepare_demo(REPO / ".demo")
    cases = discover_cases(paths["input"], ("T1", "T2"))

    def anisotropy(case):
        spacing = sitk.ReadImage(cases[case].files()[0]).GetSpacing()
        return max(spacing) / min(spacing)

    return {**paths, "cases": list(cases), "anisotropic_case": max(cases, key=anisotropy),
            "case_files": {case: c.files() for case, c in cases.items()}}


@pytest.fixture(scope="session")
def reference(demo, tmp_path_factory):
    """nnUNetv2_predict's segmentations of all demo cases with its default options (the reference)."""
    from e2e import run_nnunet_predict

    output = tmp_path_factory.mktemp("reference")
    run_nnunet_predict(demo["model"], demo["input"], output)
    return output


@pytest.fixture(scope="session")
def two_cases(demo, tmp_path_factory):
    """The two smallest demo cases, copied into a folder of their own: (folder, case ids)."""
    folder = tmp_path_factory.mktemp("two_cases")
    cases = sorted(demo["case_files"], key=lambda c: sum(os.path.getsize(p) for p in demo["case_files"][c]))[:2]
    for case in cases:
        for path in demo["case_files"][case]:
            shutil.copy(path, folder)
    return folder, cases
