"""Memory-bounded export with `save_probabilities`: the segmentation, the `.npz` probabilities and the `.pkl`
properties exactly as nnU-Net's `export_prediction_from_logits(..., save_probabilities=True)` writes them, slab
by slab of the output.

nnU-Net resamples every class to the original grid, applies the softmax to the whole volume, takes the argmax
of the probabilities, puts the probabilities back into the uncropped image (background 1 outside the crop) and
writes them with `np.savez_compressed`: K float32 volumes at once, and more. Here the output is cut into
slabs of voxels (in C order, at least a plane each); each slab gets every class resampled over the rows that
hold it as the streaming export resamples them (zoom's kernel, bit-identical), cast to the logits' dtype, the
softmax of nnU-Net's label manager and the argmax of the probabilities; the slab's probabilities go to a
scratch file beside the output, and once all slabs are through they are deflated into the archive class by
class, a few rows at a time, uncropped and transposed back as nnU-Net does.

Exactness of the softmax: torch splits the voxels into one range per thread (nnU-Net's export sets
`default_num_processes` threads) and computes each range in vectors from its first voxel, but the range's last
(size mod vector width) voxels in scalar code, whose exp may differ in the last bit. Slabs here never cross
those ranges and start on multiples of ALIGN voxels (a multiple of every vector width) from their range's
start, and each is computed on one thread, so every voxel goes through the same code as in nnU-Net.
Not reproduced (`supports_probabilities` says so, and nnU-Net's own export runs): region models (torch's
sigmoid puts scalar code at the seams of its threads' ranges), separate-z resampling along an axis other than
the first, and what the streaming export does not reproduce. `tests/test_streaming_probabilities.py` proves
the equality.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..estimates.host_memory import SLAB_VOXELS
from ..nnunet.model import resampling_kwargs
from .streaming_export import (
    _channel_rows,
    _rows,
    channel_range,
    export_geometry,
    resized_planes,
    separate_planes,
    source_window,
    supports,
    write_segmentation,
)
from .zoom_kernel import ZOOM_KERNEL, nearest_indices, separate_z_path

# Voxels a slab's first voxel (from the start of its softmax range) and its size are multiples of (but the range's
# last slab's size): a multiple of the vector width of torch's softmax on any CPU (4 to 16 float32 lanes).
ALIGN = 64


def nnunet_export_threads() -> int:
    """The torch threads nnU-Net's export computes the softmax with (its num_threads_torch default)."""
    from nnunetv2.configuration import default_num_processes

    return default_num_processes


def supports_probabilities(configuration_manager, plans_manager, label_manager, properties: dict) -> bool:
    """Whether this case's export with probabilities is one this module reproduces exactly."""
    if label_manager.has_regions or not supports(configuration_manager) or ZOOM_KERNEL is None:
        return False
    cropped_shape, current, new = export_geometry(properties, configuration_manager, plans_manager)
    do_separate_z, axis = separate_z_path(resampling_kwargs(configuration_manager.configuration), current, new)
    return not (do_separate_z and axis != 0)


