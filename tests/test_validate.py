"""Stage validate: each header-level check, with the message it gives, and the record of a good case."""

import pytest

from nnunet_workflow.cases import Case
from nnunet_workflow.job import CaseJob
from nnunet_workflow.layout import Layout
from nnunet_workflow.validate import validate_case

from conftest import write_image


def validate(case, model):
    return validate_case(case, CaseJob(case.id, "a1", model, Layout(model.folder.parent)))


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
    assert estimates["preprocess_mb"] > 0 and estimates["predict_mb"] > 0 and estimates["export_mb"] > 0


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
