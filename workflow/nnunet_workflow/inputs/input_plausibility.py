"""Input plausibility against the model's training data (`dataset_fingerprint.json` in the model folder, as
nnU-Net's trainer copies it there): each channel's intensities against the training foreground's, channels
that fit each other's training intensities far better than their own (swapped), and a spacing outside the
training cases' range. Notes name the channel, the measured and the expected figures.

The fingerprint holds the intensities of the training cases' labelled voxels only, so the check asks whether
an image holds such intensities at all, not whether it looks like them as a whole (background differs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FINGERPRINT = "dataset_fingerprint.json"
# A channel with fewer of its voxels than this inside the training foreground's intensity range is noted (a demo
# T1 on a 10x scale kept 0.23% there through its noise; the demo's own T1 has ~30%).
MIN_SHARE_IN_RANGE = 0.01
# Channels i and j look swapped when each has this many times more voxels in the other's range than in its own.
SWAP_FACTOR = 4.0
# A spacing beyond the training cases' smallest / largest by more than this factor (any axis) is noted.
SPACING_FACTOR = 2.0
# Intensity figures come from at most about this many voxels, evenly strided over the image.
SAMPLE_VOXELS = 1_000_000


@dataclass(frozen=True)
class TrainingReference:
    """From the fingerprint: per channel the training foreground's (p0.5, median, p99.5), and per axis of
    the reader's array order the training cases' (smallest, largest) spacing."""

    intensities: tuple[tuple[float, float, float], ...]
    spacing_range: tuple[tuple[float, float], ...] = ()


def load_reference(model_folder) -> TrainingReference | None:
    """The training reference of a model folder, or None when it has no (readable) fingerprint."""
    try:
        fingerprint = json.loads((Path(model_folder) / FINGERPRINT).read_text())
        per_channel = fingerprint["foreground_intensity_properties_per_channel"]
        intensities = tuple((float(c["percentile_00_5"]), float(c["median"]), float(c["percentile_99_5"]))
                            for _, c in sorted(per_channel.items(), key=lambda item: int(item[0])))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    spacings = np.array(fingerprint.get("spacings") or [], dtype=float)
    spacing_range = tuple(zip(spacings.min(axis=0), spacings.max(axis=0))) if spacings.ndim == 2 else ()
    return TrainingReference(intensities, tuple((float(lo), float(hi)) for lo, hi in spacing_range))


def channel_figures(array: np.ndarray, reference: TrainingReference) -> dict:
    """An image channel's p0.5, median and p99.5, and the share of its voxels inside each training channel's
    foreground range [p0.5, p99.5] (`in_range`, one per training channel), from an even sample of voxels."""
    flat = array.reshape(-1)
    sample = flat[:: max(1, flat.size // SAMPLE_VOXELS)].astype(np.float64)
    low, median, high = np.percentile(sample, [0.5, 50, 99.5])
    in_range = [float(np.count_nonzero((sample >= lo) & (sample <= hi)) / sample.size)
                for lo, _, hi in reference.intensities]
    return {"p0_5": float(low), "median": float(median), "p99_5": float(high), "in_range": in_range}


def _range(figures: Sequence[float]) -> str:
    return f"{figures[0]:.4g} to {figures[-1]:.4g}"


def _name(index: int, names: Sequence[str]) -> str:
    return names[index] if index < len(names) else str(index)


def _channel(index: int, names: Sequence[str]) -> str:
    return f"channel {index:04d} ({names[index]})" if index < len(names) else f"channel {index:04d}"


def swapped_pairs(figures: Sequence[dict]) -> list[tuple[int, int]]:
    """Pairs of channels (i < j) whose voxels fit the other's training range far better than their own."""
    pairs = []
    for i in range(len(figures)):
        for j in range(i + 1, len(figures)):
            own_i, own_j = figures[i]["in_range"][i], figures[j]["in_range"][j]
            other_i, other_j = figures[i]["in_range"][j], figures[j]["in_range"][i]
            if (other_i > max(MIN_SHARE_IN_RANGE, SWAP_FACTOR * own_i)
                    and other_j > max(MIN_SHARE_IN_RANGE, SWAP_FACTOR * own_j)):
                pairs.append((i, j))
    return pairs


def intensity_notes(figures: Sequence[dict], reference: TrainingReference, names: Sequence[str]) -> list[str]:
    """Notes on a case's channels (`figures` in channel order, from channel_figures)."""
    notes, swapped = [], set()
    for i, j in swapped_pairs(figures):
        swapped |= {i, j}
        notes.append(
            f"{_channel(i, names)} and {_channel(j, names)} look swapped: {figures[i]['in_range'][j]:.1%} of "
            f"{_channel(i, names)}'s voxels lie in {_name(j, names)}'s training foreground range "
            f"({_range(reference.intensities[j])}) and {figures[i]['in_range'][i]:.1%} in its own "
            f"({_range(reference.intensities[i])}); {figures[j]['in_range'][i]:.1%} of {_channel(j, names)}'s in "
            f"{_name(i, names)}'s and {figures[j]['in_range'][j]:.1%} in its own")
    for index, found in enumerate(figures):
        if index in swapped or index >= len(reference.intensities):
            continue
        share = found["in_range"][index]
        if share < MIN_SHARE_IN_RANGE:
            expected = reference.intensities[index]
            notes.append(
                f"{_channel(index, names)}: {share:.2%} of its voxels lie in the training foreground's intensity "
                f"range {_range(expected)} (p0.5 to p99.5, median {expected[1]:.4g}, {FINGERPRINT}); this image "
                f"spans {_range((found['p0_5'], found['p99_5']))} (p0.5 to p99.5, median {found['median']:.4g})")
    return notes


def spacing_notes(spacing: Sequence[float], reference: TrainingReference) -> list[str]:
    """A note when the spacing (the reader's array order, as the fingerprint's) is outside the training
    cases' range by more than SPACING_FACTOR on some axis."""
    if len(reference.spacing_range) != len(spacing):
        return []
    outside = [axis for axis, (s, (lo, hi)) in enumerate(zip(spacing, reference.spacing_range))
               if s < lo / SPACING_FACTOR or s > hi * SPACING_FACTOR]
    if not outside:
        return []
    ranges = ", ".join(f"{lo:.3g}-{hi:.3g}" for lo, hi in reference.spacing_range)
    return [f"spacing {[round(float(s), 3) for s in spacing]} mm is outside the training cases' range "
            f"[{ranges}] by more than a factor {SPACING_FACTOR:g} on axis {', '.join(map(str, outside))}"]
