"""Reading channel files: a file's header with SimpleITK (the library nnU-Net's default reader uses), and a
channel file through the model's own nnU-Net reader (`plans.json` `image_reader_writer`) where it
is not SimpleITK (NibabelIO, Tiff3DIO, NaturalImage2DIO, ...): validate then checks what nnU-Net will see,
the channels a file gives (an RGB PNG gives three), its shape and spacing, and its voxels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..store.failures import CaseError, last_line

# The readers validate reads headers for with SimpleITK itself (the same library nnU-Net's reader uses).
SIMPLEITK_READERS = {"SimpleITKIO", "SimpleITKIOWithReorient"}
# Readers whose spacing comes from a sidecar `CASE.json` beside the channel files (`{"spacing": [z, y, x]}`),
# and assume (1, 1, 1) without one.
SIDECAR_READERS = {"Tiff3DIO"}


def spacing_sidecar(path: str) -> Path:
    """Where Tiff3DIO looks for a channel file's spacing: CASE_0000.tif -> CASE.json."""
    name = Path(path).name
    return Path(path).with_name(name[: -len(Path(name).suffix) - len("_0000")] + ".json")


def header_reader(path: str, unreadable: str):
    """A SimpleITK file reader with `path`'s header read (not its voxels); a file it cannot read is refused as
    `{path}: {unreadable} ({reason})`."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise CaseError(f"{path}: {unreadable} ({last_line(error)})") from None
    return reader


def reader_class(name: str):
    from nnunetv2.imageio.reader_writer_registry import recursive_find_reader_writer_by_name

    return recursive_find_reader_writer_by_name(name)


def missing(path: str, what: str) -> str:
    """The sentence of an input that is not there, naming the path as given (a link: then its target)."""
    if os.path.islink(path):
        return f"{path}: a link to {os.path.realpath(path)}, which does not exist"
    return f"{path}: {what} does not exist"


def read_with_model_reader(path: str, reader: str, reference=None) -> dict:
    """A header-like description of one channel file as the model's reader reads it (SimpleITK order x, y, z:
    nnU-Net's readers give (channels, z, y, x) and spacing in z, y, x), with its voxel checks done:
    NaN or Inf voxels are refused (the reader passes them to nnU-Net), a constant image is warned about; given
    the training reference (input_plausibility), each channel's intensity figures."""
    from .input_plausibility import channel_figures

    if not os.path.exists(path):
        raise CaseError(missing(path, "file"))
    if os.path.getsize(path) == 0:
        raise CaseError(f"{path}: file is empty (0 bytes)")
    try:
        data, properties = reader_class(reader)().read_images([path])
    except Exception as error:  # noqa: BLE001 - any reader failure is a property of this file
        reason = last_line(error, type(error).__name__)
        raise CaseError(f"{path}: not readable by the model's reader {reader} ({reason})") from None
    if data.dtype.kind == "f":
        bad = data.size - int(np.count_nonzero(np.isfinite(data)))
        if bad:
            raise CaseError(f"{path}: {bad:,} voxels are NaN or infinite")
    warnings = [f"{Path(path).name}: every voxel has the value {data.min()}"] if data.min() == data.max() else []
    if reader in SIDECAR_READERS and not spacing_sidecar(path).is_file():
        warnings.append(f"{Path(path).name}: no spacing file {spacing_sidecar(path).name} beside it; the model's "
                        f"reader {reader} assumes spacing (1, 1, 1)")
    return {
        "file": path,
        "dimension": 3,
        "size": [int(n) for n in data.shape[1:][::-1]],
        "spacing": [float(s) for s in properties["spacing"]][::-1],
        "origin": None,
        "direction": None,
        "components": 1,
        "channels": int(data.shape[0]),
        "pixel_type": str(data.dtype),
        "bytes_per_voxel": data.dtype.itemsize,
        "warnings": warnings,
        "figures": [channel_figures(channel, reference) for channel in data] if reference is not None else [],
    }


def read_header(path: str) -> dict:
    """Geometry of an image file from its header, in SimpleITK order (x, y, z)."""
    import SimpleITK as sitk

    if not os.path.exists(path):
        raise CaseError(missing(path, "file"))
    if os.path.getsize(path) == 0:
        raise CaseError(f"{path}: file is empty (0 bytes)")
    reader = header_reader(path, "not a readable image")
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    return {
        "file": path,
        "dimension": reader.GetDimension(),
        "size": list(reader.GetSize()),
        "spacing": list(reader.GetSpacing()),
        "origin": list(reader.GetOrigin()),
        "direction": list(reader.GetDirection()),
        "components": reader.GetNumberOfComponents(),
        "pixel_type": pixel,
        "bytes_per_voxel": np.dtype(_PIXEL_DTYPES.get(pixel, "float64")).itemsize,
    }


_PIXEL_DTYPES = {
    "8-bit unsigned integer": "uint8",
    "8-bit signed integer": "int8",
    "16-bit unsigned integer": "uint16",
    "16-bit signed integer": "int16",
    "32-bit unsigned integer": "uint32",
    "32-bit signed integer": "int32",
    "64-bit unsigned integer": "uint64",
    "64-bit signed integer": "int64",
    "32-bit float": "float32",
    "64-bit float": "float64",
}
