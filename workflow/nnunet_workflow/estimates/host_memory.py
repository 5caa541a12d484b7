"""Memory estimates per stage, from a case's geometry and the model.

Each estimate is a worker's base (its imports) plus the bytes of the arrays the stage holds at its
peak: S0 original voxels, S1 voxels at the model's target spacing, C channels, K output channels
(classes or regions). The byte counts follow the arrays nnU-Net's code allocates; the bases and the
coefficients are calibrated by `benchmarks/memory_model.py`, which measures the peak RSS of every
stage on cases from 64^3 to 512x512x300 (isotropic and with nnU-Net's separate-z path) with 3 and
50 classes: each estimate must be above its measurement, with a median over-reservation <= 1.3x.
"""

from __future__ import annotations

import math
import os

from ..inputs.image_size import uncompressed_bytes
from ..store.records import Estimates
from . import gpu_memory
from .available_memory import MB

# Predict saves the logits as float16, as nnU-Net hands them to export (and holds them on the GPU).
from .gpu_memory import LOGITS_BYTES

# Resident memory of a stage worker before it reads an image: a Python process that imported
# nnU-Net and torch (measured 394-474 MB for preprocess and export on small cases) ...
NNUNET_BASE_MB = 480
# ... and a predict worker, which also holds torch's CPU kernels and the network (717-782 MB measured).
PREDICT_BASE_MB = 830
VALIDATE_BASE_MB = 250
# Every byte count below is multiplied by this margin (allocator slack, arrays briefly doubled).
MARGIN = 1.15
ANISOTROPY_THRESHOLD = 3
# Work arrays of the streaming export per output voxel of a slab (coordinates, values, masks).
SLAB_WORK_BYTES = 64
SLAB_VOXELS = 1 << 21


def resampled_shape(shape, spacing, target_spacing) -> list[int]:
    """Shape at the target spacing, as nnU-Net's compute_new_shape rounds it."""
    return [int(round(s * sp / t)) for s, sp, t in zip(shape, spacing, target_spacing)]


def _anisotropic(spacing) -> bool:
    return max(spacing) / min(spacing) > ANISOTROPY_THRESHOLD


def separate_z(spacing, target_spacing) -> bool:
    """Whether nnU-Net resamples this case along z separately (anisotropic source or target)."""
    return _anisotropic(spacing) or _anisotropic(target_spacing)


def lowres_axis(spacing, target_spacing) -> int:
    """The axis nnU-Net's separate-z path treats apart: the coarsest of the source, else of the target."""
    chosen = spacing if _anisotropic(spacing) else target_spacing
    return max(range(len(chosen)), key=lambda a: chosen[a])


def parallel_preprocess_bytes(c, shape, s1, separate, bytes_per_voxel, threads=1) -> int:
    """nnU-Net's preprocessing with the image resampled on threads (stages/case_preprocessing), the larger of:
    reading (nnU-Net's reader holds each channel as read, their stack and its float32 copy, and one image of
    SimpleITK's) and resampling (the float32 channels, the crop's mask, on the joint path one channel's float64
    spline coefficients over the image padded by 12 voxels on every side, the float32 output, and per thread a
    chunk's float32 source and float64 block)."""
    s0 = math.prod(shape)
    reading = (2 * bytes_per_voxel + 4) * c * s0 + bytes_per_voxel * s0
    coefficients = 0 if separate else 8 * math.prod(n + 24 for n in shape)
    work = 12 * min(SLAB_VOXELS, s0) * slab_threads(s0, threads)
    return max(reading, 4 * c * s0 + 2 * s0 + coefficients + 4 * c * s1 + work)


def preprocess_bytes(c, s0, s1, separate) -> int:
    """nnU-Net's own run_case (a preprocessor or resampling case_preprocessing leaves to it): reading, cropping,
    normalizing and resampling to the target spacing (order 3). Fitted per channel on measurements: ~16.5 bytes
    per original voxel (the image in float32 and float64 copies, masks) and ~66 bytes per target voxel (spline
    work arrays, the resampled data and its float64 output), ~45 on the separate-z path. A CT at 4 mm (few target
    voxels) and at 2x1.5x1.5 mm (many) pin the two apart."""
    per_target_voxel = 45 if separate else 66
    return math.ceil(c * (16.5 * s0 + per_target_voxel * s1))


