"""Stage validate: each header-level check, with the message it gives, and the record of a good case."""

import dataclasses
import gzip

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import write_image
from stages import run_one

from nnunet_workflow.execution.job import CaseJob, RunOptions
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.stages import validate as validate_module
from nnunet_workflow.stages.validate import VALIDATE
from nnunet_workflow.store.layout import Layout


def validate(case, model, max_job_mb=None):
    """The validate record of one case (as a batch of one), as its JSON."""
    job = CaseJob(case, "a1", model, Layout(model.folder.parent), RunOptions(max_job_mb=max_job_mb))
    return run_one(VALIDATE, job).to_json()


def case_of(tmp_path, name, files):
    return Case(name, {index: str(path) for index, path in files.items()})


def two_channels(tmp_path, name="c1", **second):
    first = write_image(tmp_path / f"{name}_0000.nii.gz")
    other = write_image(tmp_path / f"{name}_0001.nii.gz", **second)
    return case_of(tmp_path, name, {0: first, 1: other})


def test_good_case_gets_geometry_and_estimates(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path), two_channel_model)
    assert record["status"] == "done", record
    assert record["geometry"]["size"] == [20, 18, 16]
    estimates = record["estimates"]
    assert estimates["voxels"] == 20 * 18 * 16
    memory_mb = estimates["memory_mb"]
    assert memory_mb["preprocess"] > 0 and memory_mb["predict"] > 0 and memory_mb["export"] > 0


def test_missing_channel_names_the_model_channels_and_the_file(tmp_path, two_channel_model):
    case = case_of(tmp_path, "c1", {0: write_image(tmp_path / "c1_0000.nii.gz")})
    record = validate(case, two_channel_model)
    assert record["status"] == "failed" and record["kind"] == "invalid_input"
    assert record["message"] == (
        "model expects 2 channels (T1, T2); found 1 file: c1_0000.nii.gz (missing channel 0001)"
    )


def test_extra_channel_is_refused(tmp_path, two_channel_model):
    case = two_channels(tmp_path)
    case.channels[2] = write_image(tmp_path / "c1_0002.nii.gz")
    record = validate(case, two_channel_model)
    assert "found 3 files" in record["message"] and "unexpected channel 0002" in record["message"]


def test_wrong_file_ending(tmp_path, two_channel_model):
    case = case_of(tmp_path, "c1", {0: write_image(tmp_path / "c1_0000.nrrd"),
                                    1: write_image(tmp_path / "c1_0001.nii.gz")})
    record = validate(case, two_channel_model)
    assert record["message"].endswith("c1_0000.nrrd: file ending differs from the model's '.nii.gz'")


@pytest.mark.parametrize("content, fact", [(b"", "file is empty (0 bytes)"), (b"not an image", "not a readable image")])
def test_unreadable_files(tmp_path, two_channel_model, content, fact):
    case = two_channels(tmp_path)
    (tmp_path / "c1_0001.nii.gz").write_bytes(content)
    record = validate(case, two_channel_model)
    assert record["status"] == "failed" and fact in record["message"] and "c1_0001.nii.gz" in record["message"]


def test_2d_image_for_a_3d_model(tmp_path, two_channel_model):
    case = case_of(tmp_path, "c1", {i: write_image(tmp_path / f"c1_000{i}.nii.gz", size=(20, 18)) for i in (0, 1)})
    record = validate(case, two_channel_model)
    assert "is a 2D image" in record["message"] and "3D" in record["message"]


def test_shape_mismatch_between_channels(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path, size=(20, 18, 15)), two_channel_model)
    assert "differ in size: [20, 18, 15] vs [20, 18, 16]" in record["message"]


def test_spacing_mismatch_between_channels(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path, spacing=(1.0, 1.0, 1.5)), two_channel_model)
    assert "differ in spacing" in record["message"]


def test_origin_mismatch_between_channels(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path, origin=(0.0, 0.0, 2.0)), two_channel_model)
    assert "differ in origin" in record["message"]


def test_one_channel_model_given_a_second_channel(tmp_path, two_channel_model):
    model = dataclasses.replace(two_channel_model, channel_names=("CT",))
    record = validate(two_channels(tmp_path), model)
    assert record["message"] == (
        "model expects 1 channel (CT); found 2 files: c1_0000.nii.gz, c1_0001.nii.gz (unexpected channel 0001)"
    )


