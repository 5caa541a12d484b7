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
    assert streaming_export.supports(Configuration(resampling_fn_probabilities="resample_torch_fornnunet",
                                                   resampling_fn_probabilities_kwargs={"is_seg": False}))
    for unsupported in ({"resampling_fn_probabilities": "resample_torch_fornnunet",
                         "resampling_fn_probabilities_kwargs": {"mode": "bicubic"}},
                        {"resampling_fn_probabilities": "resample_torch_fornnunet",
                         "resampling_fn_probabilities_kwargs": {"num_threads": 1}},
                        {"resampling_fn_probabilities": "resample_torch_fornnunet",
                         "resampling_fn_probabilities_kwargs": {"is_seg": True}},
                        {"resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                         "resampling_fn_probabilities_kwargs": {**PROBABILITY_KWARGS, "order": 3}},
                        {"resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                         "resampling_fn_probabilities_kwargs": {**PROBABILITY_KWARGS, "order_z": 1}}):
        assert not streaming_export.supports(Configuration(**unsupported))


def organ_logits(rng, k, shape, dtype=np.float16):
    """Logits as a many-organ model gives them: every class far below the background except in its own small
    blob, so most classes cannot win most slabs; a few classes tie the background exactly somewhere."""
    logits = np.full((k, *shape), -8.0)
    logits[0] = rng.normal(loc=4, scale=1, size=shape)
    for index in range(1, k):
        centre = [rng.integers(0, n) for n in shape]
        box = tuple(slice(max(0, c - 2), c + 3) for c in centre)
        logits[(index, *box)] = rng.normal(loc=6, scale=2, size=logits[(index, *box)].shape)
    logits[k - 1, : shape[0] // 2] = logits[0, : shape[0] // 2]  # exact ties with the background: class 0 wins
    return logits.astype(dtype)


@pytest.mark.parametrize("geometry", [GEOMETRIES[i] for i in (0, 1, 3, 6, 7, 8)],
                         ids=["joint_up", "joint_down", "separate0", "separate_out", "unchanged", "single_slice"])
def test_classes_that_cannot_win_a_slab_are_skipped_and_nothing_changes(geometry):
    shape, current, new = geometry
    rng = np.random.default_rng(118)
    logits = organ_logits(rng, 40, shape)
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(40), PROBABILITY_KWARGS)
    for slab, threads in ((97, 1), (300, 3), (streaming_export.SLAB_VOXELS, 2)):
        counts = {}
        ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(40),
                                                         PROBABILITY_KWARGS, slab_voxels=slab, threads=threads,
                                                         counts=counts)
        assert np.array_equal(ours, expected), f"slab {slab}: {np.count_nonzero(ours != expected)} voxels differ"
        if counts["slabs"] > 4:  # most of the 39 organ classes skipped in most slabs
            assert counts["skipped"] > counts["slabs"] * 20, counts


def test_regions_that_are_negative_around_a_slab_are_skipped_exactly():
    shape, current, new = (20, 24, 22), (1.0, 1.0, 1.0), (0.7, 0.8, 0.9)
    logits = random_logits(np.random.default_rng(5), 3, shape)
    logits[2, 10:] = -np.abs(logits[2, 10:])  # the enhancing region is nowhere positive in the lower half
    logits[2, 10:12] = 0  # and exactly 0 (sigmoid 0.5, not inside) on two rows
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, regions(), PROBABILITY_KWARGS)
    counts = {}
    ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, regions(), PROBABILITY_KWARGS,
                                                     slab_voxels=500, threads=2, counts=counts)
    assert np.array_equal(ours, expected) and counts["skipped"] > 0


def test_nan_logits_are_never_skipped_and_threads_change_nothing():
    rng = np.random.default_rng(9)
    shape, current, new = (14, 12, 16), (1.0, 1.0, 1.0), (0.8, 1.2, 0.7)
    logits = organ_logits(rng, 12, shape)
    logits[7, 3:5, 2:4, 1:3] = np.nan  # a class far below elsewhere, NaN here: it wins these voxels
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(12), PROBABILITY_KWARGS)
    assert np.count_nonzero(expected == 7) > 0
    for threads in (1, 2, 4):
        ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(12),
                                                         PROBABILITY_KWARGS, slab_voxels=150, threads=threads)
        assert np.array_equal(ours, expected)


def test_scipys_zoom_kernel_is_used_and_map_coordinates_gives_the_same(monkeypatch):
    assert streaming_export.ZOOM_KERNEL is not None  # the pinned scipy has the kernel zoom runs
    shape, current, new = (20, 24, 22), (1.0, 1.0, 1.0), (0.7, 0.8, 0.9)
    logits = random_logits(np.random.default_rng(21), 6, shape)
    logits[3, 4:6, :3] = np.inf  # float16 overflow: interpolating it can give NaN (inf * 0), as in nnU-Net
    logits[4, 9, 9, 9] = -np.inf
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(6), PROBABILITY_KWARGS)
    fast = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(6), PROBABILITY_KWARGS,
                                                     slab_voxels=700, threads=2)
    monkeypatch.setattr(streaming_export, "ZOOM_KERNEL", None)
    slow = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(6), PROBABILITY_KWARGS,
                                                     slab_voxels=700)
    assert np.array_equal(fast, expected) and np.array_equal(slow, expected)


@pytest.mark.parametrize("geometry", [GEOMETRIES[3], GEOMETRIES[6]], ids=["separate0", "separate_out"])
def test_separate_z_with_nan_and_infinite_logits_equals_nnunet(geometry):
    shape, current, new = geometry
    logits = random_logits(np.random.default_rng(33), 5, shape)
    logits[1, 2, 3:6, 4:9] = np.nan
    logits[2, 3, :4] = np.inf
    logits[3, 1, 5, 5] = -np.inf
    new_shape = output_shape(shape, current, new)
    expected = nnunet_segmentation(logits, new_shape, current, new, labels(5), PROBABILITY_KWARGS)
    for threads in (1, 2):
        ours = streaming_export.segmentation_from_logits(logits, new_shape, current, new, labels(5),
                                                         PROBABILITY_KWARGS, slab_voxels=400, threads=threads)
        assert np.array_equal(ours, expected)
