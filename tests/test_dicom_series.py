"""DICOM series channels: a whole series reads back as the volume it was written from; a broken one (slices
missing, duplicated, unevenly spaced, two series in a folder, none) is refused with a sentence naming the
folder and the slice files; case discovery, provenance and the volume files of an attempt; the DICOM-SEG's
segment names."""

import locale
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.dev.dicom_data import write_series
from nnunet_workflow.execution.job import CaseJob, RunOptions
from nnunet_workflow.inputs.cases import Case, discover_cases
from nnunet_workflow.inputs.dicom_series import image_files, read_series, remove_volumes
from nnunet_workflow.planning.provenance import case_provenance
from nnunet_workflow.store.failures import CaseError
from nnunet_workflow.store.layout import Layout


def volume(depth=12, direction=None):
    array = (np.random.default_rng(1).normal(size=(depth, 14, 16)) * 300).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-10.5, 20.25, 33.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


@pytest.mark.parametrize("direction", [None, (0, 0, 1, 1, 0, 0, 0, 1, 0)], ids=["axial", "sagittal"])
def test_a_whole_series_reads_back_as_the_volume_it_was_written_from(tmp_path, direction):
    image = volume(direction=direction)
    encoding = locale.getpreferredencoding(False)
    write_series(image, tmp_path / "s")
    assert locale.getpreferredencoding(False) == encoding  # GDCM's writer set the C locale; it is restored
    read = read_series(tmp_path / "s")
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))
    assert read.GetSpacing() == pytest.approx(image.GetSpacing())
    assert read.GetOrigin() == pytest.approx(image.GetOrigin())
    assert read.GetDirection() == pytest.approx(image.GetDirection())
    assert read.GetPixelIDTypeAsString() == "16-bit signed integer"


@pytest.mark.parametrize("broken, expected", [
    ({"skip": (4,)}, "s: 1 slice missing between slice0003.dcm and slice0005.dcm (5.000 mm apart where the "
                     "series' slices are 2.500 mm apart)"),
    ({"skip": (4, 5)}, "2 slices missing between slice0003.dcm and slice0006.dcm"),
    ({"duplicate": (6,)}, "slices slice0006.dcm and slice0006b.dcm lie at the same position"),
    ({"shift_mm": {3: 0.6}}, "uneven slice spacing: slices slice0002.dcm and slice0003.dcm are 3.100 mm apart, "
                             "the series' others 2.500 mm"),
], ids=["missing", "two-missing", "duplicated", "uneven"])
def test_a_broken_series_is_refused_naming_the_folder_and_the_slices(tmp_path, broken, expected):
    write_series(volume(), tmp_path / "s", **broken)
    with pytest.raises(CaseError) as error:
        read_series(tmp_path / "s")
    assert str(tmp_path / "s") in str(error.value)
    assert expected in str(error.value)
    assert error.value.kind == "invalid_input"


def test_two_series_in_one_folder_none_and_no_folder_are_refused(tmp_path):
    write_series(volume(), tmp_path / "two")
    write_series(volume(), tmp_path / "two", prefix="other")
    with pytest.raises(CaseError, match=r"two: holds 2 DICOM series \(.* \(12 files\), .* \(12 files\)\); give "
                                        r"each channel a folder of one series"):
        read_series(tmp_path / "two")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("not an image")
    with pytest.raises(CaseError, match=r"none: holds no DICOM series \(1 file, none read as a DICOM image\)"):
        read_series(tmp_path / "none")
    with pytest.raises(CaseError, match="gone: folder does not exist"):
        read_series(tmp_path / "gone")


def test_slices_of_another_orientation_are_refused(tmp_path):
    write_series(volume(), tmp_path / "s", series_uid="1.2.3.4")
    oblique = volume(depth=1, direction=(1, 0, 0, 0, 0.6, 0.8, 0, -0.8, 0.6))
    files = write_series(oblique, tmp_path / "odd", series_uid="1.2.3.4")  # same series, another plane
    os.replace(files[0], tmp_path / "s" / "slice0099.dcm")
    with pytest.raises(CaseError, match=r"s: slices differ in orientation: slice\d{4}.dcm \[.*\] vs slice\d{4}.dcm"):
        read_series(tmp_path / "s")


