"""The image's resampling to the model's target spacing in preprocessing, on threads, bit-identical to
nnU-Net's `resample_data_or_seg_to_shape` (is_seg=False), with less memory.

nnU-Net converts every channel to float64, then per channel:
- joint path: skimage's `resize` (order 3), which is scipy's `zoom`: the channel padded by 12 voxels
  (edge), its spline coefficients (a 1-D recursive filter along whole lines of axis 0, then 1, then 2,
  in float64), zoom's kernel at every output voxel, clipped to the channel's range;
- separate-z path: `resize` of every source plane in-plane, then the nearest plane along z.
Here the coefficients are computed in chunks on threads, each chunk holding whole lines of the axis it
filters (axis 0 in chunks of axis 1, then axes 1 and 2 in chunks of axis 0: the same lines in the same
order, so the same numbers), and zoom's kernel runs on slabs of the output on threads (zoom_kernel). The
separate-z path resizes only the planes it keeps, on threads, with skimage's own `resize`. No float64
copy of the image is made; the coefficients of one channel are the largest array.
`tests/test_image_resampling.py` proves the equality.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..estimates.host_memory import SLAB_VOXELS  # voxels per chunk of work handed to a thread
from .streaming_export import channel_range
from .zoom_kernel import ZOOM_KERNEL, nearest_indices, separate_z_path

SPLINE_PAD = 12  # scipy's zoom pads by this much (mode 'nearest') before its spline filter


def _chunks(length: int, per_chunk: int) -> list[tuple[int, int]]:
    step = max(1, per_chunk)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def spline_coefficients(channel: np.ndarray, order: int, run, chunk_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """zoom's spline coefficients of `channel` (float64, padded by SPLINE_PAD with its edge values on every
    side), as `spline_filter(np.pad(channel, SPLINE_PAD, mode='edge'), order, mode='nearest')` computes them,
    in chunks handed to `run(function, chunks)`."""
    from scipy.ndimage import spline_filter1d

    padded_shape = [n + 2 * SPLINE_PAD for n in channel.shape]
    sources = [np.clip(np.arange(p) - SPLINE_PAD, 0, n - 1) for p, n in zip(padded_shape, channel.shape)]
    coefficients = np.empty(padded_shape, dtype=np.float64)
    across = math.prod(padded_shape) // (padded_shape[0] * padded_shape[1])  # voxels of a line-row of axis 1

    def along_first_axis(chunk):  # whole lines of axis 0, for the axis-1 indices of the chunk
        low, high = chunk
        view = coefficients[:, low:high]
        view[...] = channel[np.ix_(sources[0], sources[1][low:high], *sources[2:])]
        spline_filter1d(view, order, 0, output=view, mode="nearest")

    def along_other_axes(chunk):  # whole lines of axes 1, 2.. within the axis-0 indices of the chunk
        view = coefficients[chunk[0]:chunk[1]]
        for axis in range(1, channel.ndim):
            spline_filter1d(view, order, axis, output=view, mode="nearest")

    if channel.ndim > 1:
        run(along_first_axis, _chunks(padded_shape[1], chunk_voxels // max(1, padded_shape[0] * across)))
        run(along_other_axes, _chunks(padded_shape[0], chunk_voxels // max(1, math.prod(padded_shape[1:]))))
    else:
        coefficients[...] = channel[sources[0]]
        spline_filter1d(coefficients, order, 0, output=coefficients, mode="nearest")
    return coefficients


def _joint_channel(channel: np.ndarray, out: np.ndarray, order: int, run, slab_voxels: int) -> None:
    """skimage's resize(channel, out.shape, order, mode='edge', anti_aliasing=False) into `out`, slab by slab
    of its first axis."""
    if ZOOM_KERNEL is None:  # a scipy without the kernel: skimage itself, whole
        from skimage.transform import resize

        out[...] = resize(channel.astype(float), out.shape, order, mode="edge", anti_aliasing=False)
        return
    low, high = channel_range(channel[None], 0, max(1, channel.shape[0]))
    zoom = np.divide(channel.shape, out.shape).astype(np.float64)
    if order > 1:
        source, npad = spline_coefficients(channel, order, run, slab_voxels), SPLINE_PAD
    else:  # zoom interpolates the values themselves (read as float64, as nnU-Net's float64 copy gives them)
        source, npad = channel, 0

    def slab(rows):
        start, stop = rows
        block = np.empty((stop - start, *out.shape[1:]), dtype=np.float64)
        ZOOM_KERNEL(source, zoom, start, block, order, npad)
        np.clip(block, low, high, out=block)
        out[start:stop] = block

    run(slab, _chunks(out.shape[0], slab_voxels // max(1, math.prod(out.shape[1:]))))


def _separate_channel(channel: np.ndarray, out: np.ndarray, axis: int, order: int, run) -> None:
    """nnU-Net's separate-z path into `out`: each source plane along `axis` that an output plane keeps (the
    nearest, map_coordinates order 0), resized in-plane by skimage's resize."""
    from skimage.transform import resize

    plane_shape = [n for a, n in enumerate(out.shape) if a != axis]
    sources = nearest_indices(channel.shape[axis], out.shape[axis])

    def plane(source):
        resized = resize(np.take(channel, source, axis=axis).astype(float), plane_shape, order, mode="edge",
                         anti_aliasing=False)
        for index in np.nonzero(sources == source)[0]:
            out[(slice(None),) * axis + (index,)] = resized

    run(plane, [int(s) for s in np.unique(sources)])


def resample_image(data: np.ndarray, new_shape, current_spacing, new_spacing, kwargs: dict, threads: int = 1,
                   slab_voxels: int = SLAB_VOXELS) -> np.ndarray:
    """`resample_data_or_seg_to_shape(data, new_shape, current_spacing, new_spacing, **kwargs)` for an image
    (C, ...) with is_seg False and order_z 0 (nnunet.model.supports_data_configuration), `threads` chunks at
    once."""
    do_separate_z, axis = separate_z_path(kwargs, current_spacing, new_spacing)
    order = kwargs.get("order", 3)
    new_shape = [int(n) for n in new_shape]
    if list(data.shape[1:]) == new_shape:
        return data
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        def run(function, items):
            if threads > 1 and len(items) > 1:
                list(pool.map(function, items))
            else:
                list(map(function, items))

        for index in range(data.shape[0]):
            if do_separate_z:
                _separate_channel(data[index], out[index], axis, order, run)
            else:
                _joint_channel(data[index], out[index], order, run, slab_voxels)
    return out
