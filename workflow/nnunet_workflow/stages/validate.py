"""Stage `validate`: check a case against the model before nnU-Net sees it: channels, headers and geometry
first, the memory it would need from its header, then every voxel once (truncated data, NaN/Inf; a .nii.gz
file's completeness from its gzip trailer, its voxels then read once by the reader, which checks their CRC).

Catches what would otherwise fail deep inside nnU-Net (or, worse, silently produce nonsense) and
writes the case's geometry and memory and time estimates for the later stages.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..estimates import host_memory
from ..estimates.case_estimates import case_estimates, check_memory
from ..estimates.stage_needs import StageResources
from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..inputs.cases import Case
from ..inputs.dicom_series import is_series, write_volume
from ..inputs.image_reading import SIMPLEITK_READERS, read_header, read_with_model_reader, reader_class
from ..inputs.input_plausibility import (
    TrainingReference,
    channel_figures,
    intensity_notes,
    load_reference,
    spacing_notes,
)
from ..nnunet.model import ModelInfo
from ..store.failures import CaseError, last_line

# Channels of one case must agree: spacing as nnU-Net's reader demands (numpy.allclose defaults),
# origin within ORIGIN_TOLERANCE_MM and direction cosines within DIRECTION_TOLERANCE.
SPACING_RTOL = 1e-5
ORIGIN_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4
# A case spacing more than this factor away from the model's target spacing, on any axis, is warned about.
SPACING_WARNING_FACTOR = 3.0


def _describe_files(paths) -> str:
    names = [Path(p).name for p in paths]
    return f"{len(names)} file{'s' if len(names) != 1 else ''}" + (f": {', '.join(names)}" if names else "")


def check_channels(case: Case, model: ModelInfo) -> None:
    """The case has exactly one file per model channel, with the model's file ending."""
    expected = list(range(model.num_channels))
    if sorted(case.channels) != expected:
        names = ", ".join(model.channel_names)
        missing = [f"{i:04d}" for i in expected if i not in case.channels]
        extra = [f"{i:04d}" for i in case.channels if i not in expected]
        detail = "; ".join(
            part
            for part in (f"missing channel {', '.join(missing)}" if missing else "",
                         f"unexpected channel {', '.join(extra)}" if extra else "")
            if part
        )
        raise CaseError(
            f"model expects {model.num_channels} channel{'s' if model.num_channels != 1 else ''} ({names}); "
            f"found {_describe_files(case.files())} ({detail})"
        )
    for path in case.files():
        if not is_series(path) and not Path(path).name.endswith(model.file_ending):
            raise CaseError(f"{path}: file ending differs from the model's {model.file_ending!r}", kind="invalid_input")


def series_header(job: CaseJob, channel: int, folder: str) -> dict:
    """A DICOM series channel's header: its slices checked, the series written as this attempt's volume file
    (which the voxel checks and the later stages read), messages naming the folder."""
    if job.model.image_reader_writer not in SIMPLEITK_READERS:
        raise CaseError(f"{folder}: a DICOM series folder, but the model's reader {job.model.image_reader_writer} "
                        "reads files only (series are read for models whose reader is SimpleITKIO)")
    volume = write_volume(folder, job.layout.series_volume(job.id, job.attempt, channel))
    return {**read_header(str(volume)), "file": folder, "volume": str(volume)}


def channel_headers(job: CaseJob) -> list[dict]:
    """The header of each channel, in channel order: of its file, or of the volume of its DICOM series."""
    return [series_header(job, index, path) if is_series(path) else read_header(path)
            for index, path in sorted(job.case.channels.items())]


def check_dimensions(header: dict, model: ModelInfo) -> None:
    """A 3D model needs 3D images with more than one voxel along every axis; 4D images are refused."""
    path, size = header["file"], header["size"]
    if header["components"] != 1:
        raise CaseError(f"{path}: has {header['components']} components per voxel; nnU-Net expects one value per voxel")
    if header["dimension"] > 3:
        raise CaseError(f"{path}: is a {header['dimension']}D image {size}; give each channel as its own 3D file")
    if model.dimensions == 3 and (header["dimension"] < 3 or min(size) < 2):
        raise CaseError(
            f"{path}: is a 2D image (size {size}) but the model's {model.configuration} configuration is 3D; "
            "nnU-Net would resample it to a meaningless volume"
        )


