"""nnU-Net's sliding-window prediction with its accumulators on disk: the logits of a case written straight into
their .npy file, bit-identical to `nnUNetPredictor.predict_logits_from_preprocessed_data`.

nnU-Net holds the summed logits (K classes in float16 on the network grid), the summed Gaussian weights and the
preprocessed image in memory for the whole case; with many classes or a large volume the logits alone outgrow the
rest of the stage many times over. Here the image is read tile by tile and the sums live in the logits file, both
through a memory map of which only the current tile's pages of a few classes are resident (given back after
each), so the process holds about a tile whatever the volume (the page cache holds the rest, and the kernel
writes it back as it needs the memory).

The arithmetic is nnU-Net's, step by step and in its order: its tiles (`_internal_get_sliding_window_slicers`),
its mirroring and network call (`_internal_maybe_mirror_and_predict`), its Gaussian, each tile's prediction
multiplied by it and added to the float16 sums in place, the weights summed in float16, then the sums divided
by the weights and checked for infinities (elementwise, so row by row gives the same values), the folds'
logits added in fold order and divided by their number. `tests/test_disk_sliding_window.py` proves the equality.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os

import numpy as np

from .streaming_export import npy_header

# Classes whose sums of a tile are added before their pages are given back: the kernel maps the cached pages around
# each one touched (fault-around, whatever the advice), so a tile of all classes at once made up to 4x its own pages
# resident.
CLASS_CHUNK = 8
ROW_BYTES = 1 << 26  # bytes of the logits (all classes) worked on at once after the tiles: division, folds, padding


class MappedNpy:
    """A C-ordered .npy file mapped into memory, whose pages are given back after each use (`release`)."""

    def __init__(self, path, writable: bool = False):
        self.path = str(path)
        shape, dtype, offset = npy_header(self.path)
        self.handle = open(self.path, "r+b" if writable else "rb")  # noqa: SIM115 (closed by close())
        self.map = mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_COPY)
        self.map.madvise(mmap.MADV_RANDOM)  # no read-ahead
        self.offset = offset
        self.array = np.ndarray(shape, dtype=dtype, buffer=self.map, offset=offset)

    @classmethod
    def create(cls, path, shape, dtype) -> MappedNpy:
        """A new .npy file of zeros (a sparse file: no byte written but the header)."""
        dtype = np.dtype(dtype)
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                          "fortran_order": False, "shape": tuple(shape)})
            handle.truncate(handle.tell() + math.prod(shape) * dtype.itemsize)
        return cls(path, writable=True)

    def release(self, start: int, stop: int, channels: range | None = None) -> None:
        """Give back the pages of rows start:stop (of the first axis after the channels) of every channel (or of
        `channels`)."""
        shape, itemsize = self.array.shape, self.array.dtype.itemsize
        row = math.prod(shape[2:]) * itemsize
        for channel in channels or range(shape[0]):
            first = self.offset + (channel * shape[1] + start) * row
            last = self.offset + (channel * shape[1] + stop) * row
            first -= first % mmap.PAGESIZE
            self.map.madvise(mmap.MADV_DONTNEED, first, min(last, len(self.map)) - first)

    def close(self) -> None:
        self.array = None
        self.map.close()
        self.handle.close()


def _row_chunks(array: np.ndarray) -> list[tuple[int, int]]:
    """Rows (first axis after the channels) of about ROW_BYTES of every channel together."""
    rows = max(1, ROW_BYTES // max(1, array.shape[0] * math.prod(array.shape[2:]) * array.dtype.itemsize))
    return [(start, min(start + rows, array.shape[1])) for start in range(0, array.shape[1], rows)]


def _load_fold(predictor, params) -> None:
    """A fold's weights into the predictor's network, as nnU-Net's predict_logits_from_preprocessed_data does."""
    from torch._dynamo import OptimizedModule

    if not isinstance(predictor.network, OptimizedModule):
        predictor.network.load_state_dict(params)
    else:
        predictor.network._orig_mod.load_state_dict(params)