def test_folders_named_as_channels_are_series_channels_and_their_files_are_the_case_inputs(tmp_path):
    source = tmp_path / "input"
    write_series(volume(), source / "c1_0000")
    sitk.WriteImage(volume(), str(source / "c1_0001.nii.gz"))
    (source / "notes").mkdir()  # a folder not named as a channel is no case
    cases = discover_cases(source, ("T1", "T2"))
    assert list(cases) == ["c1"]
    assert cases["c1"].channels == {0: str(source / "c1_0000"), 1: str(source / "c1_0001.nii.gz")}
    key = case_provenance("run", cases["c1"])
    slice_file = source / "c1_0000" / "slice0005.dcm"
    os.utime(slice_file, ns=(9, 9))
    assert case_provenance("run", cases["c1"]) != key  # one slice file touched: the case is stale


def test_a_sample_sheet_cell_may_name_a_series_folder(tmp_path):
    write_series(volume(), tmp_path / "s01" / "t1_series")
    sitk.WriteImage(volume(), str(tmp_path / "s01" / "t2.nii.gz"))
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case\tT1\tT2\nsubject-01\ts01/t1_series\ts01/t2.nii.gz\n")
    cases = discover_cases(sheet, ("T1", "T2"))
    assert cases["subject-01"].channels == {0: str(tmp_path / "s01" / "t1_series"),
                                            1: str(tmp_path / "s01" / "t2.nii.gz")}


def test_an_attempts_volume_is_written_again_when_gone_and_removed_after_the_last_stage(tmp_path, two_channel_model):
    write_series(volume(), tmp_path / "c1_0000")
    sitk.WriteImage(volume(), str(tmp_path / "c1_0001.nii.gz"))
    case = Case("c1", {0: str(tmp_path / "c1_0000"), 1: str(tmp_path / "c1_0001.nii.gz")})
    layout = Layout(tmp_path / "results")
    job = CaseJob(case, "a1", two_channel_model, layout, RunOptions())
    files = image_files(job)
    assert files == [str(layout.series_volume("c1", "a1", 0)), str(tmp_path / "c1_0001.nii.gz")]
    written = sitk.ReadImage(files[0])
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(volume()))
    assert written.GetOrigin() == pytest.approx((-10.5, 20.25, 33.0))
    remove_volumes(job)
    assert not layout.series_dir("c1", "a1").exists()
    assert image_files(job) == files and os.path.isfile(files[0])  # written again from the series


def test_series_volumes_go_when_the_case_fails_or_the_last_stage_reading_images_is_through(tmp_path,
                                                                                        two_channel_model):
    from nnunet_workflow.planning.pipeline import stages_for
    from nnunet_workflow.store.records import DONE, FAILED, StageRecord

    write_series(volume(), tmp_path / "c1_0000")
    job = CaseJob(Case("c1", {0: str(tmp_path / "c1_0000")}), "a1", two_channel_model, Layout(tmp_path / "r"))
    stages = stages_for(two_channel_model, after_segmentation=["statistics"])
    image_files(job)
    for name in ("validate", "preprocess", "export"):  # done, not the last to read the images
        stages[name].after(job, StageRecord(name, "c1", DONE))
    assert job.layout.series_dir("c1", "a1").is_dir()
    stages["statistics"].after(job, StageRecord("statistics", "c1", DONE))
    assert not job.layout.series_dir("c1", "a1").exists()
    image_files(job)
    stages["preprocess"].after(job, StageRecord("preprocess", "c1", FAILED))
    assert not job.layout.series_dir("c1", "a1").exists()
    kept = CaseJob(job.case, "a1", two_channel_model, job.layout, RunOptions(keep_intermediates=True))
    image_files(kept)
    stages["statistics"].after(kept, StageRecord("statistics", "c1", DONE))
    assert kept.layout.series_dir("c1", "a1").is_dir()


def test_dicom_seg_segments_are_named_from_dataset_json_labels_or_regions(tmp_path, two_channel_model):
    import json
    from dataclasses import replace

    from nnunet_workflow.stages.dicom_seg import segment_names

    plain = replace(two_channel_model, labels={"background": 0, "liver": 1, "tumour": 2, "ignore": 3})
    assert segment_names(plain) == {1: "liver", 2: "tumour"}
    (tmp_path / "dataset.json").write_text(json.dumps({"regions_class_order": [1, 2, 3]}))
    regions = replace(two_channel_model, folder=tmp_path, labels={
        "background": 0, "whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3})
    assert segment_names(regions) == {1: "whole tumour", 2: "tumour core", 3: "enhancing"}