def test_gap_in_channel_indices(tmp_path, two_channel_model):
    case = case_of(tmp_path, "c1", {0: write_image(tmp_path / "c1_0000.nii.gz"),
                                    2: write_image(tmp_path / "c1_0002.nii.gz")})
    record = validate(case, two_channel_model)
    assert "(missing channel 0001; unexpected channel 0002)" in record["message"]


def test_4d_image_is_refused(tmp_path, two_channel_model):
    path = tmp_path / "c1_0001.nii.gz"
    sitk.WriteImage(sitk.Image([6, 5, 4, 3], sitk.sitkInt16), str(path))
    case = case_of(tmp_path, "c1", {0: write_image(tmp_path / "c1_0000.nii.gz"), 1: str(path)})
    record = validate(case, two_channel_model)
    assert "c1_0001.nii.gz: is a 4D image" in record["message"]


def test_file_cut_short_is_refused(tmp_path, two_channel_model):
    case = two_channels(tmp_path)
    path = tmp_path / "c1_0001.nii.gz"
    path.write_bytes(path.read_bytes()[:-40])
    record = validate(case, two_channel_model)
    assert record["message"].startswith(f"{path}: truncated or corrupt compressed data")


def test_a_file_corrupt_within_whose_gzip_trailer_is_intact_is_refused_when_its_voxels_are_read(tmp_path,
                                                                                                  two_channel_model):
    case = two_channels(tmp_path)
    path = tmp_path / "c1_0001.nii.gz"
    content = bytearray(path.read_bytes())
    assert validate_module.gzip_trailer_says_complete(str(path), 11_520)  # the intact file: no second decompression
    content[-30] ^= 0x10  # in the voxels' compressed data: the trailer (size, CRC) still says complete
    path.write_bytes(bytes(content))
    assert validate_module.gzip_trailer_says_complete(str(path), 11_520)
    record = validate(case, two_channel_model)
    assert record["status"] == "failed" and record["kind"] == "invalid_input"
    assert record["message"].startswith((f"{path}: voxel data cannot be read", f"{path}: not a readable image"))


def test_voxel_data_shorter_than_the_header_promises_is_refused(tmp_path, two_channel_model):
    case = two_channels(tmp_path)
    path = tmp_path / "c1_0001.nii.gz"
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content[: len(content) // 2]))
    record = validate(case, two_channel_model)
    assert record["kind"] == "invalid_input"
    assert record["message"] == f"{path}: holds 5,936 bytes in all but its header promises 11,520 bytes of voxels"


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_voxels_are_refused(tmp_path, two_channel_model, value):
    """In NRRD (SimpleITK's NIfTI reader already turns NaN and Inf into 0)."""
    model = dataclasses.replace(two_channel_model, file_ending=".nrrd")
    first = write_image(tmp_path / "c1_0000.nrrd")
    array = np.zeros((16, 18, 20), dtype=np.float32)
    array[3, 4, 5] = value
    second = str(tmp_path / "c1_0001.nrrd")
    sitk.WriteImage(sitk.GetImageFromArray(array), second)
    record = validate(case_of(tmp_path, "c1", {0: first, 1: second}), model)
    assert record["message"] == f"{second}: 1 voxels are NaN or infinite"


def test_case_too_large_for_the_largest_job_is_refused_with_its_need(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path), two_channel_model, max_job_mb=100)
    assert record["kind"] == "out_of_memory"
    assert record["message"].startswith("needs an estimated ")
    assert "more than the largest job allowed (0.1 GB" in record["message"]