def cascade_preprocess_bytes(c, labels, s0, s1) -> int:
    """What a cascade stage's preprocess holds besides: the previous stage's segmentation as its reader gives
    it (float32), then its one-hot channels (float32 per foreground label) and the stacked copy of every
    channel. Measured on a 240x240x140 case (2 channels, 2 labels): 220 MB more than without (this: 247)."""
    return 4 * s0 + 4 * labels * s1 + 4 * (c + labels) * s1


# With `out_of_core: auto`, prediction on the CPU keeps its sums on disk (stages/disk_sliding_window) once the logits
# would take more than this in memory: beyond it they, not the network, would make predict the run's largest job.
LOGITS_ON_DISK_BYTES = 512 << 20


def predict_sums_on_disk(policy: str, classes: int, s1: int, on_cpu: bool) -> bool:
    """Whether predict keeps the sliding window's sums on disk: `out_of_core` always, or auto on the CPU with logits
    larger than LOGITS_ON_DISK_BYTES (on a GPU nnU-Net keeps them on the device, or itself on the host)."""
    if policy in ("always", "never"):
        return policy == "always"
    return on_cpu and LOGITS_BYTES * classes * s1 > LOGITS_ON_DISK_BYTES


def disk_predict_bytes(c, k, s1, patch_voxels) -> int:
    """Prediction with its sums on disk: the summed Gaussian weights (float16 on the network grid) and a tile's
    arrays (the image's tile and its copies, the network's output for every class and its mirrored sums in
    float32, the sums' pages of the tile); a volume smaller than a tile is padded to one in memory."""
    return 2 * s1 + (8 * c + 20 * k) * patch_voxels


def predict_bytes(c, k, s1, folds) -> int:
    """The preprocessed data (float32, padded copy) and the logits: ~5 bytes per class and voxel on the
    network grid measured on CPU (float16 accumulators, float16 logits and the patch outputs); a second
    fold's logits while folds are averaged."""
    return (5 * k + 4 * c + 4) * s1 + (LOGITS_BYTES * k * s1 if folds > 1 else 0)


def slab_threads(voxels: int, wanted: int) -> int:
    """The threads a stage that works slab by slab (the streaming export, the preprocessing's resampling) uses on
    a case of `voxels` voxels: one per slab, at most `wanted`."""
    return max(1, min(wanted, math.ceil(voxels / SLAB_VOXELS)))


def torch_export_bytes(group, s1, s0, plane_ratio=0.0) -> int:
    """nnU-Net's torch resampling a group of classes at a time (stages/torch_resampling): their logits as read and
    their float32 copy, on the separate-z path the planes resized in-plane and their rearranged copy (plane_ratio:
    source planes over output planes along the axis; 0 on the joint path), the float32 output; besides, the running
    maximum (float32) and argmax."""
    return group * ((LOGITS_BYTES + 8) * s1 + 4 * s0 * (1 + 2 * plane_ratio)) + 6 * s0


def torch_group(k, separate, plane_sum) -> int:
    """At most how many classes the torch resampling takes at once (stages/torch_resampling.class_groups): 64 on the
    separate-z path with a small output plane, else one."""
    return min(k, 64) if separate and plane_sum <= 128 else 1