def check_geometry_agreement(headers: list[dict]) -> None:
    """All channels of a case share shape, spacing, origin and direction (within the tolerances above)."""
    first = headers[0]
    for other in headers[1:]:
        pair = f"{Path(other['file']).name} and {Path(first['file']).name}"
        if other["size"] != first["size"]:
            raise CaseError(f"channels {pair} differ in size: {other['size']} vs {first['size']}")
        if not np.allclose(other["spacing"], first["spacing"], rtol=SPACING_RTOL):
            raise CaseError(f"channels {pair} differ in spacing: {other['spacing']} vs {first['spacing']}")
        if first["origin"] is None or other["origin"] is None:
            continue  # read through a reader that reports no origin and direction
        if not np.allclose(other["origin"], first["origin"], rtol=0, atol=ORIGIN_TOLERANCE_MM):
            raise CaseError(f"channels {pair} differ in origin: {other['origin']} vs {first['origin']}")
        if not np.allclose(other["direction"], first["direction"], rtol=0, atol=DIRECTION_TOLERANCE):
            raise CaseError(f"channels {pair} differ in direction: {other['direction']} vs {first['direction']}")


def nnunet_geometry(header: dict, model: ModelInfo) -> tuple[list[int], list[float]]:
    """Shape and spacing in nnU-Net's axis order (reversed SimpleITK order, then transpose_forward)."""
    shape, spacing = header["size"][::-1], header["spacing"][::-1]
    if len(shape) == 2:
        shape, spacing = [1, *shape], [999 * max(spacing), *spacing]
    order = model.transpose_forward
    return [shape[i] for i in order], [spacing[i] for i in order]


def gzip_trailer_says_complete(path: str, promised: int) -> bool:
    """Whether a .nii.gz file's gzip trailer gives (mod 2**32) exactly the size its NIfTI header promises: the
    header and extensions up to the voxel offset, then `promised` bytes of voxels. A file cut short ends in
    compressed data instead, which matches by chance once in 2**32; a file corrupt within is refused when its
    voxels are read next (zlib checks the data's CRC), so the whole file need not be decompressed once more here."""
    if not path.endswith(".nii.gz"):
        return False
    import nibabel

    try:
        offset = int(nibabel.load(path).dataobj.offset)
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            size = int.from_bytes(handle.read(4), "little")
    except Exception:  # noqa: BLE001 (any doubt: decompress the whole file)
        return False
    return size == (offset + promised) % (1 << 32)


def check_complete(header: dict) -> None:
    """The file holds as many bytes of voxel data as its header promises (SimpleITK zero-fills the rest)."""
    path = header["file"]
    promised = int(np.prod(header["size"])) * header["bytes_per_voxel"] * header["components"]
    if path.endswith(".gz"):
        if gzip_trailer_says_complete(path, promised):
            return
        held = 0
        try:
            with gzip.open(path, "rb") as stream:
                while block := stream.read(1 << 24):
                    held += len(block)
        except (EOFError, OSError, zlib.error) as error:
            raise CaseError(f"{path}: truncated or corrupt compressed data ({error})") from None
    elif path.endswith(".nii"):
        held = os.path.getsize(path)
    else:
        return
    if held < promised:
        raise CaseError(f"{path}: holds {held:,} bytes in all but its header promises {promised:,} bytes of voxels")


def nifti_non_finite(path: str) -> int:
    """NaN and infinite voxels of a floating-point NIfTI file, counted from its raw data with nibabel (0 for
    other files and integer data)."""
    if not path.endswith((".nii", ".nii.gz")):
        return 0
    import nibabel

    image = nibabel.load(path)
    if image.get_data_dtype().kind != "f":
        return 0
    data = np.asanyarray(image.dataobj)
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def check_voxels(path: str, reader: str = "SimpleITKIO", reference: TrainingReference | None = None,
                 shown_as: str | None = None) -> tuple[list[str], list[dict]]:
    """Read every voxel once: refuse truncated data and NaN or Inf values; warn about a constant image.
    Returns the warnings and, given the training reference, the channel's intensity figures. Warnings name the
    file by `shown_as` where given (a DICOM series' volume by its folder).

    For models whose reader is SimpleITK (other readers are checked in image_reading). SimpleITK's NIfTI
    reader turns NaN and Inf into 0 without a word, so those are counted from the raw data: nnU-Net
    predicts on those zeros, so the case runs (identical to nnU-Net) with a warning."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(path)
    except RuntimeError as error:
        raise CaseError(f"{path}: voxel data cannot be read ({last_line(error)})") from None
    array = sitk.GetArrayViewFromImage(image)  # a view: `image` must stay alive while it is used
    if array.dtype.kind == "f":
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise CaseError(f"{path}: {bad:,} voxels are NaN or infinite")
    low, high = array.min(), array.max()
    figures = [channel_figures(array, reference)] if reference is not None else []
    del array, image  # before the raw data is read
    warnings = [f"{shown_as or Path(path).name}: every voxel has the value {low}"] if low == high else []
    hidden = nifti_non_finite(path)
    if hidden:
        warnings.append(f"{Path(path).name}: {hidden:,} voxels are NaN or infinite in the file; the model's reader "
                        f"({reader}) reads them as 0, and nnU-Net predicts on those zeros")
    return warnings, figures


def spacing_warnings(spacing, model: ModelInfo) -> list[str]:
    """A warning when the case's spacing is far (on any axis) from the spacing the model works at."""
    target = list(model.target_spacing)
    spacing = list(spacing)[-len(target):]
    factor = SPACING_WARNING_FACTOR
    if not any(s / t > factor or t / s > factor for s, t in zip(spacing, target)):
        return []
    shown = [round(s, 3) for s in spacing], [round(t, 3) for t in target]
    return [f"spacing {shown[0]} (nnU-Net axis order) is far from the model's {shown[1]} "
            "(nnU-Net resamples it; check that this model suits these images)"]


