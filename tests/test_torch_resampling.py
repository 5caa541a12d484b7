"""nnU-Net's torch resampling (`resample_torch_fornnunet`, its *_torchres plans) a few classes at a time: the
groups' values equal one call on every class (joint and separate-z along each axis, planes small enough for torch
to vectorize across channels and larger ones, float16 and float32, NaN), and the streaming export's segmentation
from them equals nnU-Net's, for labels and regions."""

import numpy as np
import pytest

from nnunet_workflow.nnunet.model import TORCH_RESAMPLING
from nnunet_workflow.stages import streaming_export, torch_resampling

pytest.importorskip("nnunetv2")
from nnunetv2.preprocessing.resampling.resample_torch import resample_torch_fornnunet  # noqa: E402
from nnunetv2.utilities.label_handling.label_handling import LabelManager  # noqa: E402

# the *_torchres planners' arguments (nnUNetPlanner_torchres's, without its force_separate_z: False, see below)
TORCH_KWARGS = {"is_seg": False, "memefficient_seg_resampling": False}

# (logits grid, current spacing, new spacing, output shape)
GEOMETRIES = {
    "joint_up": ((9, 11, 10), (1.0, 1.0, 1.0), (0.7, 0.8, 0.9), (13, 14, 11)),
    "joint_down": ((17, 12, 15), (1.0, 1.0, 1.0), (1.6, 1.3, 1.1), (11, 9, 14)),
    # separate along axis 0, a plane of 30 + 28 <= 128: torch vectorizes across (class x plane) channels
    "separate0_small_plane": ((7, 30, 28), (4.0, 1.0, 1.0), (5.0, 0.8, 0.8), (6, 37, 35)),
    # separate along axis 1 and 2, 13 planes (not dividing 64)
    "separate1": ((25, 13, 22), (1.0, 4.5, 1.0), (0.9, 3.0, 0.9), (28, 19, 24)),
    "separate2": ((21, 24, 13), (0.9, 0.9, 4.0), (0.7, 0.7, 4.0), (27, 31, 13)),
    # a plane larger than torch's limit: each channel on its own in torch
    "separate0_large_plane": ((5, 70, 66), (4.0, 1.0, 1.0), (4.0, 0.9, 0.9), (5, 78, 73)),
    "unchanged": ((8, 9, 10), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (8, 9, 10)),
}


def random_logits(rng, classes, shape, dtype):
    logits = rng.normal(scale=4, size=(classes, *shape)).astype(dtype)
    logits[:, 0, 0, :3] = np.round(logits[:, 0, 0, :3])  # ties between classes
    return logits


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("classes,dtype", [(3, np.float16), (11, np.float32), (70, np.float16)])
def test_groups_equal_one_call_on_every_class(name, classes, dtype):
    grid, current, new, shape = GEOMETRIES[name]
    logits = random_logits(np.random.default_rng(classes), classes, grid, dtype)
    expected = resample_torch_fornnunet(logits, shape, current, new, **TORCH_KWARGS)
    parts = list(torch_resampling.resampled_groups(logits, shape, current, new, TORCH_KWARGS))
    assert [first for first, _ in parts] == [a for a, _ in torch_resampling.class_groups(
        classes, grid, shape, current, new, TORCH_KWARGS)]
    got = np.concatenate([values for _, values in parts])
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_groups_start_on_whole_vectors_of_channels_where_torch_vectorizes_across_them():
    # 7 planes per class: 64 classes make 448 channels, a multiple of 64; a plane over the limit: one class each
    groups = torch_resampling.class_groups(150, (7, 30, 28), (6, 37, 35), (4.0, 1.0, 1.0), (5.0, 0.8, 0.8), {})
    assert groups == [(0, 64), (64, 128), (128, 150)]
    assert torch_resampling.class_groups(3, (5, 70, 66), (5, 78, 73), (4.0, 1.0, 1.0), (4.0, 0.9, 0.9), {}) == \
        [(0, 1), (1, 2), (2, 3)]
    assert torch_resampling.class_groups(2, (9, 11, 10), (13, 14, 11), (1.0,) * 3, (0.7, 0.8, 0.9), {}) == \
        [(0, 1), (1, 2)]


def test_one_class_at_a_time_would_differ_where_torch_vectorizes_across_channels():
    """The reason for the groups: with a small plane, a class alone meets other code than in nnU-Net's one call."""
    grid, current, new, shape = GEOMETRIES["separate0_small_plane"]
    logits = random_logits(np.random.default_rng(1), 11, grid, np.float32)
    expected = resample_torch_fornnunet(logits, shape, current, new, **TORCH_KWARGS)
    alone = np.concatenate([resample_torch_fornnunet(logits[k:k + 1], shape, current, new, **TORCH_KWARGS)
                            for k in range(11)])
    assert not np.array_equal(alone, expected)


def labels(classes):
    return LabelManager({"background": 0, **{f"c{i}": i for i in range(1, classes)}}, regions_class_order=None)


def regions():
    return LabelManager({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]},
                        regions_class_order=[1, 2, 3])


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("manager", ["labels", "regions"])
def test_streaming_export_with_torch_resampling_equals_nnunet(tmp_path, name, manager):
    grid, current, new, shape = GEOMETRIES[name]
    label_manager = labels(9) if manager == "labels" else regions()
    classes = label_manager.num_segmentation_heads
    logits = random_logits(np.random.default_rng(5), classes, grid, np.float16)
    logits[1, 2, 3, 4] = np.nan
    expected = np.asarray(label_manager.convert_logits_to_segmentation(
        resample_torch_fornnunet(logits, shape, current, new, **TORCH_KWARGS)))
    np.save(tmp_path / "logits.npy", logits)
    got = streaming_export.segmentation_from_logits(
        streaming_export.NpyChannels(tmp_path / "logits.npy"), shape, current, new, label_manager, TORCH_KWARGS,
        function=TORCH_RESAMPLING)
    assert got.shape == expected.shape and np.array_equal(got, expected)
