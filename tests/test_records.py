"""Atomic writes and stage records."""

import pytest

from nnunet_workflow.records import atomic_path, read_json, skipped_record, stage_record, write_json


def test_atomic_path_leaves_old_file_when_the_writer_fails(tmp_path):
    final = tmp_path / "seg.nii.gz"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final, suffix=".nii.gz") as temp:
            assert temp.name.endswith(".nii.gz") and temp.parent == tmp_path
            temp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert final.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz"]


def test_records_round_trip_and_skip_names_the_upstream_stage(tmp_path):
    failed = stage_record("validate", "c1", "failed", kind="invalid_input", message="bad", seconds=0.12345)
    write_json(tmp_path / "r.json", failed)
    assert read_json(tmp_path / "r.json") == failed | {"seconds": 0.123}
    skipped = skipped_record("preprocess", "c1", failed)
    assert skipped["status"] == "skipped" and skipped["message"] == "not run: validate failed"


def test_leftovers_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    from nnunet_workflow.records import remove_partial_files

    (tmp_path / "work" / "c1" / "a1").mkdir(parents=True)
    (tmp_path / "work" / "c1" / "a1" / ".validate.json.x1.part").write_text("{")  # atomic_path's temp file
    export_temp = tmp_path / ".c1.nii.gz.part.k2j3"  # export's temporary folder, with nnU-Net's file in it
    export_temp.mkdir()
    (export_temp / "case.nii.gz").write_bytes(b"half")
    keep = [tmp_path / "c2.nii.gz", tmp_path / "work" / "c1" / "a1" / "validate.json", tmp_path / ".hidden"]
    for path in keep:
        path.write_text("done")
    assert remove_partial_files(tmp_path) == 2
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(keep)
