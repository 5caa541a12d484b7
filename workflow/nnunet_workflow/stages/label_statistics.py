"""Per-label statistics of one segmentation (like TotalSegmentator's --statistics): voxels, volume in ml, the
intensity of each channel inside the label, and whether the label touches the image border. Pure functions
over arrays, one label at a time inside its bounding box, so memory stays near the images themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Intensity figures computed per channel inside each label.
PERCENTILES = {"p5": 5.0, "median": 50.0, "p95": 95.0}


def foreground_labels(labels: Mapping[str, int | Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """{name: label values} of the dataset.json labels a segmentation can hold, background and ignore left out
    (a region-based model's region names several values: the voxels of any of them)."""
    chosen = {}
    for name, value in labels.items():
        values = tuple(int(v) for v in value) if isinstance(value, list | tuple) else (int(value),)
        if name in ("background", "ignore") or values == (0,):
            continue
        chosen[name] = values
    return chosen


def _bounding_box(boxes: list, values: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The smallest box holding every value's box (`scipy.ndimage.find_objects` of the segmentation)."""
    found = [boxes[v - 1] for v in values if 0 < v <= len(boxes) and boxes[v - 1] is not None]
    if not found:
        return None
    return tuple(slice(min(b[a].start for b in found), max(b[a].stop for b in found)) for a in range(len(found[0])))


def _border_axes(box: tuple[slice, ...], shape: Sequence[int]) -> list[str]:
    """The image faces a box reaches: 'axis 0 start', 'axis 2 end', ... (axes of the array)."""
    faces = []
    for axis, (part, size) in enumerate(zip(box, shape)):
        if size <= 1:
            continue  # a 2D image's single plane is no border
        if part.start == 0:
            faces.append(f"axis {axis} start")
        if part.stop == size:
            faces.append(f"axis {axis} end")
    return faces


def label_statistics(seg: np.ndarray, channels: Sequence[np.ndarray], spacing: Sequence[float],
                     labels: Mapping[str, int | Sequence[int]], channel_names: Sequence[str]) -> list[dict]:
    """One row per foreground label: `label`, `value`, `voxels`, `volume_ml`, `border` (faces touched, '' if
    none) and per channel `{channel}_mean`, `_median`, `_p5`, `_p95` of the voxels inside the label (NaN when
    the label is empty). `seg` and each channel are arrays of one grid; `spacing` in mm along their axes."""
    from scipy.ndimage import find_objects

    voxel_ml = float(np.prod([float(s) for s in spacing[-seg.ndim:]])) / 1000.0
    boxes = find_objects(seg) if seg.dtype.kind in "iu" and seg.max() > 0 else []
    rows = []
    for name, values in foreground_labels(labels).items():
        row = {"label": name, "value": values[0] if len(values) == 1 else ",".join(map(str, values))}
        box = _bounding_box(boxes, values)
        mask = None if box is None else np.isin(seg[box], values)
        count = 0 if mask is None else int(np.count_nonzero(mask))
        row.update(voxels=count, volume_ml=count * voxel_ml,
                   border=", ".join(_border_axes(box, seg.shape)) if count else "")
        for channel_name, channel in zip(channel_names, channels):
            inside = channel[box][mask].astype(np.float64) if count else np.empty(0)
            row[f"{channel_name}_mean"] = float(inside.mean()) if count else float("nan")
            figures = np.percentile(inside, list(PERCENTILES.values())) if count else [float("nan")] * 3
            row.update({f"{channel_name}_{key}": float(v) for key, v in zip(PERCENTILES, figures)})
            del inside
        rows.append(row)
    return rows