def test_gpu_estimates_are_not_held_against_the_largest_job(tmp_path, two_channel_model):
    """max_job_mem_mb bounds host memory; predict's GPU estimates (a cascade's and a member's copies too) are
    recorded but refuse nothing."""
    from conftest import DEMO_ARCHITECTURE, DEMO_PATCH

    from nnunet_workflow.estimates.case_estimates import check_memory
    from nnunet_workflow.store.failures import CaseError
    from nnunet_workflow.store.records import Estimates

    gpu = {"predict": {"logits_on_device": 50_000}, "prev_predict": {"logits_on_host": 40_000},
           "m1_predict": {"logits_on_device": 50_000}}
    check_memory(Estimates(voxels=1, memory_mb={"predict": 900}, gpu_mb=gpu), 1_000)
    with pytest.raises(CaseError, match="in m1_predict"):
        check_memory(Estimates(voxels=1, memory_mb={"predict": 900, "m1_predict": 2_000}, gpu_mb=gpu), 1_000)
    counted = dataclasses.replace(two_channel_model, architecture=DEMO_ARCHITECTURE, patch_size=DEMO_PATCH)
    record = validate(two_channels(tmp_path), counted, max_job_mb=1_000)  # predict: 831 MB, on the GPU 1038
    assert record["status"] == "done", record
    gpu_mb, memory_mb = record["estimates"]["gpu_mb"]["predict"], record["estimates"]["memory_mb"]
    assert gpu_mb["logits_on_device"] > 1_000 > memory_mb["predict"]
    assert gpu_mb["logits_on_host"] < gpu_mb["logits_on_device"]


def test_constant_image_and_far_spacing_are_warnings_not_failures(tmp_path, two_channel_model):
    first = tmp_path / "c1_0000.nii.gz"
    image = sitk.Image([20, 18, 16], sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 4.0))
    sitk.WriteImage(image, str(first))
    case = case_of(tmp_path, "c1", {0: str(first),
                                    1: write_image(tmp_path / "c1_0001.nii.gz", spacing=(1.0, 1.0, 4.0))})
    record = validate(case, two_channel_model)
    assert record["status"] == "done"
    assert record["warnings"] == [
        "spacing [4.0, 1.0, 1.0] (nnU-Net axis order) is far from the model's [1.0, 1.0, 1.0] "
        "(nnU-Net resamples it; check that this model suits these images)",
        "c1_0000.nii.gz: every voxel has the value 0",
    ]


def test_direction_mismatch_between_channels(tmp_path, two_channel_model):
    swapped = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    record = validate(two_channels(tmp_path, direction=swapped), two_channel_model)
    assert "differ in direction" in record["message"]


def test_unicode_and_dotted_case_ids_validate(tmp_path, two_channel_model):
    record = validate(two_channels(tmp_path, name="sujet é.2 v1"), two_channel_model)
    assert record["status"] == "done" and record["case"] == "sujet é.2 v1"


def write_nifti_with_non_finite(path, count=3):
    """A float32 NIfTI with `count` NaN/Inf voxels (written by nibabel: SimpleITK would read them as 0)."""
    import nibabel

    data = np.arange(20 * 18 * 16, dtype=np.float32).reshape(20, 18, 16) % 7
    data.flat[:count] = [np.nan, np.inf, -np.inf][:count]
    nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), str(path))
    return str(path)


def test_non_finite_voxels_a_simpleitk_reader_hides_are_counted_and_warned_about(tmp_path, two_channel_model):
    first = write_nifti_with_non_finite(tmp_path / "c1_0000.nii.gz")
    second = write_nifti_with_non_finite(tmp_path / "c1_0001.nii.gz", count=1)
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(first))).any()  # what nnU-Net's reader sees
    record = validate(case_of(tmp_path, "c1", {0: first, 1: second}), two_channel_model)
    assert record["status"] == "done", record
    assert record["warnings"] == [
        "c1_0000.nii.gz: 3 voxels are NaN or infinite in the file; the model's reader (SimpleITKIO) reads them as 0, "
        "and nnU-Net predicts on those zeros",
        "c1_0001.nii.gz: 1 voxels are NaN or infinite in the file; the model's reader (SimpleITKIO) reads them as 0, "
        "and nnU-Net predicts on those zeros"]


def test_non_finite_voxels_a_nibabel_reader_keeps_are_refused(tmp_path, two_channel_model):
    model = dataclasses.replace(two_channel_model, image_reader_writer="NibabelIO")
    first = write_nifti_with_non_finite(tmp_path / "c1_0000.nii.gz", count=2)
    second = write_nifti_with_non_finite(tmp_path / "c1_0001.nii.gz", count=0)
    record = validate(case_of(tmp_path, "c1", {0: first, 1: second}), model)
    assert (record["status"], record["kind"]) == ("failed", "invalid_input")
    assert record["message"] == f"{first}: 2 voxels are NaN or infinite"


