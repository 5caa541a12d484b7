"""Case discovery from folders in nnU-Net naming and from sample sheets."""

import pytest

from nnunet_workflow.inputs.cases import InputError, discover_cases

CHANNELS = ("T1", "T2")


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_groups_channels_by_case(tmp_path):
    for name in ["a_0000.nii.gz", "a_0001.nii.gz", "b.v2_0000.nii.gz", "notes.txt", ".hidden_0000.nii.gz"]:
        touch(tmp_path / name)
    cases = discover_cases(tmp_path, CHANNELS)
    assert list(cases) == ["a", "b.v2"]
    assert cases["a"].files() == [str(tmp_path / "a_0000.nii.gz"), str(tmp_path / "a_0001.nii.gz")]
    assert list(cases["b.v2"].channels) == [0]


def test_sample_sheet_by_channel_name_and_index(tmp_path):
    touch(tmp_path / "img" / "one_t1.nii.gz")
    touch(tmp_path / "img" / "one_t2.nii.gz")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case\tT1\t0001\nsubject 1\timg/one_t1.nii.gz\timg/one_t2.nii.gz\nsubject 2\timg/x.nii.gz\t\n")
    cases = discover_cases(sheet, CHANNELS)
    assert cases["subject 1"].files() == [str(tmp_path / "img/one_t1.nii.gz"), str(tmp_path / "img/one_t2.nii.gz")]
    assert list(cases["subject 2"].channels) == [0]


def test_sample_sheet_unknown_column_is_named(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case\tFLAIR\nx\ty.nii.gz\n")
    with pytest.raises(InputError, match="column 'FLAIR'"):
        discover_cases(sheet, CHANNELS)


def test_sample_sheet_duplicate_case_is_named(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case\tT1\nx\ta.nii.gz\nx\tb.nii.gz\n")
    with pytest.raises(InputError, match="line 3: case 'x' appears twice"):
        discover_cases(sheet, CHANNELS)


def test_empty_or_missing_input_is_an_error(tmp_path):
    with pytest.raises(InputError, match="holds no cases"):
        discover_cases(tmp_path, CHANNELS)
    with pytest.raises(InputError, match="neither a folder nor a sample sheet"):
        discover_cases(tmp_path / "nope", CHANNELS)
