"""Memory-bounded export: logits to a segmentation one class at a time, the output resampled in slabs.

nnU-Net's export resamples all K channels of the logits to the original geometry at once (float64
work arrays of ~60 bytes per output voxel for each channel, K resampled channels kept), then takes
the argmax. Here each channel is resampled slab by slab and folded into a running argmax (or, for
region models, the region mask in `regions_class_order`), so memory no longer grows with K or with
the size of the output beyond a few bytes per voxel.

It is bit-identical to `export_prediction_from_logits` with `resample_data_or_seg_to_shape`:
- the joint path (no separate z) evaluates the same `scipy.ndimage` spline code that skimage's
  `resize` calls (`zoom` with `grid_mode=True`), through `map_coordinates` fed the very coordinates
  `zoom` computes, one slab of output rows at a time, then clips to the channel's range as skimage does;
- the separate-z path calls skimage's `resize` on each source slice exactly as nnU-Net does, and
  picks slices along z with the nearest-neighbour index `map_coordinates(order=0, mode='nearest')`
  computes;
- values are cast to the logits' dtype before the argmax, which keeps the first maximum (and the
  first NaN), as numpy's argmax does.
Other resampling functions or orders are not reproduced: `supports` says so and export falls back
to nnU-Net's own function. `tests/test_streaming_export.py` proves the equality.
"""

from __future__ import annotations

import math

import numpy as np

from ..estimates.host_memory import (
    SLAB_VOXELS,  # output voxels per slab (host_memory.SLAB_WORK_BYTES of work arrays each)
)
from ..nnunet.model import resampling_kwargs, supports_configuration


class NpyChannels:
    """The channels of a saved (C, ...) array, read from the .npy file one at a time on indexing.

    A memory map would do the same with less code, but every page it touches stays in the process's
    resident memory until it is closed, so the whole file would end up counted against the job.
    """

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            self.shape, fortran_order, self.dtype = read_header(handle)
            self.offset = handle.tell()
        if fortran_order or self.dtype.hasobject:
            raise ValueError(f"{self.path}: expected a C-ordered numeric array")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        count = math.prod(self.shape[1:])
        return np.fromfile(self.path, dtype=self.dtype, count=count,
                           offset=self.offset + index * count * self.dtype.itemsize).reshape(self.shape[1:])

    def slab(self, index: int, start: int, stop: int) -> np.ndarray:
        """Rows start:stop (along the first axis after the channels) of one channel."""
        row = math.prod(self.shape[2:])
        first = (index * self.shape[1] + start) * row
        return np.fromfile(self.path, dtype=self.dtype, count=(stop - start) * row,
                           offset=self.offset + first * self.dtype.itemsize).reshape(stop - start, *self.shape[2:])


def supports(configuration_manager) -> bool:
    """Whether this configuration's probability resampling is one this module reproduces exactly."""
    return supports_configuration(configuration_manager.configuration)


def _grid_coordinates(n_in: int, n_out: int, start: int, stop: int) -> np.ndarray:
    """Source coordinates of output indices start..stop-1, computed as scipy's zoom (grid_mode) does."""
    zoom = np.divide(n_in, n_out)
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * zoom - 0.5


def _nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source slice of each output slice along the separate axis (map_coordinates, order 0, 'nearest')."""
    coordinates = float(n_in) / n_out * (np.arange(n_out) + 0.5) - 0.5
    return np.floor(np.clip(coordinates, 0, n_in - 1) + 0.5).astype(np.intp)


def _joint_slabs(channel: np.ndarray, new_shape, order: int, slab_voxels: int):
    """skimage resize(channel, new_shape, order, mode='edge', anti_aliasing=False), slab by slab of axis 0."""
    from scipy import ndimage

    low, high = channel.min(), channel.max()
    if np.isnan(low):  # skimage then clips to the range of the values that are numbers
        low, high = np.nanmin(channel), np.nanmax(channel)
    rest = [_grid_coordinates(channel.shape[a], new_shape[a], 0, new_shape[a]) for a in range(1, channel.ndim)]
    rows = max(1, slab_voxels // max(1, math.prod(new_shape[1:])))
    for start in range(0, new_shape[0], rows):
        stop = min(start + rows, new_shape[0])
        axes = [_grid_coordinates(channel.shape[0], new_shape[0], start, stop), *rest]
        shape = (stop - start, *new_shape[1:])
        grids = [np.broadcast_to(c.reshape([-1 if a == i else 1 for a in range(len(axes))]), shape)
                 for i, c in enumerate(axes)]
        block = ndimage.map_coordinates(channel, np.stack(grids), order=order, mode="nearest")
        del grids
        np.clip(block, low, high, out=block)
        yield (slice(start, stop),), block


def _separate_slabs(channel: np.ndarray, new_shape, axis: int, order: int):
    """nnU-Net's separate-z resampling: skimage resize per source slice, nearest slice along `axis`."""
    from skimage.transform import resize

    plane_shape = [n for a, n in enumerate(new_shape) if a != axis]
    sources = _nearest_indices(channel.shape[axis], new_shape[axis])
    cached_index, cached_plane = None, None
    for out_index, source in enumerate(sources):
        if source != cached_index:
            source_slice = np.take(channel, source, axis=axis)
            cached_plane = resize(source_slice, plane_shape, order, mode="edge", anti_aliasing=False)
            cached_index = source
        slicer = tuple(slice(out_index, out_index + 1) if a == axis else slice(None) for a in range(channel.ndim))
        yield slicer, np.expand_dims(cached_plane, axis)


