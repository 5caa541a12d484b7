"""scipy.ndimage's zoom, as skimage's `resize` runs it, in pieces: nnU-Net's choice of the separate-z path, the
source coordinates of output indices, the nearest source index along an axis, and zoom's own C kernel on part of
an output.

`zoom(input, ..., grid_mode=True)` computes each output index's source coordinate as
(index + 0.5) * (n_in / n_out) - 0.5 and interpolates there. Running its kernel with the index shifted by
the first index of a block of the output computes the same coordinates, so a block of the output is
bit-identical to the same voxels of the whole (the streaming export and the preprocessing resample this way,
a block per thread).
"""

from __future__ import annotations

from functools import partial

import numpy as np


def separate_z_path(kwargs: dict, current_spacing, new_spacing) -> tuple[bool, int | None]:
    """Whether nnU-Net's `resample_data_or_seg_to_shape` called with `kwargs` takes its separate-z path, and
    along which axis (its own decision, with its defaults: force_separate_z False, the anisotropy threshold)."""
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    extra = {}
    if "separate_z_anisotropy_threshold" in kwargs:
        extra["separate_z_anisotropy_threshold"] = kwargs["separate_z_anisotropy_threshold"]
    return determine_do_sep_z_and_axis(kwargs.get("force_separate_z", False), current_spacing, new_spacing, **extra)


def grid_coordinates(n_in: int, n_out: int, start: int, stop: int) -> np.ndarray:
    """Source coordinates of output indices start..stop-1, computed as scipy's zoom (grid_mode) does."""
    zoom = np.divide(n_in, n_out)
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * zoom - 0.5


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source slice of each output slice along nnU-Net's separate axis (map_coordinates, order 0, 'nearest')."""
    coordinates = float(n_in) / n_out * (np.arange(n_out) + 0.5) - 0.5
    return np.floor(np.clip(coordinates, 0, n_in - 1) + 0.5).astype(np.intp)


def _zoom_block(kernel, mode, source, zoom, start, output, order, npad: int = 0) -> None:
    """Zoom's kernel on `source`, the output's first index along each axis `start` (one per axis, or an int
    for the first axis): coordinates (index + start + 0.5) * zoom - 0.5 (+ npad, where `source` is zoom's
    spline coefficients of the input padded by npad on every side), as zoom computes them."""
    shift = np.zeros(source.ndim, dtype=np.float64)
    starts = np.atleast_1d(start)
    shift[: len(starts)] = starts
    kernel(source, zoom, shift, output, order, mode, 0.0, npad, True)


def _zoom_kernel():
    """scipy.ndimage's zoom kernel (what `zoom` and thus skimage's resize run) with edge mode 'nearest', or None
    where this scipy has no kernel of the signature used (callers then compute the same values slower)."""
    try:
        from scipy.ndimage import _nd_image, _ni_support

        return partial(_zoom_block, _nd_image.zoom_shift, _ni_support._extend_mode_to_code("nearest"))
    except (ImportError, AttributeError):
        return None


ZOOM_KERNEL = _zoom_kernel()
