"""Memory-bounded, parallel export: logits to a segmentation slab by slab of the output, slabs on threads.

nnU-Net's export resamples all K channels of the logits to the original geometry at once (float64
work arrays of ~60 bytes per output voxel for each channel, K resampled channels kept), then takes
the argmax. Here the output is cut into slabs along its first axis; in each slab the classes are folded
in order into a running argmax (or, for region models, the region mask in `regions_class_order`), each
resampled from only the source rows around the slab, so memory no longer grows with K or with the size
of the output beyond a few bytes per voxel and a slab's work arrays per thread.

It is bit-identical to `export_prediction_from_logits` with `resample_data_or_seg_to_shape`:
- the joint path (no separate z) runs scipy's zoom kernel, the code skimage's `resize` runs (`zoom`
  with `grid_mode=True`), on the slab's rows placed where they lie in the whole channel, so every
  coordinate is computed as for the whole channel (`map_coordinates` fed zoom's coordinates where the
  kernel is missing), then clips to the channel's range as skimage does;
- the separate-z path resizes each source slice in-plane as skimage's `resize` does, and picks slices
  along z with the nearest-neighbour index `map_coordinates(order=0, mode='nearest')` computes;
- a class that cannot change a slab (its largest source value there not above the slab's smallest
  running maximum; a region's not above 0) is skipped, and one that can change only part of it is
  resampled over that part: linear and nearest interpolation never exceed their sources;
- values are cast to the logits' dtype before the argmax, which keeps the first maximum (and the
  first NaN), as numpy's argmax does.
With nnU-Net's torch resampling (`resample_torch_fornnunet`), each class is resampled whole by nnU-Net's own
function, a few classes at a time (stages/torch_resampling), and folded in the same way. Other resampling
functions or orders are not reproduced: `supports` says so and export falls back to nnU-Net's own function.
`tests/test_streaming_export.py` and `tests/test_torch_resampling.py` prove the equality.
"""

from __future__ import annotations

import math
import mmap
import threading

import numpy as np

from ..estimates.host_memory import (
    SLAB_VOXELS,  # output voxels per slab (host_memory.SLAB_WORK_BYTES of work arrays each)
)
from ..nnunet.model import NNUNET_RESAMPLING, TORCH_RESAMPLING, resampling_kwargs, supports_configuration
from .torch_resampling import resampled_groups
from .zoom_kernel import ZOOM_KERNEL, grid_coordinates, nearest_indices, separate_z_path