def softmax_ranges(count: int, threads: int) -> list[tuple[int, int]]:
    """The voxel ranges torch's softmax (at::parallel_for, grain 1) gives each of `threads` threads."""
    chunk = -(-count // max(1, min(threads, count)))
    return [(begin, min(count, begin + chunk)) for begin in range(0, count, chunk)]


def aligned_slabs(shape, classes: int, slab_voxels: int = SLAB_VOXELS, threads: int | None = None
                  ) -> list[tuple[int, int]]:
    """Voxels (first, last + 1), in C order, of each slab: about slab_voxels values of all classes together but at
    least a plane (where its softmax range allows), within one of the softmax ranges of nnU-Net's export
    (`threads`: its torch threads), each slab's first voxel a multiple of ALIGN from its range's start."""
    count, plane = math.prod(shape), max(1, math.prod(shape[1:]))
    size = max(plane, slab_voxels // max(1, classes))
    size = -(-size // ALIGN) * ALIGN
    return [(first, min(last, first + size))
            for begin, last in softmax_ranges(count, threads or nnunet_export_threads())
            for first in range(begin, last, size)]


class _Resampler:
    """Each class of the logits resampled to the cropped shape over rows start:stop of the output, as the streaming
    export computes them (float64, clipped as skimage's resize clips; unchanged when no resampling is due)."""

    def __init__(self, logits, new_shape, current, new, kwargs: dict):
        self.logits, self.new_shape = logits, list(new_shape)
        self.order = kwargs.get("order", 3)
        self.unchanged = list(logits.shape[1:]) == self.new_shape
        self.separate, _ = separate_z_path(kwargs, current, new)
        self.zoom = np.divide(logits.shape[1:], self.new_shape).astype(np.float64)
        self.sources = nearest_indices(logits.shape[1], self.new_shape[0]) if self.separate else None
        self.ranges = None
        if not (self.unchanged or self.separate):
            source_rows = max(1, SLAB_VOXELS // max(1, math.prod(logits.shape[2:])))
            self.ranges = [channel_range(logits, k, source_rows) for k in range(logits.shape[0])]

    def rows(self, index: int, start: int, stop: int) -> np.ndarray:
        logits = self.logits
        if self.unchanged:
            return _rows(logits, index, start, stop)
        if self.separate:
            distinct, where = separate_planes(self.sources, start, stop)
            source = _rows(logits, index, int(distinct[0]), int(distinct[-1]) + 1)
            return resized_planes(source, distinct, self.new_shape[1:], self.order)[0][where]
        _, low, high = source_window(logits.shape[1], self.new_shape[0], start, stop)
        block = np.empty((stop - start, *self.new_shape[1:]), dtype=np.float64)
        ZOOM_KERNEL(_channel_rows(logits.shape[1:]).window(low, _rows(logits, index, low, high + 1)), self.zoom,
                    start, block, self.order)
        np.clip(block, *self.ranges[index], out=block)
        return block

    def release(self, start: int, stop: int) -> None:
        """Give back this thread's source rows of output rows start:stop, once every class has been resampled."""
        if not (self.unchanged or self.separate):
            _, low, high = source_window(self.logits.shape[1], self.new_shape[0], start, stop)
            _channel_rows(self.logits.shape[1:]).release(low, high + 1 - low)


def _uncropped_rows(cropped: np.ndarray, bbox, shape, fill: float, axis: int, start: int, stop: int) -> np.ndarray:
    """Rows start:stop along `axis` of one class's probabilities with the crop reverted (`fill` outside it)."""
    block_shape = list(shape)
    block_shape[axis] = stop - start
    block = np.full(block_shape, fill, dtype=np.float32)
    low, high = bbox[axis]
    first, last = max(start, low), min(stop, high)
    if first < last:
        target = [slice(a, b) for a, b in bbox]
        target[axis] = slice(first - start, last - start)
        source = [slice(None)] * len(shape)
        source[axis] = slice(first - low, last - low)
        block[tuple(target)] = cropped[tuple(source)]
    return block


def _write_uncropped(scratch: str, classes: int, cropped_shape, properties: dict, transpose_backward,
                     out) -> tuple[int, ...]:
    """Write to `out` the .npy form (header, then the bytes in C order) of the probabilities as nnU-Net's export
    returns them (uncropped with the background 1 outside the crop, transposed back), from the cropped float32
    volumes of `scratch` (class by class), one class and a few rows in memory at a time; return their shape."""
    shape = [int(n) for n in properties["shape_before_cropping"]]
    bbox = properties["bbox_used_for_cropping"]
    final_shape = (classes, *(shape[i] for i in transpose_backward))
    axis = transpose_backward[0]  # the final array's first spatial axis, in nnU-Net's order
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                               "fortran_order": False, "shape": final_shape})
    count = math.prod(cropped_shape)
    rows = max(1, SLAB_VOXELS // max(1, math.prod(shape) // max(1, shape[axis])))
    for k in range(classes):
        cropped = np.fromfile(scratch, dtype=np.float32, count=count, offset=4 * k * count).reshape(cropped_shape)
        for start in range(0, shape[axis], rows):
            stop = min(start + rows, shape[axis])
            block = _uncropped_rows(cropped, bbox, shape, 1.0 if k == 0 else 0.0, axis, start, stop)
            out.write(block.transpose(transpose_backward).tobytes("C"))
        del cropped  # before the next class is read
    return final_shape


def _probabilities_to_scratch(logits, properties: dict, configuration_manager, plans_manager, label_manager,
                              scratch: str, threads: int, slab_voxels: int) -> np.ndarray:
    """The softmax probabilities of every class at the cropped geometry, written to `scratch` (float32, class by
    class), `threads` slabs at once; returns the segmentation nnU-Net takes from them (cropped)."""
    import torch

    cropped_shape, current, new = export_geometry(properties, configuration_manager, plans_manager)
    resampler = _Resampler(logits, cropped_shape, current, new, resampling_kwargs(configuration_manager.configuration))
    classes, dtype = logits.shape[0], logits.dtype
    count, plane = math.prod(cropped_shape), math.prod(cropped_shape[1:])
    segmentation = np.zeros(cropped_shape, dtype=np.uint8 if classes <= 256 else np.uint16)
    voxels = segmentation.reshape(-1)
    with open(scratch, "wb") as handle:
        handle.truncate(4 * classes * count)
    descriptor = os.open(scratch, os.O_WRONLY)

    def one_slab(span):
        first, last = span
        start, stop = first // plane, -(-last // plane)  # the rows that hold the slab
        offset = first - start * plane
        values = np.empty((classes, last - first), dtype=dtype)
        for k in range(classes):
            values[k] = resampler.rows(k, start, stop).reshape(-1)[offset:offset + last - first]
        resampler.release(start, stop)
        with torch.no_grad():
            probabilities = label_manager.apply_inference_nonlin(values)
        voxels[first:last] = label_manager.convert_probabilities_to_segmentation(probabilities.numpy())
        for k in range(classes):
            os.pwrite(descriptor, probabilities[k].numpy().tobytes("C"), 4 * (k * count + first))

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each slab's softmax on one thread (slabs run on `threads` Python threads)
    try:
        slabs = aligned_slabs(cropped_shape, classes, slab_voxels)
        if threads > 1 and len(slabs) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(one_slab, slabs))
        else:
            list(map(one_slab, slabs))
    finally:
        os.close(descriptor)
        torch.set_num_threads(torch_threads)
    return segmentation


def _write_probabilities(logits, properties: dict, configuration_manager, plans_manager, label_manager, out,
                         scratch: str, threads: int, slab_voxels: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Write to `out` the .npy form of the probabilities nnU-Net's export returns, through the file `scratch`
    (removed after); return the segmentation taken from them (cropped) and their shape."""
    try:
        segmentation = _probabilities_to_scratch(logits, properties, configuration_manager, plans_manager,
                                                 label_manager, scratch, threads, slab_voxels)
        return segmentation, _write_uncropped(scratch, logits.shape[0], segmentation.shape, properties,
                                              plans_manager.transpose_backward, out)
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)


def export_with_probabilities(logits, properties: dict, configuration_manager, plans_manager, dataset_json: dict,
                              output_truncated: str, file_ending: str, threads: int = 1,
                              slab_voxels: int = SLAB_VOXELS) -> None:
    """Write `{output_truncated}{file_ending}`, `.npz` and `.pkl` exactly as export_prediction_from_logits(...,
    save_probabilities=True) does, `threads` slabs at once (a case `supports_probabilities` accepts)."""
    label_manager = plans_manager.get_label_manager(dataset_json)
    with zipfile.ZipFile(output_truncated + ".npz", mode="w", compression=zipfile.ZIP_DEFLATED,
                         allowZip64=True) as archive, \
            archive.open("probabilities.npy", "w", force_zip64=True) as entry:
        segmentation, _ = _write_probabilities(logits, properties, configuration_manager, plans_manager,
                                               label_manager, entry, output_truncated + ".probabilities.part",
                                               threads, slab_voxels)
    with open(output_truncated + ".pkl", "wb") as handle:
        pickle.dump(properties, handle)
    write_segmentation(segmentation, properties, plans_manager, label_manager, output_truncated + file_ending)


def save_member_probabilities(logits, properties: dict, configuration_manager, plans_manager, dataset_json: dict,
                              path: str, threads: int = 1, slab_voxels: int = SLAB_VOXELS) -> tuple[int, ...]:
    """Save as .npy at `path` the probabilities nnU-Net's convert_predicted_logits_to_segmentation_with_correct_shape
    (return_probabilities=True) returns, for an ensemble member; return their shape."""
    with open(path, "wb") as out:
        return _write_probabilities(logits, properties, configuration_manager, plans_manager,
                                    plans_manager.get_label_manager(dataset_json), out, path + ".probabilities.part",
                                    threads, slab_voxels)[1]
