"""A QC preview of one case: three orthogonal planes, each the one with the most segmented voxels, the labels
coloured over the first channel in a robust intensity window, drawn at the voxels' physical aspect. Pure
rendering to an RGB array, and an atomic PNG writer around it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..store.atomic_files import atomic_path

# Label colours (RGB), label value 1 first; more labels reuse them in turn.
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
], dtype=np.float32)
OPACITY = 0.45
# The intensity window: these percentiles of the channel, sampled over the whole image.
WINDOW_PERCENTILES = (1.0, 99.0)
# Each plane is drawn this many pixels along its longer physical side (at most).
PLANE_PIXELS = 256
GAP_PIXELS = 4


def window(channel: np.ndarray) -> tuple[float, float]:
    """The display window: robust percentiles of (a sample of) the channel's voxels."""
    step = max(1, channel.size // 1_000_000)
    low, high = np.percentile(channel.reshape(-1)[::step], WINDOW_PERCENTILES)
    return float(low), float(high if high > low else low + 1)


def fullest_planes(seg: np.ndarray) -> tuple[int, ...]:
    """For each axis, the index of the plane across it with the most labelled voxels (the middle one where
    nothing is labelled), so every plane shows segmented structures even where they lie apart."""
    labelled = seg > 0
    planes = []
    for axis in range(seg.ndim):
        counts = np.count_nonzero(labelled, axis=tuple(a for a in range(seg.ndim) if a != axis))
        planes.append(int(np.argmax(counts)) if counts.any() else seg.shape[axis] // 2)
    return tuple(planes)


def _plane_rgb(image: np.ndarray, labels: np.ndarray, low: float, high: float) -> np.ndarray:
    grey = np.clip((image.astype(np.float32) - low) / (high - low), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    labelled = labels > 0
    colours = PALETTE[(labels[labelled].astype(np.int64) - 1) % len(PALETTE)]
    rgb[labelled] = (1 - OPACITY) * rgb[labelled] + OPACITY * colours
    return rgb.astype(np.uint8)


def _resize(rgb: np.ndarray, spacing: Sequence[float], scale: float) -> np.ndarray:
    """Nearest-neighbour resize of a plane to its physical aspect (rows x cols mm) at `scale` pixels per mm."""
    rows = max(1, round(rgb.shape[0] * spacing[0] * scale))
    cols = max(1, round(rgb.shape[1] * spacing[1] * scale))
    r = np.minimum((np.arange(rows) / rows * rgb.shape[0]).astype(int), rgb.shape[0] - 1)
    c = np.minimum((np.arange(cols) / cols * rgb.shape[1]).astype(int), rgb.shape[1] - 1)
    return rgb[r][:, c]


def render_preview(channel: np.ndarray, seg: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """An RGB (H, W, 3) uint8 picture: for a 3D case the fullest planes across axis 0, 1 and 2 side by side
    (axis 0 first: the axial plane of a scan read by nnU-Net's SimpleITK reader), with axis 0 pointing up in
    the other two; for a 2D case (one plane along axis 0) that plane. Rows and columns are otherwise drawn as
    the array stores them (no orientation is guessed)."""
    spacing = [float(s) for s in spacing[-seg.ndim:]]
    low, high = window(channel)
    centre = fullest_planes(seg)
    axes = [0] if seg.shape[0] == 1 else [0, 1, 2]
    planes = []
    for axis in axes:
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        rgb = _plane_rgb(channel[tuple(index)], seg[tuple(index)], low, high)
        if axis != 0:
            rgb = rgb[::-1]  # axis 0 upwards, as slices of a scan are shown
        plane_spacing = [s for a, s in enumerate(spacing) if a != axis]
        planes.append((rgb, plane_spacing))
    longest = max(max(rgb.shape[0] * sp[0], rgb.shape[1] * sp[1]) for rgb, sp in planes)
    resized = [_resize(rgb, sp, PLANE_PIXELS / longest) for rgb, sp in planes]
    height = max(p.shape[0] for p in resized)
    width = sum(p.shape[1] for p in resized) + GAP_PIXELS * (len(resized) - 1)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    left = 0
    for plane in resized:
        canvas[: plane.shape[0], left : left + plane.shape[1]] = plane
        left += plane.shape[1] + GAP_PIXELS
    return canvas


def write_png(path, rgb: np.ndarray) -> None:
    """Write an RGB array as a PNG, atomically."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as temp:
        Image.fromarray(rgb).save(temp, format="PNG")
