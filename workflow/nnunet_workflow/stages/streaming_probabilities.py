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
With nnU-Net's torch resampling (stages/torch_resampling), and on the separate-z path along another axis than the
first, every class is first resampled whole (a few classes at a time) into the scratch file, and the slabs then
read their classes' values from it and write the probabilities in their place.
Region models: every class's resampled values go to the scratch file, then nnU-Net's sigmoid runs over them in
place, piece by piece of the flat (class, voxel) values: torch splits an elementwise operation's values into one
range per thread (at least 32768 values each) and computes each range's last values in scalar code, so the
pieces follow those ranges as the slabs follow the softmax's; then the regions are painted in
`regions_class_order`, class by class, as nnU-Net paints them.
What the streaming export does not reproduce goes through nnU-Net's own export (`supports_probabilities`).
`tests/test_streaming_probabilities.py` proves the equality.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..estimates.host_memory import SLAB_VOXELS
from ..nnunet.model import TORCH_RESAMPLING, resampling_kwargs
from .streaming_export import (
    _channel_rows,
    _rows,
    channel_range,
    export_geometry,
    resized_planes,
    separate_planes,
    separate_slabs,
    source_window,
    supports,
    write_segmentation,
)
from .torch_resampling import resampled_groups
from .zoom_kernel import ZOOM_KERNEL, nearest_indices, separate_z_path

# Voxels a slab's first voxel (from the start of its softmax range) and its size are multiples of (but the range's
# last slab's size): a multiple of the vector width of torch's softmax on any CPU (4 to 16 float32 lanes).
ALIGN = 64


def nnunet_export_threads() -> int:
    """The torch threads nnU-Net's export computes the softmax with (its num_threads_torch default)."""
    from nnunetv2.configuration import default_num_processes

    return default_num_processes


# The fewest values torch gives a thread of an elementwise operation such as the sigmoid (at::internal::GRAIN_SIZE).
ELEMENTWISE_GRAIN = 32768


def supports_probabilities(configuration_manager, plans_manager, label_manager, properties: dict) -> bool:
    """Whether this case's export with probabilities is one this module reproduces exactly."""
    if not supports(configuration_manager):
        return False
    if configuration_manager.configuration["resampling_fn_probabilities"] == TORCH_RESAMPLING:
        return True
    return ZOOM_KERNEL is not None


