"""The preprocessing's image resampling equals nnU-Net's `resample_data_or_seg_to_shape` bit for bit: joint and
separate-z paths (along each axis, up and down, unchanged along z), a 2d configuration's single slice, spline
orders 0 to 5, NaN, several channels, any number of threads and slabs down to one voxel."""

import numpy as np
import pytest

from nnunet_workflow.nnunet.model import supports_data_configuration
from nnunet_workflow.stages import image_resampling

pytest.importorskip("nnunetv2")
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape  # noqa: E402

DATA_KWARGS = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}

# (channels, source shape, source spacing, target spacing)
GEOMETRIES = [
    (2, (23, 31, 17), (1.0, 1.0, 1.0), (1.7, 0.8, 1.3)),   # joint, mixed up and down
    (1, (20, 18, 22), (0.8, 0.8, 0.8), (1.5, 1.5, 1.5)),   # joint, a CT to a coarser model
    (1, (9, 30, 28), (4.0, 1.0, 1.0), (3.0, 0.7, 0.7)),    # separate along axis 0 (anisotropic source)
    (1, (30, 7, 28), (1.0, 4.5, 1.0), (0.9, 3.0, 0.9)),    # separate along axis 1
    (2, (26, 24, 9), (0.9, 0.9, 4.0), (0.7, 0.7, 4.0)),    # separate along axis 2, unchanged along it
    (1, (12, 16, 16), (1.0, 1.0, 1.0), (0.25, 1.0, 1.0)),  # separate because the target is anisotropic
    (1, (1, 40, 33), (3.0, 1.0, 1.0), (3.0, 0.7, 1.9)),    # a single slice (2d configuration)
]


def reference(data, current, new, kwargs):
    new_shape = [int(round(s * c / n)) for s, c, n in zip(data.shape[1:], current, new)]
    return new_shape, resample_data_or_seg_to_shape(data, new_shape, current, new, **kwargs)


def random_image(rng, channels, shape):
    data = rng.normal(scale=100, size=(channels, *shape)).astype(np.float32)
    data[:, : max(1, shape[0] // 3)] = 0  # flat parts, as a background gives them
    return data


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[f"g{i}" for i in range(len(GEOMETRIES))])
@pytest.mark.parametrize("threads,slab_voxels", [(1, 1 << 21), (2, 1), (3, 97)])
def test_equals_nnunet_resampling(geometry, threads, slab_voxels):
    channels, shape, current, new = geometry
    data = random_image(np.random.default_rng(len(shape) + channels), channels, shape)
    new_shape, expected = reference(data, current, new, DATA_KWARGS)
    got = image_resampling.resample_image(data, new_shape, current, new, DATA_KWARGS, threads, slab_voxels)
    assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("order", [0, 1, 2, 4, 5])
def test_every_spline_order_equals_nnunet(order):
    data = random_image(np.random.default_rng(order), 1, (17, 21, 19))
    kwargs = {**DATA_KWARGS, "order": order}
    new_shape, expected = reference(data, (1.0, 1.0, 1.0), (0.7, 1.3, 0.9), kwargs)
    assert np.array_equal(image_resampling.resample_image(data, new_shape, (1.0, 1.0, 1.0), (0.7, 1.3, 0.9), kwargs,
                                                          2, 50), expected)


@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2]], ids=["joint", "separate"])
def test_nan_and_forced_separate_z_equal_nnunet(geometry):
    channels, shape, current, new = geometry
    data = random_image(np.random.default_rng(7), channels, shape)
    data[0, shape[0] // 2, 3, 4] = np.nan  # NaN spreads along the spline's lines, and clipping skips it
    for kwargs in (DATA_KWARGS, {**DATA_KWARGS, "force_separate_z": True}, {**DATA_KWARGS, "force_separate_z": False}):
        new_shape, expected = reference(data, current, new, kwargs)
        got = image_resampling.resample_image(data, new_shape, current, new, kwargs, 2, 200)
        assert np.array_equal(got, expected, equal_nan=True) and np.isnan(got).any()


def test_unchanged_shape_returns_the_data_itself():
    data = random_image(np.random.default_rng(1), 1, (8, 9, 10))
    assert image_resampling.resample_image(data, (8, 9, 10), (1, 1, 1), (1, 1, 1), DATA_KWARGS, 2) is data


def test_spline_coefficients_are_scipys_of_the_padded_channel():
    from scipy.ndimage import spline_filter

    channel = np.random.default_rng(3).normal(size=(11, 14, 9)).astype(np.float32)
    padded = np.pad(channel.astype(float), image_resampling.SPLINE_PAD, mode="edge")
    expected = spline_filter(padded, 3, output=np.float64, mode="nearest")
    for chunk_voxels in (1, 1000, 1 << 21):
        got = image_resampling.spline_coefficients(channel, 3, lambda f, items: list(map(f, items)), chunk_voxels)
        assert np.array_equal(got, expected)


def test_supports_only_what_it_reproduces():
    base = {"resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": DATA_KWARGS}
    assert supports_data_configuration(base)
    assert not supports_data_configuration({**base, "resampling_fn_data": "resample_torch_fornnunet"})
    assert not supports_data_configuration({**base, "resampling_fn_data_kwargs": {**DATA_KWARGS, "order_z": 1}})
    assert not supports_data_configuration({**base, "resampling_fn_data_kwargs": {**DATA_KWARGS, "is_seg": True}})
