"""DICOM series as channels: a channel given as a folder holding one DICOM series (one file per slice), read
with SimpleITK's GDCM series reader after its slices are checked (one series, one orientation and slice size,
no missing, duplicated or unevenly spaced slices). Validate writes the series once per attempt as a volume
file (`work/{case}/{attempt}/series/{case}_XXXX.mha`, MetaImage: the geometry in full precision) that
nnU-Net's SimpleITK reader then reads like any channel file; the last stage that reads the images removes it
(a stage where the case fails too), and a stage that finds it gone (statistics added by a later run) writes it
again from the series."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..store.atomic_files import atomic_path
from ..store.failures import CaseError, last_line
from .image_reading import header_reader, missing

# Consecutive slices may lie this share of the series' median slice distance closer or farther apart.
SLICE_DISTANCE_RTOL = 0.01
# Slices of one series must share their orientation (direction cosines) within this.
ORIENTATION_TOLERANCE = 1e-4
# The tags read from each slice's header.
POSITION, ORIENTATION, ROWS, COLUMNS, PIXEL_SPACING, FRAMES = (
    "0020|0032", "0020|0037", "0028|0010", "0028|0011", "0028|0030", "0028|0008")
# A slice file's voxels may be decoded (a compressed transfer syntax) or rescaled to float64: a folder's
# voxels can take this many times its files' size in memory.
SERIES_EXPANSION = 4


def is_series(path) -> bool:
    """A channel given as a folder (a DICOM series) rather than an image file."""
    return os.path.isdir(path)


def series_files_on_disk(folder) -> list[Path]:
    """Every file of a series folder (not hidden), sorted by name: what a case's provenance covers."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in series_files_on_disk(folder))


def sorted_slice_files(folder) -> list[str]:
    """The slice files of the one DICOM series in a folder, in GDCM's order (along the slice normal); refuses
    a folder with none or several series."""
    import SimpleITK as sitk

    if not os.path.isdir(folder):
        raise CaseError(missing(folder, "folder"))
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        files = len(series_files_on_disk(folder))
        raise CaseError(f"{folder}: holds no DICOM series ({files} file{'s' if files != 1 else ''}, none read as "
                        "a DICOM image)")
    if len(series) > 1:
        counts = ", ".join(
            f"{uid} ({len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))} files)" for uid in series)
        raise CaseError(f"{folder}: holds {len(series)} DICOM series ({counts}); give each channel a folder of "
                        "one series")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.strip().split("\\") if v.strip()]


def slice_header(path: str) -> dict:
    """The geometry tags of one slice file."""
    reader = header_reader(path, "not a readable DICOM file")

    def tag(key, default=""):
        return reader.GetMetaData(key) if reader.HasMetaDataKey(key) else default

    if not tag(POSITION) or not tag(ORIENTATION):
        raise CaseError(f"{path}: has no image position or orientation (tags 0020,0032 and 0020,0037); "
                        "a series without them cannot be stacked into a volume")
    return {"file": path, "position": _numbers(tag(POSITION)), "orientation": _numbers(tag(ORIENTATION)),
            "size": [int(tag(ROWS, "0") or 0), int(tag(COLUMNS, "0") or 0)],
            "pixel_spacing": _numbers(tag(PIXEL_SPACING, "")), "frames": int(tag(FRAMES, "1") or 1)}


def _name(header: dict) -> str:
    return Path(header["file"]).name


def check_slices(folder, headers: list[dict]) -> None:
    """One orientation, slice size and pixel spacing; one frame per file; slices evenly spaced along the
    normal, none missing or duplicated. Each refusal names the files where it happens."""
    first = headers[0]
    for header in headers:
        if header["frames"] > 1:
            raise CaseError(f"{folder}: {_name(header)} holds {header['frames']} frames (an enhanced multi-frame "
                            "DICOM); give a series of one file per slice, or convert it to NIfTI")
        if not np.allclose(header["orientation"], first["orientation"], rtol=0, atol=ORIENTATION_TOLERANCE):
            raise CaseError(f"{folder}: slices differ in orientation: {_name(header)} {header['orientation']} vs "
                            f"{_name(first)} {first['orientation']} (a mixed or reformatted series)")
        if header["size"] != first["size"] or not np.allclose(header["pixel_spacing"], first["pixel_spacing"]):
            raise CaseError(f"{folder}: slices differ in size or pixel spacing: {_name(header)} "
                            f"{header['size']} at {header['pixel_spacing']} mm vs {_name(first)} {first['size']} at "
                            f"{first['pixel_spacing']} mm")
    if len(headers) < 2:
        return  # one slice: validate refuses it as a 2D image for a 3D model
    row, column = np.array(first["orientation"][:3]), np.array(first["orientation"][3:6])
    normal = np.cross(row, column)
    along = np.array([float(np.dot(normal, h["position"])) for h in headers])
    distances = np.diff(along)
    step = float(np.median(np.abs(distances)))
    if step == 0:
        raise CaseError(f"{folder}: all {len(headers)} slices lie at the same position (not a volume)")
    for index, distance in enumerate(np.abs(distances)):
        pair = f"{_name(headers[index])} and {_name(headers[index + 1])}"
        if distance < step * SLICE_DISTANCE_RTOL:
            raise CaseError(f"{folder}: slices {pair} lie at the same position ({along[index]:.3f} mm along the "
                            "slice normal): a duplicated slice, or two series in one folder")
        ratio = distance / step
        if abs(ratio - 1) <= SLICE_DISTANCE_RTOL:
            continue
        if ratio > 1.5 and abs(ratio - round(ratio)) <= SLICE_DISTANCE_RTOL * round(ratio):
            missing = round(ratio) - 1
            raise CaseError(f"{folder}: {missing} slice{'s' if missing != 1 else ''} missing between {pair} "
                            f"({distance:.3f} mm apart where the series' slices are {step:.3f} mm apart)")
        raise CaseError(f"{folder}: uneven slice spacing: slices {pair} are {distance:.3f} mm apart, the series' "
                        f"others {step:.3f} mm; nnU-Net needs a volume of one spacing")


def read_series(folder):
    """The checked series of a folder as one SimpleITK image (GDCM's slice order and geometry)."""
    import SimpleITK as sitk

    files = sorted_slice_files(folder)
    check_slices(folder, [slice_header(path) for path in files])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise CaseError(f"{folder}: the DICOM series cannot be read ({last_line(error)})") from None


def write_volume(folder, target) -> Path:
    """Read and check the series of `folder` and write it as one volume file (atomically); return its path."""
    import SimpleITK as sitk

    image = read_series(folder)
    with atomic_path(target, suffix=Path(target).suffix) as temp:
        sitk.WriteImage(image, str(temp), useCompression=False)
    return Path(target)


def image_files(job) -> list[str]:
    """The files nnU-Net's reader reads for a case's channels, in channel order: a channel file as given; for
    a DICOM series, its volume file of this attempt, written again from the series if it is gone."""
    files = []
    for index, path in sorted(job.case.channels.items()):
        if is_series(path):
            volume = job.layout.series_volume(job.id, job.attempt, index)
            if not volume.is_file():
                write_volume(path, volume)
            path = str(volume)
        files.append(path)
    return files


def remove_volumes(job) -> None:
    """Remove a case attempt's series volumes (unless intermediates are kept): once the last stage reading the
    images is through with the case, or once the case failed (a rerun starts a new attempt, with its own)."""
    if not job.options.keep_intermediates:
        shutil.rmtree(job.layout.series_dir(job.id, job.attempt), ignore_errors=True)