def test_a_nibabel_model_is_validated_through_its_own_reader(tmp_path, two_channel_model):
    model = dataclasses.replace(two_channel_model, image_reader_writer="NibabelIO")
    first = write_nifti_with_non_finite(tmp_path / "c1_0000.nii.gz", count=0)
    second = write_nifti_with_non_finite(tmp_path / "c1_0001.nii.gz", count=0)
    record = validate(case_of(tmp_path, "c1", {0: first, 1: second}), model)
    assert record["status"] == "done", record
    assert record["geometry"]["shape_nnunet"] == [16, 18, 20] and record["geometry"]["channels"] == 2


def write_png(path, channels):
    from PIL import Image

    pixels = (np.arange(24 * 32 * channels).reshape(24, 32, channels) % 251).astype(np.uint8)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
    return str(path)


def test_an_rgb_png_gives_the_three_channels_of_a_natural_image_model(tmp_path, two_channel_model):
    model = dataclasses.replace(two_channel_model, image_reader_writer="NaturalImage2DIO", file_ending=".png",
                                channel_names=("R", "G", "B"), patch_size=(32, 32), target_spacing=(1.0, 1.0))
    record = validate(case_of(tmp_path, "c1", {0: write_png(tmp_path / "c1_0000.png", 3)}), model)
    assert record["status"] == "done", record
    assert record["geometry"]["channels"] == 3 and record["geometry"]["shape_nnunet"] == [1, 24, 32]
    grey = validate(case_of(tmp_path, "c2", {0: write_png(tmp_path / "c2_0000.png", 1)}), model)
    assert grey["message"] == ("model expects 3 channels (R, G, B); the model's reader NaturalImage2DIO finds 1 in "
                               "1 file: c2_0000.png")


def test_a_tiff_model_takes_spacing_from_the_sidecar_and_warns_without_one(tmp_path, two_channel_model):
    """Tiff3DIO reads spacing from CASE.json beside CASE_0000.tif (nnU-Net's z, y, x order) and assumes
    (1, 1, 1) without it: validate records the sidecar's spacing, and warns where there is none."""
    import tifffile

    model = dataclasses.replace(two_channel_model, image_reader_writer="Tiff3DIO", file_ending=".tif",
                                channel_names=("T1",))
    volume = (np.arange(12 * 14 * 16, dtype=np.uint16).reshape(12, 14, 16) % 50)
    tifffile.imwrite(tmp_path / "c1_0000.tif", volume)
    (tmp_path / "c1.json").write_text('{"spacing": [3.0, 0.5, 0.75]}')
    record = validate(case_of(tmp_path, "c1", {0: str(tmp_path / "c1_0000.tif")}), model)
    assert record["status"] == "done", record
    assert record["geometry"]["shape_nnunet"] == [12, 14, 16]
    assert record["geometry"]["spacing_nnunet"] == [3.0, 0.5, 0.75]
    assert not any("spacing file" in w for w in record["warnings"])
    tifffile.imwrite(tmp_path / "c2_0000.tif", volume)
    record = validate(case_of(tmp_path, "c2", {0: str(tmp_path / "c2_0000.tif")}), model)
    assert record["status"] == "done" and record["geometry"]["spacing_nnunet"] == [1.0, 1.0, 1.0]
    assert "c2_0000.tif: no spacing file c2.json beside it; the model's reader Tiff3DIO assumes spacing (1, 1, 1)" \
        in record["warnings"]


def test_a_dicom_series_channel_is_validated_from_its_volume_and_named_by_its_folder(tmp_path, two_channel_model):
    from nnunet_workflow.dev.dicom_data import write_series

    constant = sitk.Image([20, 18, 16], sitk.sitkInt16) + 7
    write_series(constant, tmp_path / "c1_0000")
    case = case_of(tmp_path, "c1", {0: tmp_path / "c1_0000", 1: write_image(tmp_path / "c1_0001.nii.gz")})
    record = validate(case, two_channel_model)
    assert record["status"] == "done", record
    assert record["geometry"]["size"] == [20, 18, 16]
    assert record["warnings"] == ["c1_0000: every voxel has the value 7"]
    assert Layout(two_channel_model.folder.parent).series_volume("c1", "a1", 0).is_file()  # for the later stages