def _sliding_window(predictor, data, sums: MappedNpy, source: MappedNpy | None) -> None:
    """nnU-Net's _internal_predict_sliding_window_return_logits with the results on the host (its arithmetic on
    any device), the sums in `sums` (zeros, the padded grid's shape); `data` a (padded) tensor, read from `source`
    (whose pages are given back after each tile) where it is that file's map."""
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    results_device = torch.device("cpu")
    slicers = predictor._internal_get_sliding_window_slicers(data.shape[1:])
    weights = torch.zeros(data.shape[1:], dtype=torch.half, device=results_device)
    gaussian = compute_gaussian(tuple(predictor.configuration_manager.patch_size), sigma_scale=1. / 8,
                                value_scaling_factor=10, device=results_device) if predictor.use_gaussian else 1
    logits = torch.from_numpy(sums.array)
    first_axis = 1 if len(predictor.configuration_manager.patch_size) == len(data.shape) - 1 else None
    for slicer in slicers:
        workon = torch.clone(data[slicer][None], memory_format=torch.contiguous_format)
        workon = workon.to(device=predictor.device, dtype=torch.float32)  # as nnU-Net's stage converts the image
        prediction = predictor._internal_maybe_mirror_and_predict(workon)[0].to(results_device)
        if predictor.use_gaussian:
            prediction *= gaussian
        rows = slicer[first_axis] if first_axis else slice(slicer[1], slicer[1] + 1)  # a 2d tile: one slice
        for first in range(0, len(prediction), CLASS_CHUNK):  # logits[slicer] += prediction, a few classes at once
            chunk = range(first, min(first + CLASS_CHUNK, len(prediction)))
            logits[(slice(chunk.start, chunk.stop), *slicer[1:])] += prediction[chunk.start:chunk.stop]
            sums.release(rows.start, rows.stop, chunk)
        weights[slicer[1:]] += gaussian
        del workon, prediction
        if source is not None:
            source.release(rows.start, rows.stop)
    for start, stop in _row_chunks(sums.array):  # torch.div(logits, weights, out=logits), row by row
        part = logits[:, start:stop]
        torch.div(part, weights[start:stop], out=part)
        if torch.any(torch.isinf(part)):
            raise RuntimeError('Encountered inf in predicted array. Aborting... If this problem persists, '
                               'reduce value_scaling_factor in compute_gaussian or increase the dtype of '
                               'predicted_logits to fp32')
        sums.release(start, stop)


def _fold_to_file(predictor, data_path, path) -> None:
    """One fold's logits (nnU-Net's predict_sliding_window_return_logits) into a new .npy file at `path`."""
    import torch
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    predictor.network = predictor.network.to(predictor.device)
    predictor.network.eval()
    patch = tuple(predictor.configuration_manager.patch_size)
    source = MappedNpy(data_path)
    classes = predictor.label_manager.num_segmentation_heads
    try:
        shape = source.array.shape
        padded = any(n < p for n, p in zip(shape[-len(patch):], patch))
        context = torch.autocast(predictor.device.type, enabled=True) if predictor.device.type == "cuda" \
            else contextlib.nullcontext()
        with torch.inference_mode(), context:
            if padded:  # a volume smaller than a tile along some axis: nnU-Net's padded copy (small)
                data, revert = pad_nd_image(torch.from_numpy(np.array(source.array)), patch, "constant",
                                            {"value": 0}, True, None)
                scratch = str(path) + ".padded"
                sums = MappedNpy.create(scratch, (classes, *data.shape[1:]), np.float16)
                try:
                    _sliding_window(predictor, data, sums, None)
                    _copy_region(sums, (slice(None), *revert[1:]), path)
                finally:
                    sums.close()
                    os.remove(scratch)
            else:
                sums = MappedNpy.create(path, (classes, *shape[1:]), np.float16)
                try:
                    _sliding_window(predictor, torch.from_numpy(source.array), sums, source)
                finally:
                    sums.close()
    finally:
        source.close()


def _copy_region(sums: MappedNpy, region, path) -> None:
    """The region `region` of `sums` (the un-padded grid) into a new .npy file at `path`, a few rows at a time."""
    part = sums.array[region]
    first_row = region[1].start or 0
    target = MappedNpy.create(path, part.shape, part.dtype)
    try:
        for start, stop in _row_chunks(target.array):
            target.array[:, start:stop] = part[:, start:stop]
            target.release(start, stop)
            sums.release(first_row + start, first_row + stop)
    finally:
        target.close()


def predict_logits_to_file(predictor, data_path, logits_path) -> tuple[tuple[int, ...], np.dtype]:
    """nnU-Net's predict_logits_from_preprocessed_data of the preprocessed .npy at `data_path`, written as .npy to
    `logits_path`: each fold's sliding window with its sums on disk, the folds added in order and divided by
    their number. Returns the logits' shape and dtype."""
    import torch
    from nnunetv2.configuration import default_num_processes

    threads = torch.get_num_threads()
    torch.set_num_threads(default_num_processes if default_num_processes < threads else threads)
    try:
        folds = predictor.list_of_parameters
        for index, params in enumerate(folds):
            _load_fold(predictor, params)
            if index == 0:
                _fold_to_file(predictor, data_path, logits_path)
                continue
            fold_path = f"{logits_path}.fold{index}"
            _fold_to_file(predictor, data_path, fold_path)
            try:
                _combine(logits_path, fold_path, lambda total, more: total.add_(more))  # prediction += fold's
            finally:
                os.remove(fold_path)
        if len(folds) > 1:
            _combine(logits_path, None, lambda total, _: total.div_(len(folds)))  # prediction /= len(folds)
    finally:
        torch.set_num_threads(threads)
    shape, dtype, _ = npy_header(logits_path)
    return shape, dtype


def _combine(path, other_path, operation) -> None:
    """`operation(total rows, other rows)` in place on the .npy at `path`, a few rows at a time."""
    import torch

    total = MappedNpy(path, writable=True)
    other = MappedNpy(other_path) if other_path else None
    try:
        for start, stop in _row_chunks(total.array):
            operation(torch.from_numpy(total.array[:, start:stop]),
                      None if other is None else torch.from_numpy(other.array[:, start:stop]))
            total.release(start, stop)
            if other is not None:
                other.release(start, stop)
    finally:
        total.close()
        if other is not None:
            other.close()
