"""Memory and time estimates per stage, from a case's geometry and the model (first, uncalibrated model).

Byte counts follow the arrays nnU-Net allocates (see BRIEF): S0 original voxels, S1 voxels at the
model's target spacing, C channels, K output channels (classes or regions).
"""

from __future__ import annotations

import math
import os

MB = 1024 * 1024
# Resident memory of a Python process that has imported nnU-Net and torch, before any image is read.
NNUNET_BASE_MB = 700
# A predict worker also holds torch's CPU kernels and the network (measured ~750-770 MB on the demo).
PREDICT_BASE_MB = 1000
VALIDATE_BASE_MB = 250
# Memory of a job around its stage worker: the rule's script process, and on a cluster also the
# Snakemake process that runs the job (SLURM counts them all against --mem; a validate job of the
# demo was killed at 269 MB of 251 MB reserved before this was added).
LOCAL_JOB_OVERHEAD_MB = 100
CLUSTER_JOB_OVERHEAD_MB = 400
# nnU-Net's resampling of one channel needs ~60 bytes per output voxel (float64 work arrays).
RESAMPLE_BYTES_PER_VOXEL = 60
# The separate-z path (anisotropy > 3) resamples slice by slice then along z: ~80 bytes per output voxel.
SEPARATE_Z_BYTES_PER_VOXEL = 80
ANISOTROPY_THRESHOLD = 3
# Predict saves the logits as float16, as nnU-Net hands them to export.
LOGITS_BYTES = 2
# Work arrays of the streaming export per output voxel of a slab (coordinates, values, masks).
SLAB_WORK_BYTES = 40
SLAB_VOXELS = 1 << 21
# Share of the available memory a local run without `--resources mem_mb=` allows itself.
BUDGET_SHARE = 0.9


def resampled_shape(shape, spacing, target_spacing) -> list[int]:
    """Shape at the target spacing, as nnU-Net's compute_new_shape rounds it."""
    return [int(round(s * sp / t)) for s, sp, t in zip(shape, spacing, target_spacing)]


def separate_z(spacing, target_spacing) -> bool:
    """Whether nnU-Net resamples this case along z separately (anisotropic source or target)."""
    def anisotropic(sp):
        return max(sp) / min(sp) > ANISOTROPY_THRESHOLD

    return anisotropic(spacing) or anisotropic(target_spacing)


def stage_estimates(shape, spacing, channels, bytes_per_voxel, model, save_probabilities=False) -> dict:
    """Peak RSS (MB) and timeout (s) for preprocess, predict and export of one case.

    `shape` and `spacing` are in nnU-Net's axis order after `transpose_forward`.
    """
    target = list(model.target_spacing)
    if len(target) < len(shape):  # 2d configuration: the first axis keeps its spacing
        target = [spacing[0], *target]
    s0 = math.prod(shape)
    s1 = math.prod(resampled_shape(shape, spacing, target))
    c, k = channels, model.num_classes
    resample = SEPARATE_Z_BYTES_PER_VOXEL if separate_z(spacing, target) else RESAMPLE_BYTES_PER_VOXEL
    reading = (bytes_per_voxel + 4) * c * s0
    preprocessing = 8 * c * s0 + 8 * c * s0 + 4 * c * s1 + 16 * s0 + 8 * s1 + s0 + resample * s1
    predicting = 8 * c * s1 + 6 * k * s1 + 4 * s1
    exporting = export_bytes(k, s1, s0, resample, streaming=model.streaming_export and not save_probabilities,
                             save_probabilities=save_probabilities)
    folds = len(model.folds)
    return {
        "voxels": s0,
        "voxels_resampled": s1,
        "separate_z": separate_z(spacing, target),
        "preprocess_mb": NNUNET_BASE_MB + math.ceil(max(reading, preprocessing) / MB),
        "predict_mb": PREDICT_BASE_MB + math.ceil(predicting / MB),
        "export_mb": NNUNET_BASE_MB + math.ceil(exporting / MB),
        "preprocess_timeout_s": 300 + math.ceil(2e-6 * c * s0 + 1e-5 * s1),
        "predict_timeout_s": 600 + math.ceil(2e-4 * folds * c * s1),
        "export_timeout_s": 300 + math.ceil(2e-6 * k * s0),
    }


def export_bytes(k, s1, s0, resample_bytes, streaming, save_probabilities) -> int:
    """Bytes beyond the base that export holds at its peak (S0 stands in for the cropped volume).

    Streaming (streaming_export): one class of the logits and its float64 copy on the network grid,
    the running maximum and argmax, the un-cropped segmentation and the writer's copy, plus one slab's
    work arrays. nnU-Net's export: every class in float64 on the network grid, every class resampled
    (fp16), one class's resampling work arrays; probabilities add float32 volumes of every class.
    """
    if streaming:
        return (LOGITS_BYTES + 8) * s1 + (LOGITS_BYTES + 1) * s0 + 2 * s0 + SLAB_WORK_BYTES * min(SLAB_VOXELS, s0)
    exporting = (8 + LOGITS_BYTES) * k * s1 + LOGITS_BYTES * k * s0 + resample_bytes * s0 + 2 * s0
    if save_probabilities:
        exporting += 8 * k * s0
    return exporting


def batch_memory_mb(per_case_mb) -> int:
    """A predict batch holds one case at a time beside the loaded model: its largest case decides."""
    return max(per_case_mb, default=PREDICT_BASE_MB)


def uncompressed_bytes(path) -> int:
    """Size of an image file's content: for gzip files the size stored in their trailer, else the file size."""
    size = os.path.getsize(path)
    if not str(path).endswith(".gz") or size < 18:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        stored = int.from_bytes(handle.read(4), "little")  # ISIZE: the size modulo 2**32
    while stored < size:
        stored += 2**32
    return stored


def validate_memory_mb(channel_files) -> int:
    """Validation reads one channel's voxels at a time: a base plus twice the largest channel's content."""
    largest = max((uncompressed_bytes(p) for p in channel_files if os.path.exists(p)), default=0)
    return VALIDATE_BASE_MB + math.ceil(2 * largest / MB)


def validate_timeout_s(channel_files) -> int:
    """Validation reads every voxel once: generous time per byte, at least two minutes."""
    return 120 + math.ceil(sum(uncompressed_bytes(p) for p in channel_files if os.path.exists(p)) / (5 * MB))


def _read_int(path) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):  # absent, or "max" (no limit)
        return None


def available_memory_mb() -> int:
    """Memory free for this run now: the host's MemAvailable, or less where a cgroup (container, SLURM
    allocation) limits this process (its limit minus what it already uses)."""
    candidates = []
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit_bytes, used = _read_int(limit), _read_int(usage)
        if limit_bytes is not None and used is not None:
            candidates.append(max(limit_bytes - used, 0))
    return min(candidates) // MB


def default_budget_mb() -> int:
    """The mem_mb budget of a local run given none: 90% of the memory available when it starts."""
    return int(BUDGET_SHARE * available_memory_mb())


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES, else /dev/nvidiaN), without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len([n for n in os.listdir("/dev") if n.startswith("nvidia") and n[len("nvidia"):].isdigit()])
