"""What a case's stages write to disk (MB), from its geometry: the per-case disk estimate each job's free-space
check holds against the results folder's filesystem before it runs a case (execution/batch).

Preprocess writes the preprocessed array (float32, every input channel on the network grid: the whole grid,
an upper bound of nnU-Net's crop), predict the logits (float16, every class on the network grid), export the
segmentation (at most a byte per original voxel, before compression) and, with probabilities kept, every
class as float32 on the original grid (an ensemble member's export always keeps them)."""

from __future__ import annotations

import math

MB = 2**20
# the records, properties and logs of a case's stage, whatever its size
SMALL_FILES_MB = 1


def _mb(size: float) -> int:
    return SMALL_FILES_MB + math.ceil(size / MB)


def stage_disk_mb(voxels: int, voxels_resampled: int, input_channels: int, classes: int,
                  save_probabilities: bool) -> dict[str, int]:
    """{stage: MB written} for preprocess, predict and export of one case of one model."""
    probabilities = 4 * classes * voxels if save_probabilities else 0
    return {"preprocess": _mb(4 * input_channels * voxels_resampled),
            "predict": _mb(2 * classes * voxels_resampled),
            "export": _mb(voxels + probabilities)}