def resampled_channel(channel: np.ndarray, new_shape, do_separate_z: bool, axis, order: int,
                      slab_voxels: int = SLAB_VOXELS):
    """Yield (slicer, block): the channel resampled as nnU-Net's resample_data_or_seg does, as float64
    blocks of the output (before the cast to the logits' dtype)."""
    new_shape = [int(n) for n in new_shape]
    if list(channel.shape) == new_shape:
        yield (slice(None),), channel
        return
    channel = channel.astype(float, copy=False)
    if do_separate_z:
        yield from _separate_slabs(channel, new_shape, axis, order)
    else:
        yield from _joint_slabs(channel, new_shape, order, slab_voxels)


def segmentation_from_logits(logits, new_shape, current_spacing, new_spacing, label_manager,
                             kwargs: dict, slab_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """The segmentation nnU-Net's export computes before un-cropping, holding one class at a time.

    `logits` may be an `NpyChannels`: only one channel of it is read at a time.
    """
    import torch
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    extra = {}
    if "separate_z_anisotropy_threshold" in kwargs:
        extra["separate_z_anisotropy_threshold"] = kwargs["separate_z_anisotropy_threshold"]
    do_separate_z, axis = determine_do_sep_z_and_axis(kwargs.get("force_separate_z", False), current_spacing,
                                                      new_spacing, **extra)
    order = kwargs.get("order", 3)
    new_shape = [int(n) for n in new_shape]
    dtype = logits.dtype
    if label_manager.has_regions:
        segmentation = np.zeros(new_shape, dtype=np.uint16)
    else:
        label_dtype = np.uint8 if logits.shape[0] <= 256 else np.uint16
        segmentation = np.zeros(new_shape, dtype=label_dtype)
        best = np.empty(new_shape, dtype=dtype)
    for index in range(logits.shape[0]):
        channel = np.asarray(logits[index])
        for slicer, block in resampled_channel(channel, new_shape, do_separate_z, axis, order, slab_voxels):
            values = block.astype(dtype, copy=False)
            if label_manager.has_regions:
                with torch.no_grad():
                    probability = label_manager.inference_nonlin(torch.from_numpy(values).float())
                inside = (probability > 0.5).numpy()
                segmentation[slicer][inside] = label_manager.regions_class_order[index]
            elif index == 0:
                best[slicer] = values
            else:
                current = best[slicer]
                higher = values > current
                if np.issubdtype(dtype, np.floating):
                    higher |= np.isnan(values) & ~np.isnan(current)
                current[higher] = values[higher]
                segmentation[slicer][higher] = index
        del channel
    return segmentation


def export_streaming(logits, properties: dict, configuration_manager, plans_manager, dataset_json: dict,
                     output_file: str, slab_voxels: int = SLAB_VOXELS) -> None:
    """Write the segmentation file exactly as export_prediction_from_logits(save_probabilities=False) does."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    label_manager = plans_manager.get_label_manager(dataset_json)
    spacing_transposed = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    cropped_shape = properties["shape_after_cropping_and_before_resampling"]
    current_spacing = configuration_manager.spacing if len(configuration_manager.spacing) == len(cropped_shape) \
        else [spacing_transposed[0], *configuration_manager.spacing]
    segmentation = segmentation_from_logits(
        logits, cropped_shape, current_spacing, spacing_transposed, label_manager,
        resampling_kwargs(configuration_manager.configuration), slab_voxels,
    )
    label_dtype = np.uint8 if len(label_manager.foreground_labels) < 255 else np.uint16
    reverted = np.zeros(properties["shape_before_cropping"], dtype=label_dtype)
    reverted = insert_crop_into_image(reverted, segmentation, properties["bbox_used_for_cropping"])
    del segmentation
    reverted = reverted.transpose(plans_manager.transpose_backward)
    writer = plans_manager.image_reader_writer_class()
    writer.write_seg(reverted, output_file, properties)
