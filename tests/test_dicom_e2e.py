"""End to end on the demo model: a case given as DICOM series folders (one per channel) is segmented exactly as
the same volumes given as NIfTI files, by the workflow and by nnUNetv2_predict; a broken series fails its case
at validate with a sentence; with `dicom_seg: true` the DICOM case gets a DICOM-SEG that reads back (highdicom)
as its segmentation, with the labels of dataset.json, referencing its first channel's slices."""

import shutil

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from e2e import assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.dicom_data import new_uid, write_series
from nnunet_workflow.inputs.dicom_series import sorted_slice_files
from nnunet_workflow.store.layout import Layout

pytestmark = pytest.mark.slow


def integer_channels(demo) -> list:
    """The smallest demo case's channels as int16 images (DICOM holds integers), placed off the origin."""
    case = min(demo["case_files"], key=lambda c: sitk.ReadImage(demo["case_files"][c][0]).GetNumberOfPixels())
    images = []
    for path in demo["case_files"][case]:
        image = sitk.Cast(sitk.Round(sitk.ReadImage(path)), sitk.sitkInt16)
        image.SetOrigin((-20.5, 10.25, 5.0))
        images.append(image)
    return images


def write_inputs(images, source) -> dict:
    """The case as DICOM series (`dcm`), as NIfTI (`nii`), and with a slice missing from T1's series (`gap`)."""
    study, frame = new_uid(), new_uid()
    series = {}
    for index, image in enumerate(images):
        series[index] = new_uid()
        write_series(image, source / f"dcm_{index:04d}", series_uid=series[index], study_uid=study, frame_uid=frame)
        write_series(image, source / f"gap_{index:04d}", study_uid=study, frame_uid=frame,
                     skip=(image.GetDepth() // 2,) if index == 0 else ())
        sitk.WriteImage(image, str(source / f"nii_{index:04d}.nii.gz"))
    return series


def test_a_dicom_series_case_is_segmented_as_its_nifti_twin_and_written_as_dicom_seg(demo, tmp_path):
    source, results = tmp_path / "input", tmp_path / "results"
    images = integer_channels(demo)
    series = write_inputs(images, source)
    run_workflow(demo["model"], source, results, tta="false", dicom_seg="true")

    summary = pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False).set_index("case")
    assert summary.loc["dcm", "status"] == summary.loc["nii", "status"] == "done"
    gap = summary.loc["gap"]
    assert (gap["status"], gap["stage"], gap["kind"]) == ("failed", "validate", "invalid_input")
    depth = images[0].GetDepth()
    assert gap["message"] == (f"{source / 'gap_0000'}: 1 slice missing between slice{depth // 2 - 1:04d}.dcm and "
                              f"slice{depth // 2 + 1:04d}.dcm (2.000 mm apart where the series' slices are "
                              "1.000 mm apart)")
    assert_same_image(results / "dcm.nii.gz", results / "nii.nii.gz")
    reference = tmp_path / "reference"
    nifti_only = tmp_path / "nifti_only"
    nifti_only.mkdir()
    for index in range(len(images)):
        shutil.copy(source / f"nii_{index:04d}.nii.gz", nifti_only / f"dcm_{index:04d}.nii.gz")
    run_nnunet_predict(demo["model"], nifti_only, reference, "--disable_tta")
    assert_same_image(results / "dcm.nii.gz", reference / "dcm.nii.gz")
    statistics = pd.read_csv(results / "statistics.tsv", sep="\t").set_index(["case", "label"])
    assert statistics.loc["dcm"].equals(statistics.loc["nii"])
    assert not Layout(results).series_dir("dcm", "a1").exists()  # the volumes were removed after statistics

    # DICOM-SEG: for the DICOM case only; it reads back as the segmentation, on T1's slices
    assert (summary.loc["dcm", "dicom_seg"], summary.loc["nii", "dicom_seg"]) == ("done", "none: no DICOM series "
                                                                                  "channel")
    assert not (results / "nii.seg.dcm").exists() and not (results / "gap.seg.dcm").exists()
    seg = hd.seg.segread(results / "dcm.seg.dcm")
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "sphere"), (2, "box")]
    slices = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted_slice_files(source / "dcm_0000")]
    assert {s.SeriesInstanceUID for s in slices} == {series[0]}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series[0]
    assert seg.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
    labels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[s.SOPInstanceUID for s in slices],
                                               combine_segments=True)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(results / "dcm.nii.gz")))
    assert expected.max() == 2 and np.array_equal(labels, expected)

    # a second run finds everything finished and touches nothing
    written = {p.name: p.stat().st_mtime_ns for p in results.glob("*.nii.gz")} | {
        "seg": (results / "dcm.seg.dcm").stat().st_mtime_ns}
    run_workflow(demo["model"], source, results, tta="false", dicom_seg="true")
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.nii.gz")} | {
        "seg": (results / "dcm.seg.dcm").stat().st_mtime_ns} == written
