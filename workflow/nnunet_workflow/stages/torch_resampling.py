"""nnU-Net's torch resampling of the logits (`resample_torch_fornnunet`, the plans of its `*_torchres` planners)
a few classes at a time: nnU-Net's own function called on groups of classes, whose values come out bit-identical
to its one call on every class.

torch computes each interpolated value on its own, whatever the other channels, except in one kernel: bilinear
resizing of a small plane (output height + width <= 128, torch's `_use_channels_last_kernel_2d`) runs across
channels in vectors, and the last (channel count mod vector width) channels in scalar code, which rounds
differently. nnU-Net's separate-z path resizes the planes of every class as the channels (class x plane) of one
call; the groups here then start on a multiple of 64 channels (a multiple of every vector width) and the last
ends where nnU-Net's channels end, so every channel meets the same code. (On one torch thread torch also takes
that kernel for exactly 3 channels: such plans are left to nnU-Net's export, see
`nnunet.model.torch_resampling_configuration`.) `tests/test_torch_resampling.py` proves the equality.
"""

from __future__ import annotations

import math

import numpy as np

CHANNEL_ALIGN = 64  # a multiple of the vector width of torch's float32 kernels on any CPU (4 to 16 lanes)
VECTOR_PLANE_LIMIT = 128  # torch resizes planes across channels when the output's height + width is at most this


def separate_z(kwargs: dict, current_spacing, new_spacing) -> tuple[bool, int | None]:
    """nnU-Net's torch resampling's choice: separate z or not, and along which axis."""
    from nnunetv2.configuration import ANISO_THRESHOLD
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    do_separate_z, axis = determine_do_sep_z_and_axis(
        kwargs.get("force_separate_z"), current_spacing, new_spacing,
        kwargs.get("separate_z_anisotropy_threshold", ANISO_THRESHOLD))
    return bool(do_separate_z), None if axis is None else int(axis)


def class_groups(classes: int, source_shape, new_shape, current_spacing, new_spacing, kwargs: dict
                 ) -> list[tuple[int, int]]:
    """The classes (first, last + 1) resampled together: one at a time, but on the separate-z path with a plane
    small enough for torch to vectorize across channels, as many as make a multiple of CHANNEL_ALIGN planes."""
    do_separate_z, axis = separate_z(kwargs, current_spacing, new_spacing)
    size = 1
    if do_separate_z:
        plane = [n for a, n in enumerate(new_shape) if a != axis]
        if sum(plane) <= VECTOR_PLANE_LIMIT:
            size = CHANNEL_ALIGN // math.gcd(int(source_shape[axis]), CHANNEL_ALIGN)
    return [(first, min(first + size, classes)) for first in range(0, classes, size)]


def _classes(logits, first: int, last: int) -> np.ndarray:
    """Classes first:last of the logits, from an NpyChannels file or an array."""
    if hasattr(logits, "channels"):
        return logits.channels(first, last)
    return np.asarray(logits[first:last])


def resampled_groups(logits, new_shape, current_spacing, new_spacing, kwargs: dict):
    """Yield (first class, its group's logits resampled by nnU-Net's torch function with the configuration's
    arguments `kwargs`), group after group (`class_groups`)."""
    from nnunetv2.preprocessing.resampling.resample_torch import resample_torch_fornnunet

    new_shape = [int(n) for n in new_shape]
    for first, last in class_groups(logits.shape[0], logits.shape[1:], new_shape, current_spacing, new_spacing,
                                    kwargs):
        resampled = resample_torch_fornnunet(_classes(logits, first, last), new_shape, current_spacing, new_spacing,
                                             **kwargs)
        yield first, np.asarray(resampled)
        del resampled
