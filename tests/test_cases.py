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


def test_case_ids_that_cannot_name_files_are_refused_each_with_its_sheet_line(tmp_path):
    sheet = tmp_path / "samples.tsv"
    long_id = "x" * 300
    sheet.write_text(f'case\tT1\nok\ta.nii.gz\n{long_id}\ta.nii.gz\n"two\nlines"\tb.nii.gz\n..\tc.nii.gz\n'
                     "-rf\td.nii.gz\nsub/dir\te.nii.gz\n\tf.nii.gz\nfine one\tg.nii.gz\nsujet-é3\th.nii.gz\n")
    with pytest.raises(InputError) as refused:
        discover_cases(sheet, CHANNELS)
    message = str(refused.value)
    assert message.startswith(f"input {sheet} has 6 case id(s) that cannot name files:")
    assert f"line 3: case id '{'x' * 40}'...: it has 300 bytes, more than the 222 its file names can take" in message
    assert "line 5: case id 'two\\nlines': it holds the character(s) '\\n'" in message  # the row's last line
    assert "line 6: case id '..': it starts with '.'; a case id starts with a letter, a digit or an" in message
    assert "line 7: case id '-rf': it starts with '-'" in message
    assert "line 8: case id 'sub/dir': it holds the character(s) '/'" in message
    assert "line 9: case id '': it is empty" in message
    assert "'ok'" not in message and "'fine one'" not in message and "sujet" not in message


def test_case_ids_of_a_folder_are_refused_naming_the_file(tmp_path):
    touch(tmp_path / "good_0000.nii.gz")
    too_long = touch(tmp_path / ("y" * 230 + "_0000.nii.gz"))
    odd = touch(tmp_path / "tab\there_0000.nii.gz")
    with pytest.raises(InputError) as refused:
        discover_cases(tmp_path, CHANNELS)
    message = str(refused.value)
    assert "has 2 case id(s)" in message
    assert f"{too_long}: case id '{'y' * 40}'...: it has 230 bytes, more than the 222" in message
    assert f"{odd}: case id 'tab\\there': it holds the character(s) '\\t'" in message
    # a longer file ending leaves room for a shorter id
    message = str(pytest.raises(InputError, discover_cases, tmp_path, CHANNELS, ".nrrd.sidecar.json").value)
    assert "more than the 204" in message


def test_a_linked_channel_is_named_as_given(tmp_path):
    from nnunet_workflow.inputs.image_reading import read_header
    from nnunet_workflow.store.failures import CaseError

    link = tmp_path / "in" / "c_0000.nii.gz"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "elsewhere" / "c.nii.gz")
    cases = discover_cases(link.parent, CHANNELS)
    assert cases["c"].files() == [str(link)]  # not its target
    with pytest.raises(CaseError) as refused:
        read_header(cases["c"].files()[0])
    assert str(refused.value) == f"{link}: a link to {tmp_path / 'elsewhere' / 'c.nii.gz'}, which does not exist"