def check_channels_given(headers: list[dict], case: Case, model: ModelInfo) -> None:
    """With a reader whose files may hold several channels (an RGB PNG: three), the channels the files give
    add up to the model's."""
    found = sum(h["channels"] for h in headers)
    if found != model.num_channels:
        names = ", ".join(model.channel_names)
        raise CaseError(
            f"model expects {model.num_channels} channel{'s' if model.num_channels != 1 else ''} ({names}); "
            f"the model's reader {model.image_reader_writer} finds {found} in {_describe_files(case.files())}"
        )


def plausibility_notes(figures: list[dict], reader_spacing, model: ModelInfo, reference: TrainingReference,
                       mode: str) -> list[str]:
    """Notes on what in the case is unlike the model's training data; with mode `fail` they refuse it."""
    notes = intensity_notes(figures, reference, model.channel_names) + spacing_notes(reader_spacing, reference)
    if notes and mode == "fail":
        raise CaseError("unlike the model's training data (plausibility: fail): " + "; ".join(notes),
                        kind="implausible_input")
    return notes


def inspect_case(reference: TrainingReference | None, job: CaseJob) -> dict:
    """All checks of one case; returns its geometry, stage estimates, warnings and plausibility notes against
    the training data (`reference`, the worker's state; None: not checked), or raises CaseError."""
    case, model = job.case, job.model
    if model.image_reader_writer in SIMPLEITK_READERS or any(is_series(path) for path in case.files()):
        check_channels(case, model)
        headers = channel_headers(job)
    else:  # what nnU-Net's own reader sees, voxels included
        headers = [read_with_model_reader(path, model.image_reader_writer, reference) for path in case.files()]
        check_channels_given(headers, case, model)
        if all(h["channels"] == 1 for h in headers):
            check_channels(case, model)
    for header in headers:
        check_dimensions(header, model)
    check_geometry_agreement(headers)
    shape, spacing = nnunet_geometry(headers[0], model)
    bytes_per_voxel = max(h["bytes_per_voxel"] for h in headers)
    channels = model.num_channels
    estimates = case_estimates(shape, spacing, channels, bytes_per_voxel, model, job.options.save_probabilities,
                               bool(job.options.postprocessing), job.ensemble, job.options.statistics,
                               job.options.export_threads, job.options.preprocess_threads,
                               job.options.out_of_core == "always")
    check_memory(estimates, job.options.max_job_mb)
    # the training cases' spacing range, where the fingerprint gives it, says more than the target spacing
    warnings = [] if reference is not None and reference.spacing_range else spacing_warnings(spacing, model)
    figures = []
    for header in headers:
        check_complete(header)
        if "warnings" in header:  # read through the model's reader: voxels already checked
            warnings += header["warnings"]
            figures += header["figures"]
        else:
            more, found = check_voxels(header.get("volume", header["file"]), model.image_reader_writer, reference,
                                       Path(header["file"]).name)  # a series: its folder's name
            warnings += more
            figures += found
    reader_spacing = headers[0]["spacing"][::-1]
    notes = [] if reference is None else plausibility_notes(figures, reader_spacing, model, reference,
                                                           job.options.plausibility)
    geometry = {k: headers[0][k] for k in ("size", "spacing", "origin", "direction", "pixel_type")}
    # what the estimates were computed from (nnU-Net's axis order), so they can be recomputed
    geometry.update(shape_nnunet=shape, spacing_nnunet=spacing, channels=channels,
                    bytes_per_voxel=bytes_per_voxel)
    return {"geometry": geometry, "estimates": estimates.to_json(), "warnings": warnings, "plausibility": notes,
            "intensities": figures}


def import_readers(model: ModelInfo, options) -> TrainingReference | None:
    """Worker setup: import the readers once, so the worker's baseline memory includes them (a worker that
    grew past it while a case ran is replaced, and lazy imports would look like such growth); return the
    model's training reference for the plausibility checks (None without a fingerprint, or when off)."""
    import nibabel  # noqa: F401
    import SimpleITK  # noqa: F401

    if model.image_reader_writer not in SIMPLEITK_READERS:
        reader_class(model.image_reader_writer)
    return None if options.plausibility == "off" else load_reference(model.folder)


VALIDATE = Stage("validate", handle=inspect_case, setup=import_readers,
                 fields=lambda job: {"files": job.case.files()}, resources=StageResources(host_memory.VALIDATE_BASE_MB))
