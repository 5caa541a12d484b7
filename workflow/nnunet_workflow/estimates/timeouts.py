"""Time limits per stage and case, from the case's size and the model: generous bounds that stop a case
hanging for hours (a stalled worker is killed and the case recorded as `timeout`), not predictions."""

from __future__ import annotations

import math
import os

from ..inputs.image_size import uncompressed_bytes
from .available_memory import MB


def stage_timeouts_s(voxels: int, voxels_resampled: int, channels: int, classes: int, folds: int) -> dict:
    """Seconds preprocess, predict and export of one case may take (S0 original, S1 network-grid voxels)."""
    s0, s1 = voxels, voxels_resampled
    return {
        "preprocess": 300 + math.ceil(2e-6 * channels * s0 + 1e-5 * s1),
        "predict": 600 + math.ceil(2e-4 * folds * channels * s1),
        "export": 300 + math.ceil(2e-6 * classes * s0),
    }


def ensemble_timeout_s(voxels: int, classes: int, members: int, save_probabilities: bool = False) -> int:
    """Seconds the ensemble of one case may take: reading every member's probabilities once, and with
    save_probabilities again, deflating the average into its .npz (allowed 20 MB/s)."""
    seconds = 1e-6 * classes * members * voxels
    if save_probabilities:
        seconds = 2 * seconds + 2e-7 * classes * voxels
    return 300 + math.ceil(seconds)


def postprocess_timeout_s(voxels: int, classes: int) -> int:
    """Seconds the postprocessing of one segmentation may take (connected components per label or region)."""
    return 300 + math.ceil(2e-6 * classes * voxels)


def statistics_timeout_s(voxels: int, channels: int, classes: int) -> int:
    """Seconds the statistics of one case may take: reading it, then per label its box, voxels and percentiles."""
    return 300 + math.ceil(2e-6 * (channels + classes) * voxels)


def validate_timeout_s(channel_files) -> int:
    """Validation reads every voxel once: generous time per byte, at least two minutes."""
    return 120 + math.ceil(sum(uncompressed_bytes(p) for p in channel_files if os.path.exists(p)) / (5 * MB))