def export_bytes(k, s1, s0, separate_work, streaming, save_probabilities, plane=0, threads=1,
                 first_plane=0, torch_bytes=0, regions=False) -> int:
    """Bytes beyond the base that export holds at its peak (S0 stands in for the cropped volume).

    Streaming (streaming_export), the larger of: one class of the logits and its float64 copy on the
    network grid, the running maximum and argmax, the work arrays of one slab (at least a plane on the
    separate-z path) per thread; and writing: the un-cropped segmentation and the writer's copies.
    Streaming with probabilities (streaming_probabilities): the segmentation and per thread a slab of every
    class (at least a plane of the output, `first_plane` voxels: its values in float16, the softmax's float32
    input and output, the bytes written, what the allocator keeps of them) and one class's float64 rows; then,
    on top, the archive's writing: one class's cropped probabilities and the rows being deflated.
    With nnU-Net's torch resampling (`torch_bytes`, torch_export_bytes), its classes whole in place of the slabs'
    resampling (and, with probabilities, before the slabs read them back from the scratch file). A region model's
    probabilities are painted class by class: the segmentation (uint16), one class's probabilities and its mask.
    nnU-Net's export, the larger of: resampling (every class in float64 on the network grid, every
    class resampled in float16, one class's resampling work arrays: `separate_work` bytes per output
    voxel) and the argmax (int64) or the probabilities (float32 of every class, un-cropped copy).
    """
    if streaming and torch_bytes:
        if save_probabilities:
            return max(torch_bytes + s0, export_bytes(k, s1, s0, separate_work, True, True, plane, threads,
                                                      first_plane, regions=regions))
        return max(torch_bytes, 3 * s0)
    if streaming and save_probabilities:
        # measured (300x512x512, 10 classes, 2 threads): the slabs' phase ~4 bytes per voxel above the base, the
        # allocator keeping most of it while the archive is written (+4 per voxel: one class)
        values = k * max(first_plane, min(SLAB_VOXELS // max(1, k), s0))
        slabs = s0 + (40 * values + 8 * 3 * max(first_plane, 1)) * slab_threads(s0, threads)
        return max(slabs + 4 * s0 + 4 * SLAB_VOXELS, (LOGITS_BYTES + 8) * s1 + slabs, (8 if regions else 3) * s0)
    if streaming:
        work = SLAB_WORK_BYTES * max(plane, min(SLAB_VOXELS, s0)) * slab_threads(s0, threads)
        channels = (LOGITS_BYTES + 8) * s1 + (LOGITS_BYTES + 1) * s0 + work
        return max(channels, 3 * s0)
    resampling = (8 + LOGITS_BYTES) * k * s1 + LOGITS_BYTES * k * s0 + separate_work * s0
    if save_probabilities:
        return max(resampling, (LOGITS_BYTES + 8) * k * s0 + 9 * s0)
    return max(resampling, LOGITS_BYTES * k * s0 + 9 * s0)


def _target_spacing(model, spacing) -> list[float]:
    target = list(model.target_spacing)
    return [spacing[0], *target] if len(target) < len(spacing) else target  # 2d: the first axis keeps its spacing


def streams_probabilities(model) -> bool:
    """Whether export with probabilities (save_probabilities, an ensemble member's) is streamed
    (stages/streaming_probabilities.supports_probabilities): a model whose resampling the streaming export
    reproduces."""
    return model.streaming_export


def _mb(base_mb: int, nbytes: float) -> int:
    return base_mb + math.ceil(MARGIN * nbytes / MB)


def stage_estimates(shape, spacing, channels, bytes_per_voxel, model, save_probabilities=False,
                    threads: int = 1, preprocess_threads: int = 1, predict_on_disk: bool = False) -> Estimates:
    """Peak RSS (MB) of preprocess, predict and export of one case, and the voxel counts they come from; and
    predict's GPU memory (not host memory, see gpu_memory) where the model's network is one gpu_memory counts.

    `shape` and `spacing` are in nnU-Net's axis order after `transpose_forward`. A cascade stage's network
    takes the previous stage's foreground labels as extra (one-hot) input channels. `threads`: the export's
    (`slab_threads`), each resampling its own slab; `preprocess_threads` likewise the preprocessing's.
    """
    target = _target_spacing(model, spacing)
    new_shape = resampled_shape(shape, spacing, target)
    s0, s1 = math.prod(shape), math.prod(new_shape)
    c, k = channels, model.num_classes
    separate = separate_z(spacing, target)
    plane, separate_work = 0, 16  # joint resampling: float64 output and its clipped copy
    plane_ratio, plane_sum = 0.0, sum(shape)
    if separate:
        axis = lowres_axis(spacing, target)
        plane = s0 // max(1, shape[axis])
        plane_ratio = max(1, new_shape[axis]) / max(1, shape[axis])
        plane_sum = sum(n for a, n in enumerate(shape) if a != axis)
        # slices resized in-plane (float64, as many as the network grid has along the axis), then
        # index grids and coordinate maps (int64 and float64, 3 each) and the float64 output
        separate_work = 8 * plane_ratio + 56
    streaming = streams_probabilities(model) if save_probabilities else model.streaming_export
    torch_bytes = torch_export_bytes(torch_group(model.num_classes, separate, plane_sum), s1, s0, plane_ratio) \
        if model.torch_resampling else 0
    folds = len(model.folds)
    labels = model.previous_stage.foreground_labels if model.previous_stage is not None else 0
    if model.parallel_preprocessing:
        preprocess = parallel_preprocess_bytes(c, shape, s1, separate, bytes_per_voxel, preprocess_threads)
    else:
        preprocess = max((bytes_per_voxel + 4) * c * s0, preprocess_bytes(c, s0, s1, separate))
    if labels:
        preprocess += cascade_preprocess_bytes(c, labels, s0, s1)
    export = export_bytes(k, s1, s0, separate_work, streaming, save_probabilities, plane, threads,
                          s0 // max(1, shape[0]), torch_bytes, model.has_regions)
    memory_mb = {"preprocess": _mb(NNUNET_BASE_MB, preprocess),
                 "predict": _mb(PREDICT_BASE_MB,
                                disk_predict_bytes(c + labels, k, s1, math.prod(model.patch_size)) if predict_on_disk
                                else predict_bytes(c + labels, k, s1, folds)),
                 "export": _mb(NNUNET_BASE_MB, export)}
    return Estimates(voxels=s0, memory_mb=memory_mb, gpu_mb=gpu_memory.gpu_estimates(model, new_shape),
                     voxels_resampled={"predict": s1}, separate_z=separate)


def member_export_mb(s0, k) -> int:
    """An ensemble member's export: nnU-Net's resampling of every class to the original grid and its
    float32 probabilities. Measured by benchmarks/ensemble_memory.py on a 512x512x300 case with 3 classes
    (separate-z path): 6576 MB above the base, 29 bytes per class and voxel; this allows 30 (and the margin)."""
    return _mb(NNUNET_BASE_MB, 30 * k * s0)


def ensemble_mb(s0, k) -> int:
    """The ensemble by slab: the segmentation and the writer's copies (SimpleITK's image, a cast), and per slab
    every class of the running average, one member's slab read and stacked, and the argmax (int64)."""
    slab = min(SLAB_VOXELS, s0)
    return _mb(NNUNET_BASE_MB, 4 * s0 + (12 * k + 8) * slab)


def postprocess_mb(s0) -> int:
    """nnU-Net's postprocessing of one segmentation: read as float32, a mask and the kept mask per step
    (bool), the connected components' labels (int32, and scipy's work copy) and the output copy."""
    return _mb(NNUNET_BASE_MB, 24 * s0)


def statistics_mb(s0, c) -> int:
    """Label statistics and the preview of one case: the channels and the segmentation as the reader gives
    them (float32), its integer copy, one label's mask and voxels per channel (float64) at most the image. Its
    worker imports nnU-Net's readers, not torch: validate's base (178 MB measured on a small case)."""
    return _mb(VALIDATE_BASE_MB, (4 * c + 4 + 1 + 1 + 8) * s0)


def dicom_seg_mb(s0) -> int:
    """A case's DICOM-SEG: the label map as read and its copy, highdicom's masks and bit-packed frames (a
    segment's frame is rows x columns / 8 bytes in each slice it appears in). Measured on 512x512x300 with 1, 10
    and 50 labels: 458 MB above a 162 MB worker whatever the labels (about 6 bytes per voxel); the estimate
    keeps 10 (16 segments in every slice would add 2)."""
    return _mb(VALIDATE_BASE_MB, 10 * s0)


def validate_memory_mb(channel_files) -> int:
    """Validation reads one channel's voxels at a time: a base plus twice the largest channel's content."""
    largest = max((uncompressed_bytes(p) for p in channel_files if os.path.exists(p)), default=0)
    return VALIDATE_BASE_MB + math.ceil(2 * largest / MB)