def npy_header(path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and data offset of a C-ordered numeric .npy file."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    if fortran_order or dtype.hasobject:
        raise ValueError(f"{path}: expected a C-ordered numeric array")
    return shape, dtype, offset


class NpyChannels:
    """The channels of a saved (C, ...) array, read from the .npy file one at a time on indexing.

    A memory map would do the same with less code, but every page it touches stays in the process's
    resident memory until it is closed, so the whole file would end up counted against the job.
    """

    def __init__(self, path):
        self.path = str(path)
        self.shape, self.dtype, self.offset = npy_header(self.path)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.channels(index, index + 1)[0]

    def channels(self, first: int, last: int) -> np.ndarray:
        """Channels first:last, read together."""
        count = math.prod(self.shape[1:])
        return np.fromfile(self.path, dtype=self.dtype, count=(last - first) * count,
                           offset=self.offset + first * count * self.dtype.itemsize).reshape(last - first,
                                                                                             *self.shape[1:])

    def slab(self, index: int, start: int, stop: int) -> np.ndarray:
        """Rows start:stop (along the first axis after the channels) of one channel."""
        row = math.prod(self.shape[2:])
        first = (index * self.shape[1] + start) * row
        return np.fromfile(self.path, dtype=self.dtype, count=(stop - start) * row,
                           offset=self.offset + first * self.dtype.itemsize).reshape(stop - start, *self.shape[2:])


def supports(configuration_manager) -> bool:
    """Whether this configuration's probability resampling is one this module reproduces exactly."""
    return supports_configuration(configuration_manager.configuration)


def separate_slabs(channel: np.ndarray, new_shape, axis: int, order: int):
    """nnU-Net's separate-z resampling: skimage resize per source slice, nearest slice along `axis`."""
    from skimage.transform import resize

    plane_shape = [n for a, n in enumerate(new_shape) if a != axis]
    sources = nearest_indices(channel.shape[axis], new_shape[axis])
    cached_index, cached_plane = None, None
    for out_index, source in enumerate(sources):
        if source != cached_index:
            source_slice = np.take(channel, source, axis=axis)
            cached_plane = resize(source_slice, plane_shape, order, mode="edge", anti_aliasing=False)
            cached_index = source
        slicer = tuple(slice(out_index, out_index + 1) if a == axis else slice(None) for a in range(channel.ndim))
        yield slicer, np.expand_dims(cached_plane, axis)


def _rows(logits, index: int, start: int, stop: int) -> np.ndarray:
    """Rows start:stop (the first spatial axis) of one channel, from an NpyChannels file or an array."""
    if isinstance(logits, NpyChannels):
        return logits.slab(index, start, stop)
    return np.asarray(logits[index, start:stop])


def channel_range(logits, index: int, rows: int) -> tuple[float, float]:
    """A channel's (min, max) as skimage's resize clips to them (of the values that are numbers, if any is NaN),
    read `rows` rows at a time."""
    low, high = math.inf, -math.inf
    for start in range(0, logits.shape[1], rows):
        part = _rows(logits, index, start, min(start + rows, logits.shape[1]))
        if np.issubdtype(part.dtype, np.floating) and np.isnan(part).any():
            part = part[~np.isnan(part)]
        if part.size:
            low, high = min(low, float(part.min())), max(high, float(part.max()))
    return (low, high) if low <= high else (math.nan, math.nan)


def _label_dtype(label_manager, classes: int):
    """The segmentation's dtype before un-cropping, as nnU-Net's argmax or region painting leaves it."""
    return np.uint16 if label_manager.has_regions or classes > 256 else np.uint8


class _Fold:
    """One slab's segmentation, folded class after class as nnU-Net's argmax (first maximum, first NaN) or
    region painting (`regions_class_order`) decides it; and whether a class can still change it."""

    def __init__(self, shape, dtype, label_manager, classes: int, skipping: bool = True):
        self.dtype, self.label_manager = dtype, label_manager
        self.regions = label_manager.has_regions
        self.labels = np.zeros(shape, dtype=_label_dtype(label_manager, classes))
        self.best = None if self.regions else np.empty(shape, dtype=dtype)
        self.lowest_best = None  # the smallest running maximum of the slab, once computed (_lowest_best)
        self.best_has_nan = False  # a NaN is folded in: comparisons must mind NaN from then on
        self.skipped = 0  # classes found unable to change the slab
        # a resampled value never exceeds the largest source value it is interpolated from by more than
        # float64 rounding, which the cast to a float16/float32 logits dtype takes back: skipping is exact
        self.can_skip = skipping and np.issubdtype(dtype, np.floating) and np.dtype(dtype).itemsize < 8

    def candidates(self, logits, low: int, high: int):
        """Yield (index, source rows low..high) of each class of `logits` that may change the slab, in order;
        the others are counted in `skipped`."""
        for index in range(logits.shape[0]):
            source = _rows(logits, index, low, high + 1)
            if self.cannot_change(index, source):
                self.skipped += 1
            else:
                yield index, source

    def cannot_change(self, index: int, source: np.ndarray) -> bool:
        """Whether class `index`, whose source values around the slab are `source`, changes no voxel: its
        largest value is not above the slab's smallest running maximum (argmax; class 0 always counts), or
        not above 0, where the sigmoid is not above 0.5 (regions)."""
        if not self.can_skip or source.size == 0 or (index == 0 and not self.regions):
            return False
        largest = source.max()
        if np.isnan(largest):
            return False
        if self.regions:
            return bool(largest <= 0)
        return bool(largest <= self._lowest_best(float(largest)))

    def reach(self, index: int, source: np.ndarray, finite: bool):
        """Where class `index` can change the slab, as the bounding box of its source values (window rows, then
        the other axes' source indices) above the slab's smallest running maximum (regions: above 0), each
        axis a (first, last) pair; `[None]` when nowhere; None when it must be folded whole (the first class,
        non-finite sources, logits that allow no skipping)."""
        if not (self.can_skip and finite and source.size) or (index == 0 and not self.regions):
            return None
        threshold = 0.0 if self.regions else self._exact_lowest()
        above = source > threshold
        box = []
        for axis in range(source.ndim):
            hit = np.nonzero(above.any(axis=tuple(a for a in range(source.ndim) if a != axis)))[0]
            if not hit.size:
                return [None]
            box.append((int(hit[0]), int(hit[-1])))
        return box

    def _exact_lowest(self) -> float:
        """The slab's smallest running maximum (of its numbers), computed once per change."""
        if self.lowest_best is None:
            if self.best_has_nan:
                with np.errstate(invalid="ignore"):
                    self.lowest_best = float(np.nanmin(self.best)) if not np.isnan(self.best).all() else math.inf
            else:
                self.lowest_best = float(self.best.min())
        return self.lowest_best

    def _lowest_best(self, largest: float) -> float:
        """The slab's smallest running maximum (of its numbers: NaN voxels never change), computed only when a
        sample of it, whose minimum is not below it, leaves room for `largest` not to exceed it."""
        if self.lowest_best is None:
            sample = self.best.reshape(-1)[:: max(1, self.best.size // 4096)]
            if sample.size and largest > float(np.fmin.reduce(sample)):  # NaN only when all are: go on
                return -math.inf  # some voxel's running maximum is below `largest`: no skip
        return self._exact_lowest()

    def add(self, index: int, block: np.ndarray, at=(...,), finite: bool = False) -> None:
        """Fold class `index`'s resampled values `block` into the part `at` of the slab (`finite`: they were
        interpolated from finite values only, so none is NaN)."""
        values = block.astype(self.dtype, copy=False)
        labels = self.labels[at]
        if self.regions:
            import torch

            with torch.no_grad():
                probability = self.label_manager.inference_nonlin(torch.from_numpy(values).float())
            labels[(probability > 0.5).numpy()] = self.label_manager.regions_class_order[index]
            return
        best = self.best[at]
        floating = np.issubdtype(self.dtype, np.floating)
        if index == 0:
            best[...] = values
        elif floating and (not finite or self.best_has_nan):
            higher = values > best
            higher |= np.isnan(values) & ~np.isnan(best)
            best[higher] = values[higher]
            labels[higher] = index
        else:  # no NaN on either side: the first maximum is where a later class is strictly higher
            higher = np.greater(values, best)
            np.copyto(labels, labels.dtype.type(index), where=higher)
            np.maximum(best, values, out=best)
        if floating and not finite and not self.best_has_nan:
            self.best_has_nan = bool(np.isnan(best).any())
        self.lowest_best = None  # changed: computed again when a class asks


class _ChannelRows:
    """A float64 array of one channel's shape in anonymous memory, of which only the rows written are resident
    (one per thread). scipy's zoom kernel reads a window of rows at their own place in it, so every coordinate
    is computed as zoom computes it for the whole channel (exact), and the rows are given back afterwards."""

    def __init__(self, shape):
        self.row_bytes = 8 * math.prod(shape[1:])
        self.memory = mmap.mmap(-1, max(mmap.PAGESIZE, self.row_bytes * shape[0]))
        self.array = np.frombuffer(self.memory, dtype=np.float64, count=math.prod(shape)).reshape(shape)

    def window(self, low: int, source: np.ndarray) -> np.ndarray:
        """The channel's rows up to the window's last, the window's written at `low` (the rows before it are
        never read: zoom's coordinates of the slab lie within the window)."""
        high = low + len(source)
        self.array[low:high] = source
        return self.array[:high]

    def release(self, low: int, rows: int) -> None:
        first = (low * self.row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        last = -(-((low + rows) * self.row_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
        self.memory.madvise(mmap.MADV_DONTNEED, first, min(last, len(self.memory)) - first)


_THREAD_ROWS = threading.local()


def _channel_rows(shape) -> _ChannelRows:
    rows = getattr(_THREAD_ROWS, "rows", None)
    if rows is None or rows.array.shape != tuple(shape):
        rows = _THREAD_ROWS.rows = _ChannelRows(tuple(shape))
    return rows


def _reach(n_in: int, n_out: int, order: int, start: int, stop: int, first: int, last: int) -> tuple[int, int]:
    """The output indices start..stop-1 of an axis (as a range [a, b)) whose interpolation reads a source index
    in first..last (zoom's: floor(c) and the next for order 1, round for order 0, clamped at the edges)."""
    coordinates = grid_coordinates(n_in, n_out, start, stop)
    lowest = np.floor(coordinates) if order & 1 else np.floor(coordinates + 0.5)
    reads_low = np.clip(lowest, 0, n_in - 1)
    reads_high = np.clip(lowest + order, 0, n_in - 1)
    hit = np.nonzero((reads_high >= first) & (reads_low <= last))[0]
    return (start + int(hit[0]), start + int(hit[-1]) + 1) if hit.size else (start, start)


def source_window(n_in: int, n_out: int, start: int, stop: int) -> tuple[np.ndarray, int, int]:
    """The source coordinates of output rows start..stop-1 along the first axis, and the first and last source
    rows linear interpolation reads for them (clamped to the channel)."""
    first_axis = grid_coordinates(n_in, n_out, start, stop)
    low = min(max(0, math.floor(first_axis[0])), n_in - 1)
    high = min(max(0, math.floor(first_axis[-1]) + 1), n_in - 1)
    return first_axis, low, high


def separate_planes(sources, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """On the separate-z path, the distinct source slices output slices start:stop take (sorted), and for each
    output slice the index of its source among them."""
    taken = sources[start:stop]
    distinct = np.unique(taken)
    return distinct, np.searchsorted(distinct, taken)


def resized_planes(source: np.ndarray, distinct: np.ndarray, plane_shape, order: int) -> tuple[np.ndarray, bool]:
    """The `distinct` slices of `source` (rows distinct[0]..distinct[-1] of a channel) resized in-plane as skimage's
    resize does (float64), and whether they were all finite."""
    planes = source[distinct - distinct[0]].astype(float)
    finite = bool(np.isfinite(planes).all())
    return _resize_planes(planes, plane_shape, order, finite), finite


def _joint_slab(logits, fold: _Fold, ranges, new_shape, order: int, start: int, stop: int) -> None:
    """Rows start:stop of the output on the joint path: each class resampled as zoom does (grid mode, edge
    'nearest'; skimage's resize) from only the source rows around them, clipped to the class's range."""
    from scipy import ndimage

    n_in = logits.shape[1]
    zoom = np.divide(logits.shape[1:], new_shape).astype(np.float64)
    first_axis, low, high = source_window(n_in, new_shape[0], start, stop)
    shape = (stop - start, *new_shape[1:])
    kernel = ZOOM_KERNEL
    channel_rows = _channel_rows(logits.shape[1:]) if kernel else None
    coordinates = None
    for index, source in fold.candidates(logits, low, high):
        finite = bool(np.isfinite(source).all())
        box = fold.reach(index, source, finite) if kernel else None
        if box is not None:  # only where the class's sources could win: elsewhere it changes nothing
            if box[0] is None:
                fold.skipped += 1
                continue
            first, last = box[0]
            spans = [_reach(n_in, new_shape[0], order, start, stop, low + first, low + last)]
            for axis in range(1, len(new_shape)):
                first, last = box[axis]
                spans.append(_reach(logits.shape[1 + axis], new_shape[axis], order, 0, new_shape[axis], first, last))
            block = np.empty([b - a for a, b in spans], dtype=np.float64)
            if block.size:
                at = (slice(spans[0][0] - start, spans[0][1] - start), *(slice(a, b) for a, b in spans[1:]))
                kernel(channel_rows.window(low, source), zoom, [a for a, _ in spans], block, order)
                np.clip(block, *ranges[index], out=block)
                fold.add(index, block, at, finite=True)
            continue
        if kernel:  # zoom's own kernel, its coordinates those of the whole channel
            block = np.empty(shape, dtype=np.float64)
            kernel(channel_rows.window(low, source), zoom, start, block, order)
        else:  # map_coordinates fed zoom's coordinates, shifted by a whole number of rows (exact)
            if coordinates is None:
                axes = [first_axis - low, *(grid_coordinates(logits.shape[1 + a], new_shape[a], 0, new_shape[a])
                                            for a in range(1, len(new_shape)))]
                coordinates = np.stack([np.broadcast_to(c.reshape([-1 if a == i else 1 for a in range(len(axes))]),
                                                        shape) for i, c in enumerate(axes)])
            block = ndimage.map_coordinates(source.astype(float), coordinates, order=order, mode="nearest")
        np.clip(block, *ranges[index], out=block)
        fold.add(index, block, finite=finite)
    if channel_rows is not None:
        channel_rows.release(low, high + 1 - low)



def _separate_slab(logits, fold: _Fold, new_shape, order: int, sources, start: int, stop: int) -> None:
    """Output slices start:stop on nnU-Net's separate-z path along the first axis: each class's nearest source
    slices, each resized in-plane as skimage's resize does (zoom, then clipped to the slice's range)."""
    distinct, where = separate_planes(sources, start, stop)
    for index, source in fold.candidates(logits, int(distinct[0]), int(distinct[-1])):
        resized, finite = resized_planes(source, distinct, new_shape[1:], order)
        fold.add(index, resized[where], finite=finite)


def _resize_planes(planes: np.ndarray, plane_shape, order: int, finite: bool) -> np.ndarray:
    """skimage's resize(plane, plane_shape, order, mode='edge', anti_aliasing=False) of each plane: zoom's
    kernel, then clipped to the plane's range (finite planes; others through skimage itself)."""
    out = np.empty((len(planes), *plane_shape), dtype=np.float64)
    if finite and ZOOM_KERNEL is not None:
        zoom = np.divide(planes.shape[1:], plane_shape).astype(np.float64)
        for plane, resized in zip(planes, out):
            ZOOM_KERNEL(plane, zoom, 0, resized, order)
            np.clip(resized, plane.min(), plane.max(), out=resized)
        return out
    from skimage.transform import resize

    for plane, resized in zip(planes, out):
        resized[...] = resize(plane, plane_shape, order, mode="edge", anti_aliasing=False)
    return out


def _class_by_class(logits, new_shape, axis: int, order: int, fold: _Fold) -> None:
    """The separate-z path along an axis other than the first: each class whole, folded plane by plane."""
    for index in range(logits.shape[0]):
        channel = np.asarray(logits[index]).astype(float, copy=False)
        for slicer, part in separate_slabs(channel, new_shape, axis, order):
            fold.add(index, part, slicer)
        del channel


def _by_class_groups(logits, new_shape, current_spacing, new_spacing, label_manager, kwargs: dict) -> np.ndarray:
    """nnU-Net's torch resampling (stages/torch_resampling), a few classes at a time, folded into the argmax (or the
    region painting) class after class: the resampled values' dtype (float32) is the one nnU-Net's argmax sees."""
    fold = None
    for first, resampled in resampled_groups(logits, new_shape, current_spacing, new_spacing, kwargs):
        if fold is None:
            fold = _Fold(new_shape, resampled.dtype, label_manager, logits.shape[0], skipping=False)
        for offset, values in enumerate(resampled):
            fold.add(first + offset, values)
    return fold.labels


def segmentation_from_logits(logits, new_shape, current_spacing, new_spacing, label_manager,
                             kwargs: dict, slab_voxels: int = SLAB_VOXELS, threads: int = 1,
                             counts: dict | None = None, function: str = NNUNET_RESAMPLING) -> np.ndarray:
    """The segmentation nnU-Net's export computes before un-cropping, slab by slab of the output's first axis,
    `threads` slabs at once. In each slab the classes are folded in order, each resampled only from the source
    rows around the slab, and a class that cannot change the slab (its largest source value there is not above
    the slab's smallest running maximum) is skipped: with linear or nearest interpolation no resampled value
    exceeds its sources, so the result is unchanged. `counts`, if given, gets "slabs" and "skipped" (classes
    skipped, summed over slabs).

    `logits` may be an `NpyChannels`: only rows around one slab of one class are read at a time per thread.
    With nnU-Net's torch resampling (`function`), classes are resampled whole by it, a few at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    do_separate_z, axis = separate_z_path(kwargs, current_spacing, new_spacing)
    order = kwargs.get("order", 3)
    new_shape = [int(n) for n in new_shape]
    dtype = logits.dtype
    unchanged = list(logits.shape[1:]) == new_shape
    classes = logits.shape[0]
    if function == TORCH_RESAMPLING and not unchanged:
        if counts is not None:
            counts.update(slabs=1, skipped=0, classes=classes)
        return _by_class_groups(logits, new_shape, current_spacing, new_spacing, label_manager, kwargs)
    if do_separate_z and axis != 0 and not unchanged:
        fold = _Fold(new_shape, dtype, label_manager, classes, skipping=False)
        _class_by_class(logits, new_shape, axis, order, fold)
        if counts is not None:
            counts.update(slabs=1, skipped=0, classes=classes)
        return fold.labels
    rows = max(1, slab_voxels // max(1, math.prod(new_shape[1:])))
    slabs = [(start, min(start + rows, new_shape[0])) for start in range(0, new_shape[0], rows)]
    segmentation = None
    if unchanged:
        ranges = [(-math.inf, math.inf)] * logits.shape[0]  # no resampling: the values as they are
    elif not do_separate_z:
        source_rows = max(1, slab_voxels // max(1, math.prod(logits.shape[2:])))
        ranges = [channel_range(logits, index, source_rows) for index in range(logits.shape[0])]
    sources = nearest_indices(logits.shape[1], new_shape[0]) if do_separate_z and not unchanged else None

    def one_slab(slab):
        start, stop = slab
        fold = _Fold((stop - start, *new_shape[1:]), dtype, label_manager, classes)
        if unchanged:  # the logits as they are
            for index, source in fold.candidates(logits, start, stop - 1):
                fold.add(index, source)
        elif do_separate_z:
            _separate_slab(logits, fold, new_shape, order, sources, start, stop)
        else:
            _joint_slab(logits, fold, ranges, new_shape, order, start, stop)
        segmentation[start:stop] = fold.labels
        return fold.skipped

    segmentation = np.zeros(new_shape, dtype=_label_dtype(label_manager, classes))
    if threads > 1 and len(slabs) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            skipped = sum(pool.map(one_slab, slabs))
    else:
        skipped = sum(map(one_slab, slabs))
    if counts is not None:
        counts.update(slabs=len(slabs), skipped=skipped, classes=classes)
    return segmentation


def export_streaming(logits, properties: dict, configuration_manager, plans_manager, dataset_json: dict,
                     output_file: str, slab_voxels: int = SLAB_VOXELS, threads: int = 1) -> None:
    """Write the segmentation file exactly as export_prediction_from_logits(save_probabilities=False) does,
    resampling `threads` slabs at once."""
    label_manager = plans_manager.get_label_manager(dataset_json)
    cropped_shape, current_spacing, new_spacing = export_geometry(properties, configuration_manager, plans_manager)
    configuration = configuration_manager.configuration
    write_segmentation(  # the cropped segmentation held by the call alone: freed once put back into the image
        segmentation_from_logits(logits, cropped_shape, current_spacing, new_spacing, label_manager,
                                 resampling_kwargs(configuration), slab_voxels, threads,
                                 function=configuration["resampling_fn_probabilities"]),
        properties, plans_manager, label_manager, output_file)


def export_geometry(properties: dict, configuration_manager, plans_manager) -> tuple[list[int], list, list]:
    """(cropped shape, current spacing, new spacing) of the export's resampling, as nnU-Net's export computes them:
    from the network's grid (the target spacing; a 2d configuration keeps the first axis's) to the crop's."""
    spacing_transposed = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    cropped_shape = [int(n) for n in properties["shape_after_cropping_and_before_resampling"]]
    current = configuration_manager.spacing if len(configuration_manager.spacing) == len(cropped_shape) \
        else [spacing_transposed[0], *configuration_manager.spacing]
    return cropped_shape, current, spacing_transposed


def write_segmentation(segmentation: np.ndarray, properties: dict, plans_manager, label_manager,
                       output_file: str) -> None:
    """Write a cropped segmentation as nnU-Net's export does: put back into the uncropped image (uint8, or uint16
    from 255 foreground labels), transposed back, with the model's writer."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    label_dtype = np.uint8 if len(label_manager.foreground_labels) < 255 else np.uint16
    reverted = insert_crop_into_image(np.zeros(properties["shape_before_cropping"], dtype=label_dtype), segmentation,
                                      properties["bbox_used_for_cropping"])
    del segmentation
    writer = plans_manager.image_reader_writer_class()
    writer.write_seg(reverted.transpose(plans_manager.transpose_backward), output_file, properties)
