"""Export with save_probabilities, slab by slab: the segmentation, the .npz probabilities and the .pkl equal what
nnU-Net's export_prediction_from_logits(save_probabilities=True) writes, for joint and separate-z resampling,
separate z along another axis than the first, an unchanged shape, a crop, a transposition, many classes, nnU-Net's
torch resampling, region models (sigmoid), several threads and slabs of a few rows."""

import json
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.stages import streaming_probabilities
from nnunet_workflow.stages.streaming_export import NpyChannels

pytestmark = pytest.mark.slow  # the demo model's plans (built once per CI run)
pytest.importorskip("nnunetv2")


# the probability resampling of nnU-Net's *_torchres planners (nnUNetPlannerResEncL_torchres's)
TORCH_RESAMPLING = {"resampling_fn_probabilities": "resample_torch_fornnunet",
                    "resampling_fn_probabilities_kwargs": {"is_seg": False, "memefficient_seg_resampling": False}}


def plans_of(demo, spacing, transpose=(0, 1, 2), classes=3, resampling=None):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads((demo["model"] / "plans.json").read_text())
    plans["transpose_forward"] = list(transpose)
    plans["transpose_backward"] = [list(transpose).index(i) for i in range(3)]
    plans["configurations"]["3d_fullres"]["spacing"] = list(spacing)
    plans["configurations"]["3d_fullres"].update(resampling or {})
    dataset = json.loads((demo["model"] / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, **{f"c{i}": i for i in range(1, classes)}}
    manager = PlansManager(plans)
    return manager, manager.get_configuration("3d_fullres"), dataset


def case(transpose, original_shape, original_spacing, bbox):
    """Properties as preprocessing leaves them: `original_shape` and `original_spacing` in the image's (z, y, x)
    order, the crop in nnU-Net's (transposed) order."""
    shape_t = [original_shape[i] for i in transpose]
    cropped = [b - a for a, b in bbox]
    return {"spacing": list(original_spacing), "shape_before_cropping": shape_t, "bbox_used_for_cropping": bbox,
            "shape_after_cropping_and_before_resampling": cropped,
            "sitk_stuff": {"spacing": tuple(reversed(original_spacing)), "origin": (0.0, 0.0, 0.0),
                           "direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}}


# (target spacing, transpose, original shape z y x, original spacing z y x, crop bbox (transposed), logits grid)
CASES = {
    "joint_cropped": ((1.3, 1.2, 1.1), (0, 1, 2), (22, 26, 24), (1.0, 1.0, 1.0), [[1, 21], [2, 26], [0, 23]],
                      (15, 20, 21)),
    "joint_transposed": ((1.2, 0.9, 1.4), (2, 0, 1), (20, 18, 25), (1.0, 0.8, 1.1), [[0, 25], [1, 19], [0, 18]],
                         (20, 18, 13)),
    "separate_z": ((4.5, 0.9, 0.9), (0, 1, 2), (9, 30, 28), (4.0, 1.0, 1.0), [[0, 9], [0, 30], [3, 28]],
                   (8, 33, 28)),
    "unchanged": ((1.0, 1.0, 1.0), (0, 1, 2), (12, 14, 16), (1.0, 1.0, 1.0), [[0, 12], [1, 13], [0, 16]],
                  (12, 12, 16)),
    "separate_z_axis2": ((0.9, 0.9, 4.5), (0, 1, 2), (30, 28, 9), (1.0, 1.0, 4.0), [[0, 30], [2, 28], [0, 9]],
                         (33, 29, 8)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("classes,threads,slab_voxels,resampling", [
    (3, 1, 1 << 21, None), (3, 2, 700, None), (20, 2, 5000, None), (3, 2, 700, TORCH_RESAMPLING),
    (70, 2, 5000, TORCH_RESAMPLING)], ids=["3", "3_slabs", "20", "3_torch", "70_torch"])
def test_files_equal_nnunet_export_with_probabilities(demo, tmp_path, name, classes, threads, slab_voxels,
                                                      resampling):
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    target, transpose, shape, spacing, bbox, grid = CASES[name]
    plans_manager, configuration_manager, dataset = plans_of(demo, target, transpose, classes, resampling)
    properties = case(transpose, shape, spacing, bbox)
    label_manager = plans_manager.get_label_manager(dataset)
    assert streaming_probabilities.supports_probabilities(configuration_manager, plans_manager, label_manager,
                                                          properties)
    rng = np.random.default_rng(classes)
    logits = rng.normal(scale=3, size=(classes, *grid)).astype(np.float16)
    logits[:, 0, 0, :3] = np.round(logits[:, 0, 0, :3])  # ties
    np.save(tmp_path / "logits.npy", logits)
    export_prediction_from_logits(logits, dict(properties), configuration_manager, plans_manager, dataset,
                                  str(tmp_path / "nnunet"), save_probabilities=True)
    streaming_probabilities.export_with_probabilities(
        NpyChannels(tmp_path / "logits.npy"), dict(properties), configuration_manager, plans_manager, dataset,
        str(tmp_path / "ours"), ".nii.gz", threads=threads, slab_voxels=slab_voxels)
    for suffix in (".nii.gz",):
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"nnunet{suffix}")))
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"ours{suffix}"))), expected)
    expected, got = np.load(tmp_path / "nnunet.npz")["probabilities"], np.load(tmp_path / "ours.npz")["probabilities"]
    assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)
    with open(tmp_path / "nnunet.pkl", "rb") as a, open(tmp_path / "ours.pkl", "rb") as b:
        assert str(pickle.load(a)) == str(pickle.load(b))
    assert not list(tmp_path.glob("*.part"))  # the scratch file is gone