def thread_ranges(count: int, threads: int, grain: int = 1) -> list[tuple[int, int]]:
    """The ranges at::parallel_for(0, count, grain) gives each of `threads` threads: torch's softmax over voxels
    (grain 1), an elementwise operation over all values (ELEMENTWISE_GRAIN; one range up to the grain)."""
    if count <= max(grain, 1) or threads <= 1:
        return [(0, count)] if count > 0 else []
    chunk = -(-count // min(threads, -(-count // grain)))
    return [(begin, min(count, begin + chunk)) for begin in range(0, count, chunk)]


def _aligned(ranges, size: int) -> list[tuple[int, int]]:
    """Pieces of at most `size` (rounded up to ALIGN) of each range, each starting a multiple of ALIGN from it."""
    size = -(-max(1, size) // ALIGN) * ALIGN
    return [(first, min(last, first + size)) for begin, last in ranges for first in range(begin, last, size)]


def aligned_slabs(shape, classes: int, slab_voxels: int = SLAB_VOXELS, threads: int | None = None
                  ) -> list[tuple[int, int]]:
    """Voxels (first, last + 1), in C order, of each slab: about slab_voxels values of all classes together but at
    least a plane (where its softmax range allows), within one of the softmax ranges of nnU-Net's export
    (`threads`: its torch threads), each slab's first voxel a multiple of ALIGN from its range's start."""
    count, plane = math.prod(shape), max(1, math.prod(shape[1:]))
    return _aligned(thread_ranges(count, threads or nnunet_export_threads()),
                    max(plane, slab_voxels // max(1, classes)))


def sigmoid_pieces(values: int, slab_voxels: int = SLAB_VOXELS, threads: int | None = None) -> list[tuple[int, int]]:
    """Pieces (first, last + 1) of the flat (class, voxel) values of a region model's probabilities: within one of
    the ranges torch's sigmoid of them all gives each of nnU-Net's export threads, a multiple of ALIGN from its
    start, at most about slab_voxels values."""
    return _aligned(thread_ranges(values, threads or nnunet_export_threads(), ELEMENTWISE_GRAIN), slab_voxels)


class _Resampler:
    """Each class of the logits resampled to the cropped shape over rows start:stop of the output, as the streaming
    export computes them (float64, clipped as skimage's resize clips; unchanged when no resampling is due)."""

    def __init__(self, logits, new_shape, current, new, kwargs: dict):
        self.logits, self.new_shape = logits, list(new_shape)
        self.dtype = logits.dtype  # the resampled values are cast to it, as nnU-Net's resampling returns them
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

    def _rows_of(self, first: int, last: int) -> tuple[int, int]:
        plane = math.prod(self.new_shape[1:])
        return first // plane, -(-last // plane)

    def voxels(self, index: int, first: int, last: int) -> np.ndarray:
        """Voxels first:last (in C order) of class `index`, resampled over the output rows that hold them."""
        start, stop = self._rows_of(first, last)
        offset = first - start * math.prod(self.new_shape[1:])
        return self.rows(index, start, stop).reshape(-1)[offset:offset + last - first]

    def done(self, first: int, last: int) -> None:
        """Every class of voxels first:last has been read."""
        self.release(*self._rows_of(first, last))


class _WholeClasses:
    """Every class resampled whole into the scratch file, where the probabilities then take the logits' place slab
    by slab: by nnU-Net's torch function a few classes at a time (stages/torch_resampling), or on nnU-Net's
    separate-z path along another axis than the first, each class as the streaming export folds it."""

    def __init__(self, logits, new_shape, current, new, kwargs: dict, function: str, scratch: str, descriptor: int):
        self.scratch, self.count = scratch, math.prod(new_shape)
        self.dtype = logits.dtype
        if function == TORCH_RESAMPLING:
            for first, resampled in resampled_groups(logits, new_shape, current, new, kwargs):
                self.dtype = resampled.dtype  # float32: what nnU-Net's softmax is given
                for offset, values in enumerate(resampled):
                    self._write(descriptor, first + offset, values)
            return
        _, axis = separate_z_path(kwargs, current, new)
        for index in range(logits.shape[0]):
            channel = np.asarray(logits[index]).astype(float, copy=False)
            values = np.empty(new_shape, dtype=logits.dtype)
            for slicer, part in separate_slabs(channel, new_shape, axis, kwargs.get("order", 3)):
                values[slicer] = part
            del channel
            self._write(descriptor, index, values)

    def _write(self, descriptor: int, index: int, values: np.ndarray) -> None:
        os.pwrite(descriptor, np.ascontiguousarray(values, dtype=np.float32).tobytes("C"), 4 * index * self.count)

    def voxels(self, index: int, first: int, last: int) -> np.ndarray:
        return np.fromfile(self.scratch, dtype=np.float32, count=last - first,
                           offset=4 * (index * self.count + first)).astype(self.dtype, copy=False)

    def done(self, first: int, last: int) -> None:
        pass


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
                     out, regions: bool = False) -> tuple[int, ...]:
    """Write to `out` the .npy form (header, then the bytes in C order) of the probabilities as nnU-Net's export
    returns them (uncropped with the background 1 outside the crop, but for regions, transposed back), from the
    cropped float32 volumes of `scratch` (class by class), one class and a few rows in memory at a time; return
    their shape."""
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
            block = _uncropped_rows(cropped, bbox, shape, 1.0 if k == 0 and not regions else 0.0, axis, start, stop)
            out.write(block.transpose(transpose_backward).tobytes("C"))
        del cropped  # before the next class is read
    return final_shape


def _run(work, pieces, threads: int) -> None:
    """`work` on every piece, `threads` at once, each piece's torch operations on one thread."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if threads > 1 and len(pieces) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(work, pieces))
        else:
            list(map(work, pieces))
    finally:
        torch.set_num_threads(torch_threads)


def _softmax_to_scratch(source, classes: int, cropped_shape, label_manager, descriptor: int, threads: int,
                        slab_voxels: int) -> np.ndarray:
    """Slab after slab, every class's resampled values from `source`, nnU-Net's softmax of them to the scratch file
    and the argmax of the probabilities; returns the segmentation (cropped)."""
    import torch

    count = math.prod(cropped_shape)
    segmentation = np.zeros(cropped_shape, dtype=np.uint8 if classes <= 256 else np.uint16)
    voxels = segmentation.reshape(-1)

    def one_slab(span):
        first, last = span
        values = np.empty((classes, last - first), dtype=source.dtype)
        for k in range(classes):
            values[k] = source.voxels(k, first, last)
        source.done(first, last)
        with torch.no_grad():
            probabilities = label_manager.apply_inference_nonlin(values)
        voxels[first:last] = label_manager.convert_probabilities_to_segmentation(probabilities.numpy())
        for k in range(classes):
            os.pwrite(descriptor, probabilities[k].numpy().tobytes("C"), 4 * (k * count + first))

    _run(one_slab, aligned_slabs(cropped_shape, classes, slab_voxels), threads)
    return segmentation


def _sigmoid_to_scratch(source, classes: int, cropped_shape, label_manager, scratch: str, descriptor: int,
                        threads: int, slab_voxels: int) -> np.ndarray:
    """A region model's: every class's resampled values to the scratch file (where `source` has not put them),
    nnU-Net's sigmoid of all of them in place, piece by piece of the flat values as torch's threads would take
    them (`sigmoid_pieces`), then the regions painted in `regions_class_order`; returns the segmentation
    (cropped)."""
    import torch

    count = math.prod(cropped_shape)
    if isinstance(source, _Resampler):
        def resample(span):
            first, last = span
            for k in range(classes):
                values = source.voxels(k, first, last).astype(source.dtype, copy=False)
                os.pwrite(descriptor, values.astype(np.float32).tobytes("C"), 4 * (k * count + first))
            source.done(first, last)

        _run(resample, aligned_slabs(cropped_shape, 1, slab_voxels), threads)

    def sigmoid(span):
        first, last = span
        values = np.fromfile(scratch, dtype=np.float32, count=last - first, offset=4 * first)
        with torch.no_grad():
            probabilities = label_manager.apply_inference_nonlin(values)
        os.pwrite(descriptor, probabilities.numpy().tobytes("C"), 4 * first)

    _run(sigmoid, sigmoid_pieces(classes * count, slab_voxels), threads)
    segmentation = np.zeros(cropped_shape, dtype=np.uint16)  # as nnU-Net paints regions (int16 in torch)
    for k, label in enumerate(label_manager.regions_class_order):
        probability = np.fromfile(scratch, dtype=np.float32, count=count, offset=4 * k * count)
        segmentation[probability.reshape(cropped_shape) > 0.5] = label
        del probability
    return segmentation


def _probabilities_to_scratch(logits, properties: dict, configuration_manager, plans_manager, label_manager,
                              scratch: str, threads: int, slab_voxels: int) -> np.ndarray:
    """The probabilities (softmax; regions: sigmoid) of every class at the cropped geometry, written to `scratch`
    (float32, class by class), `threads` slabs at once; returns the segmentation nnU-Net takes from them
    (cropped)."""
    cropped_shape, current, new = export_geometry(properties, configuration_manager, plans_manager)
    kwargs = resampling_kwargs(configuration_manager.configuration)
    function = configuration_manager.configuration["resampling_fn_probabilities"]
    classes = logits.shape[0]
    with open(scratch, "wb") as handle:
        handle.truncate(4 * classes * math.prod(cropped_shape))
    descriptor = os.open(scratch, os.O_RDWR)
    try:
        unchanged = list(logits.shape[1:]) == list(cropped_shape)
        do_separate_z, axis = separate_z_path(kwargs, current, new)
        if not unchanged and (function == TORCH_RESAMPLING or (do_separate_z and axis != 0)):
            source = _WholeClasses(logits, cropped_shape, current, new, kwargs, function, scratch, descriptor)
        else:
            source = _Resampler(logits, cropped_shape, current, new, kwargs)
        if label_manager.has_regions:
            return _sigmoid_to_scratch(source, classes, cropped_shape, label_manager, scratch, descriptor, threads,
                                       slab_voxels)
        return _softmax_to_scratch(source, classes, cropped_shape, label_manager, descriptor, threads, slab_voxels)
    finally:
        os.close(descriptor)


def _write_probabilities(logits, properties: dict, configuration_manager, plans_manager, label_manager, out,
                         scratch: str, threads: int, slab_voxels: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Write to `out` the .npy form of the probabilities nnU-Net's export returns, through the file `scratch`
    (removed after); return the segmentation taken from them (cropped) and their shape."""
    try:
        segmentation = _probabilities_to_scratch(logits, properties, configuration_manager, plans_manager,
                                                 label_manager, scratch, threads, slab_voxels)
        return segmentation, _write_uncropped(scratch, logits.shape[0], segmentation.shape, properties,
                                              plans_manager.transpose_backward, out, label_manager.has_regions)
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
