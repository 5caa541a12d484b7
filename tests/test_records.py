"""Atomic writes, stage records and batch manifests."""

import json

import pytest

from nnunet_workflow.store.atomic_files import atomic_path, remove_partial_files
from nnunet_workflow.store.manifest import BatchManifest
from nnunet_workflow.store.records import Estimates, StageRecord


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


def test_records_round_trip_flat_on_disk_and_skip_names_the_upstream_stage(tmp_path):
    failed = StageRecord("validate", "c1", "failed", kind="invalid_input", message="bad", seconds=0.12345,
                         attempt="a2", details={"files": ["c1_0000.nii.gz"]})
    failed.save(tmp_path / "r.json")
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk["seconds"] == 0.123 and on_disk["files"] == ["c1_0000.nii.gz"] and on_disk["attempt"] == "a2"
    assert StageRecord.load(tmp_path / "r.json") == failed
    skipped = failed.skipped("preprocess")
    assert (skipped.stage, skipped.status, skipped.kind, skipped.message) == (
        "preprocess", "skipped", "invalid_input", "not run: validate failed")
    assert skipped.details == {} and not skipped.done


def test_a_record_cut_short_or_missing_reads_as_none(tmp_path):
    (tmp_path / "cut.json").write_text('{"stage": "validate", "ca')
    assert StageRecord.load_if_present(tmp_path / "cut.json") is None
    assert StageRecord.load_if_present(tmp_path / "missing.json") is None


def test_a_manifest_names_its_cases_records_and_copies_none(tmp_path):
    records = {case: StageRecord("export", case, "done", details={"output": f"{case}.nii.gz"}) for case in ("a", "b")}
    for case, record in records.items():
        record.save(tmp_path / f"{case}.json")
    manifest = BatchManifest("export", "batch_1", {c: str(tmp_path / f"{c}.json") for c in records}, 1, 42)
    manifest.save(tmp_path / "m.json")
    assert "output" not in (tmp_path / "m.json").read_text()
    assert BatchManifest.load(tmp_path / "m.json").records() == records


def test_leftovers_of_killed_writers_are_removed_and_nothing_else(tmp_path):
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


def test_validate_estimates_round_trip_by_stage_and_an_older_records_read_as_none(tmp_path):
    """Estimates are typed fields keyed by stage name; a record of a version that named them `{stage}_mb` has
    none (its stages then reserve their defaults or estimate from the geometry)."""
    estimates = Estimates(voxels=8, memory_mb={"predict": 900, "m1_prev_predict": 700}, timeout_s={"predict": 600},
                          gpu_mb={"predict": {"logits_on_device": 2000, "logits_on_host": 1500}},
                          voxels_resampled={"predict": 4}, separate_z=False)
    StageRecord("validate", "c1", "done", details={"estimates": estimates.to_json()}).save(tmp_path / "v.json")
    assert StageRecord.load(tmp_path / "v.json").estimates == estimates
    copies = estimates.renamed(lambda stage: "m0_" + stage)
    assert copies.memory_mb == {"m0_predict": 900, "m0_m1_prev_predict": 700} and copies.separate_z is None
    older = StageRecord("validate", "c1", "done", details={"estimates": {"voxels": 8, "predict_mb": 900}})
    assert older.estimates == Estimates(voxels=8)
    assert StageRecord("validate", "c1", "failed").estimates == Estimates()
