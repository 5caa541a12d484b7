"""Test data: a 3D image written as a DICOM series (one MR or CT image file per slice, with the position,
orientation, spacing and UIDs a scanner writes), with slices left out, duplicated or moved on request, so
the tests can make series that are whole, broken, or two in one folder. Integer images only (DICOM pixel
data); the series reads back as the same array and geometry where the direction is right-handed."""

from __future__ import annotations

import itertools
import locale
from pathlib import Path

# SOP classes of the slices written (GDCM keeps the one given).
SOP_CLASSES = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for UIDs made here
_serial = itertools.count(1)


def new_uid(seed: str = "") -> str:
    import pydicom.uid

    return pydicom.uid.generate_uid(prefix=UID_ROOT, entropy_srcs=[seed, str(next(_serial))] if seed else None)


def write_series(image, folder, modality: str = "MR", series_uid: str | None = None, study_uid: str | None = None,
                 frame_uid: str | None = None, skip=(), duplicate=(), shift_mm: dict | None = None,
                 patient_id: str = "TEST001", prefix: str = "slice") -> list[Path]:
    """Write a SimpleITK 3D integer image as a DICOM series in `folder` ({prefix}{k:04d}.dcm); return the files.
    skip: slice indices left out; duplicate: slices written twice (the copy as another instance);
    shift_mm: {slice index: mm} moves a slice along the normal (uneven spacing)."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or new_uid()
    study_uid = study_uid or new_uid()
    d = image.GetDirection()
    normal = (d[2], d[5], d[8])
    common = {
        "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL", "0008|0016": SOP_CLASSES[modality], "0008|0060": modality,
        "0008|0020": "20261204", "0008|0021": "20261204", "0008|0030": "120000", "0008|0031": "120000",
        "0008|103e": f"test series {modality}", "0010|0010": "Test^Patient", "0010|0020": patient_id,
        "0010|0030": "19700101", "0010|0040": "O", "0020|000d": study_uid, "0020|000e": series_uid,
        "0020|0010": "1", "0020|0011": "1", "0020|0052": frame_uid or new_uid(),
        "0020|0037": "\\".join(repr(float(v)) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
        "0018|0050": repr(float(image.GetSpacing()[2])),
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    files, instance = [], 0
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer leaves the process in the C locale (ASCII)
    try:
        for k in range(image.GetDepth()):
            if k in skip:
                continue
            for copy in range(2 if k in duplicate else 1):
                instance += 1
                plane = image[:, :, k]
                for key, value in common.items():
                    plane.SetMetaData(key, value)
                position = list(image.TransformIndexToPhysicalPoint((0, 0, k)))
                moved = (shift_mm or {}).get(k, 0.0)
                position = [p + moved * n for p, n in zip(position, normal)]
                plane.SetMetaData("0020|0032", "\\".join(repr(float(v)) for v in position))
                plane.SetMetaData("0020|0013", str(instance))
                plane.SetMetaData("0008|0018", new_uid(f"{series_uid}.{k}.{copy}"))
                path = folder / f"{prefix}{k:04d}{'b' if copy else ''}.dcm"
                writer.SetFileName(str(path))
                writer.Execute(plane)
                files.append(path)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return files
