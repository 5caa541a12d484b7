"""Stage `dicom_seg` (opt-in, `dicom_seg: true`): after a case's final segmentation is written, a DICOM
Segmentation object `{results}/{case}.seg.dcm` beside it, written with highdicom: one segment per label of
dataset.json (its name as the segment label), its frames referencing the slices of the case's first DICOM series
channel, so PACS viewers overlay it on that series. A case given as image files gets none (its record says so).
Like statistics, it looks at the segmentation only: a rerun that turns it on adds it without segmenting again."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..estimates import host_memory
from ..estimates.stage_needs import StageResources, dicom_seg_mb_from_geometry
from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..inputs.dicom_series import is_series, sorted_slice_files
from ..store.atomic_files import atomic_path
from ..store.failures import CaseError

# The SEG's own series number, and the position tolerance (mm) between its frames and the source slices.
SERIES_NUMBER = 9901
POSITION_TOLERANCE_MM = 0.01
NO_SERIES = "none: no DICOM series channel"


def first_series(job: CaseJob) -> str | None:
    """The folder of the case's first channel given as a DICOM series, or None."""
    return next((path for _, path in sorted(job.case.channels.items()) if is_series(path)), None)


def dicom_seg_path(job: CaseJob) -> Path:
    return job.layout.dicom_seg(job.id)


def segment_names(model) -> dict[int, str]:
    """{value in the segmentation: name} from dataset.json: each label's, or for a region-based model each
    region's name at its value in `regions_class_order` (what nnU-Net paints for that region)."""
    labels = model.labels
    if not any(isinstance(value, list) for value in labels.values()):
        return {int(value): name for name, value in labels.items() if name != "ignore" and int(value) != 0}
    order = json.loads((Path(model.folder) / "dataset.json").read_text())["regions_class_order"]
    regions = [name for name in labels if name not in ("background", "ignore")]
    return {int(value): name for value, name in zip(order, regions)}


def segment_descriptions(names: dict[int, str], software: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="nnU-Net", version=software,
                                                   family=codes.DCM.ArtificialIntelligence)
    return [hd.seg.SegmentDescription(segment_number=value, segment_label=name[:64],
                                      segmented_property_category=codes.SCT.Tissue,
                                      segmented_property_type=codes.SCT.Tissue,
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                      algorithm_identification=algorithm)
            for value, name in sorted(names.items())]


def check_alignment(segmentation, sources, folder) -> None:
    """The segmentation's planes are the series' slices in GDCM's order: same count, size and first position."""
    size = segmentation.GetSize()
    expected = (int(sources[0].Columns), int(sources[0].Rows), len(sources))
    if tuple(size) != expected:
        raise CaseError(f"the segmentation's size {list(size)} is not that of the DICOM series {folder} "
                        f"({list(expected)} as columns, rows, slices)")
    first = [float(v) for v in sources[0].ImagePositionPatient]
    if not np.allclose(segmentation.GetOrigin(), first, rtol=0, atol=POSITION_TOLERANCE_MM):
        raise CaseError(f"the segmentation's origin {list(segmentation.GetOrigin())} is not the first slice's "
                        f"position {first} of the DICOM series {folder}")


def dicom_seg_case(_state, job: CaseJob) -> dict:
    """Write the case's DICOM-SEG referencing its first DICOM series channel (or record that it has none)."""
    import highdicom as hd
    import pydicom
    import SimpleITK as sitk

    folder = first_series(job)
    if folder is None:
        return {"outcome": NO_SERIES}
    if not job.segmentation().is_file():
        raise CaseError(f"{job.segmentation()}: the segmentation is not there (moved or deleted since it was written)")
    sources = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted_slice_files(folder)]
    segmentation = sitk.ReadImage(str(job.segmentation()))
    check_alignment(segmentation, sources, folder)
    labels = sitk.GetArrayFromImage(segmentation)
    names = segment_names(job.model)
    unknown = sorted(set(np.unique(labels).tolist()) - {0, *names})
    if unknown:
        raise CaseError(f"{job.segmentation()}: holds values {unknown} that dataset.json names no label for")
    software = version("nnunetv2")
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels.astype(np.uint8 if max(names) < 256 else np.uint16),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(names, software),
        series_instance_uid=hd.UID(), series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="nnunet-workflow", manufacturer_model_name=Path(job.model.folder).name[:64],
        software_versions=f"nnunet-workflow {version('nnunet-workflow')}, nnunetv2 {software}",
        device_serial_number="none", series_description=f"nnU-Net {job.model.configuration}"[:64])
    target = dicom_seg_path(job)
    with atomic_path(target, suffix=".dcm") as temp:
        seg.save_as(temp)
    return {"output": str(target), "source_series": folder, "segments": len(names), "frames": len(sources)}


def import_highdicom(_model, _options) -> None:
    """Worker setup: import highdicom, pydicom and SimpleITK once for the batch."""
    import highdicom  # noqa: F401
    import SimpleITK  # noqa: F401


def written(job: CaseJob) -> list[Path]:
    return [dicom_seg_path(job)] if first_series(job) is not None else []


DICOM_SEG = Stage("dicom_seg", handle=dicom_seg_case, setup=import_highdicom, outputs=written,
                  after_segmentation=True, reads_images=False,  # the series' headers only
                  resources=StageResources(host_memory.VALIDATE_BASE_MB, default_timeout_s=1800,
                                           from_geometry=dicom_seg_mb_from_geometry))