def test_slabs_follow_torchs_softmax_ranges_and_vectors():
    import torch

    for shape, classes in (((50, 7, 9), 3), ((31, 64, 64), 118), ((5, 1, 3), 2), ((9, 511, 509), 20)):
        for threads in (1, 3, 8):
            slabs = streaming_probabilities.aligned_slabs(shape, classes, 1000, threads)
            ranges = streaming_probabilities.thread_ranges(int(np.prod(shape)), threads)
            assert slabs[0][0] == 0 and slabs[-1][1] == np.prod(shape)
            assert all(b == c for (_, b), (c, _) in zip(slabs, slabs[1:]))
            for first, last in slabs:  # within one range, a multiple of ALIGN from its start
                begin, end = next(r for r in ranges if r[0] <= first < r[1])
                assert last <= end and (first - begin) % streaming_probabilities.ALIGN == 0
    # and so the softmax of slabs on one thread is torch's of the whole on `threads` threads
    values = torch.from_numpy(np.random.default_rng(0).normal(size=(5, 13, 17, 19)).astype(np.float16)).float()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        whole = torch.softmax(values, 0).reshape(5, -1)
        torch.set_num_threads(1)
        flat = values.reshape(5, -1)
        pieces = [torch.softmax(flat[:, a:b].contiguous(), 0)
                  for a, b in streaming_probabilities.aligned_slabs((13, 17, 19), 5, 64 * 5, 8)]
    finally:
        torch.set_num_threads(old)
    assert torch.equal(torch.cat(pieces, 1), whole)


def test_sigmoid_pieces_follow_torchs_elementwise_ranges_and_vectors():
    import torch

    for values in (1000, 32768, 32769, 5 * 13 * 17 * 19 * 7, 3 * 300 * 511):
        for threads in (1, 3, 8):
            ranges = streaming_probabilities.thread_ranges(values, threads, streaming_probabilities.ELEMENTWISE_GRAIN)
            assert len(ranges) == (1 if values <= 32768 or threads == 1 else min(threads, -(-values // 32768)))
            pieces = streaming_probabilities.sigmoid_pieces(values, 5000, threads)
            assert pieces[0][0] == 0 and pieces[-1][1] == values
            assert all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))
            for first, last in pieces:
                begin, end = next(r for r in ranges if r[0] <= first < r[1])
                assert last <= end and (first - begin) % streaming_probabilities.ALIGN == 0
    # the sigmoid of the pieces on one thread is torch's of the whole on nnU-Net's 8 threads; not so for any pieces
    flat = torch.from_numpy(np.random.default_rng(0).normal(scale=4, size=3 * 41 * 53 * 59).astype(np.float32))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        whole = torch.sigmoid(flat)
        torch.set_num_threads(1)
        pieces = [torch.sigmoid(flat[a:b]) for a, b in streaming_probabilities.sigmoid_pieces(len(flat), 7000, 8)]
        unaligned = [torch.sigmoid(flat[a:a + 7001]) for a in range(0, len(flat), 7001)]
    finally:
        torch.set_num_threads(old)
    assert torch.equal(torch.cat(pieces), whole)
    assert not torch.equal(torch.cat(unaligned), whole)


@pytest.mark.parametrize("resampling", [None, TORCH_RESAMPLING], ids=["default", "torch"])
@pytest.mark.parametrize("name", ["joint_cropped", "separate_z", "unchanged", "separate_z_axis2"])
def test_region_models_files_equal_nnunet_export_with_probabilities(demo, tmp_path, name, resampling):
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    target, transpose, shape, spacing, bbox, grid = CASES[name]
    plans_manager, configuration_manager, dataset = plans_of(demo, target, transpose, 3, resampling)
    dataset["labels"] = {"background": 0, "whole": [1, 2], "core": [2]}
    dataset["regions_class_order"] = [1, 2]
    properties = case(transpose, shape, spacing, bbox)
    label_manager = plans_manager.get_label_manager(dataset)
    assert label_manager.has_regions and streaming_probabilities.supports_probabilities(
        configuration_manager, plans_manager, label_manager, properties)
    logits = np.random.default_rng(2).normal(scale=3, size=(2, *grid)).astype(np.float16)
    np.save(tmp_path / "logits.npy", logits)
    export_prediction_from_logits(logits, dict(properties), configuration_manager, plans_manager, dataset,
                                  str(tmp_path / "nnunet"), save_probabilities=True)
    streaming_probabilities.export_with_probabilities(
        NpyChannels(tmp_path / "logits.npy"), dict(properties), configuration_manager, plans_manager, dataset,
        str(tmp_path / "ours"), ".nii.gz", threads=2, slab_voxels=900)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nnunet.nii.gz")))
    assert set(np.unique(expected)) == {0, 1, 2}
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ours.nii.gz"))), expected)
    expected, got = np.load(tmp_path / "nnunet.npz")["probabilities"], np.load(tmp_path / "ours.npz")["probabilities"]
    assert got.dtype == expected.dtype == np.float32 and np.array_equal(got, expected)
