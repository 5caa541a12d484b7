"""The streaming export equals nnU-Net's export voxel for voxel: random logits over many geometries
(joint and separate-z resampling along each axis, up and down, unchanged shape, a 2d configuration),
ties and NaNs, region models, and slabs down to one row."""

import numpy as np
import pytest

from nnunet_workflow.stages import streaming_export

pytest.importorskip("nnunetv2")
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape  # noqa: E402
from nnunetv2.utilities.label_handling.label_handling import LabelManager  # noqa: E402

PROBABILITY_KWARGS = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}


def labels(num_classes):
    return LabelManager({"background": 0, **{f"c{i}": i for i in range(1, num_classes)}}, regions_class_order=None)


def regions():
    # three overlapping regions, painted in regions_class_order
    return LabelManager({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]},
                        regions_class_order=[1, 2, 3])


def nnunet_segmentation(logits, new_shape, current_spacing, new_spacing, label_manager, kwargs):
    """What export_prediction_from_logits computes before un-cropping (its first two steps, verbatim)."""
    resampled = resample_data_or_seg_to_shape(logits, new_shape, current_spacing, new_spacing, **kwargs)
    segmentation = label_manager.convert_logits_to_segmentation(resampled)
    return np.asarray(segmentation)


def random_logits(rng, k, shape, dtype=np.float16, quantize=False):
    logits = rng.normal(scale=4, size=(k, *shape))
    if quantize:  # many exact ties between classes
        logits = np.round(logits)
    return logits.astype(dtype)


# (source shape, source spacing = current_spacing, output spacing = new_spacing); output shape follows
GEOMETRIES = [
    ((20, 24, 22), (1.0, 1.0, 1.0), (0.7, 0.8, 0.9)),     # joint, upsampling
    ((31, 17, 25), (1.0, 1.0, 1.0), (1.6, 1.3, 1.1)),     # joint, downsampling
    ((18, 18, 18), (1.0, 1.0, 1.0), (1.0, 0.5, 2.0)),     # joint, mixed, one axis unchanged
    ((8, 30, 28), (4.0, 1.0, 1.0), (5.0, 0.8, 0.8)),      # separate along axis 0 (anisotropic source)
    ((30, 7, 28), (1.0, 4.5, 1.0), (0.9, 3.0, 0.9)),      # separate along axis 1, z upsampled
    ((26, 24, 9), (0.9, 0.9, 4.0), (0.7, 0.7, 4.0)),      # separate along axis 2, z unchanged
    ((12, 16, 16), (1.0, 1.0, 1.0), (0.25, 1.0, 1.0)),    # separate because the output is anisotropic
    ((16, 20, 20), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),     # unchanged shape: no resampling at all
    ((1, 40, 36), (3.0, 1.0, 1.0), (3.0, 0.6, 0.7)),      # a single slice (2d configuration)
]


def output_shape(shape, current, new):
    return [int(round(s * c / n)) for s, c, n in zip(shape, current, new)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[f"g{i}" for i in range(len(GEOMETRIES))])
@pytest.mark.parametrize("k,quantize", [(2, False), (5, True), (9, False)])
def test_argmax_equals_nnunet(geometry, k, quantize):
    shape, current, new = geometry
    rng = np.random.default_rng(k * 100 + len(shape) + int(sum(shape)))
    logits = random_logits(rng, k, shape, quantize=quantize)
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(k), PROBABILITY_KWARGS)
    for slab in (streaming_export.SLAB_VOXELS, 97, 1):
        ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(k),
                                                         PROBABILITY_KWARGS, slab_voxels=slab)
        assert ours.shape == expected.shape
        assert np.array_equal(ours, expected), f"slab {slab}: {np.count_nonzero(ours != expected)} voxels differ"


@pytest.mark.parametrize("geometry", GEOMETRIES[:4] + GEOMETRIES[7:8], ids=["g0", "g1", "g2", "g3", "g7"])
def test_regions_equal_nnunet(geometry):
    shape, current, new = geometry
    logits = random_logits(np.random.default_rng(7), 3, shape)
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, regions(), PROBABILITY_KWARGS)
    ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, regions(),
                                                     PROBABILITY_KWARGS, slab_voxels=200)
    assert np.array_equal(ours, expected)
    assert set(np.unique(ours)) == {0, 1, 2, 3}


def test_nan_and_float32_logits_and_order_zero():
    rng = np.random.default_rng(3)
    shape, current, new = (10, 12, 14), (1.0, 1.0, 1.0), (0.8, 1.2, 0.7)
    new_shape = output_shape(shape, current, new)
    logits = random_logits(rng, 4, shape, dtype=np.float32)
    logits[2, :2] = np.nan  # NaN in one class: numpy's argmax picks the first NaN
    for kwargs in (PROBABILITY_KWARGS, {**PROBABILITY_KWARGS, "order": 0}):
        expected = nnunet_segmentation(logits, new_shape, current, new, labels(4), kwargs)
        ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(4), kwargs,
                                                         slab_voxels=300)
        assert np.array_equal(ours, expected)


def test_reads_one_channel_at_a_time_from_the_file(tmp_path):
    shape, current, new = (12, 14, 10), (1.0, 1.0, 1.0), (0.9, 0.9, 0.9)
    logits = random_logits(np.random.default_rng(11), 3, shape)
    np.save(tmp_path / "logits.npy", logits)
    mapped = streaming_export.NpyChannels(tmp_path / "logits.npy")
    assert (len(mapped), mapped.dtype) == (3, np.float16)
    assert np.array_equal(mapped[2], logits[2])
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(3), PROBABILITY_KWARGS)
    assert np.array_equal(
        streaming_export.segmentation_from_logits(mapped, new_shape, current, new, labels(3), PROBABILITY_KWARGS),
        expected)


def test_supports_only_what_it_reproduces():
    class Configuration:
        def __init__(self, **configuration):
            self.configuration = configuration

    assert streaming_export.supports(Configuration(resampling_fn_probabilities="resample_data_or_seg_to_shape",
                                                   resampling_fn_probabilities_kwargs=PROBABILITY_KWARGS))
    for unsupported in ({"resampling_fn_probabilities": "resample_torch_fornnunet",
                         "resampling_fn_probabilities_kwargs": {}},
                        {"resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                         "resampling_fn_probabilities_kwargs": {**PROBABILITY_KWARGS, "order": 3}},
                        {"resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                         "resampling_fn_probabilities_kwargs": {**PROBABILITY_KWARGS, "order_z": 1}}):
        assert not streaming_export.supports(Configuration(**unsupported))
