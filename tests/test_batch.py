"""Batch jobs: any Stage runs through run_batch; each case's record is on disk as soon as the case is
through; a batch run again after being killed keeps the cases it had finished (same attempt, same
provenance, files present); a case whose needed stage did not finish is skipped."""

from dataclasses import replace

from nnunet_workflow.execution.batch import run_batch
from nnunet_workflow.execution.job import CaseJob
from nnunet_workflow.execution.stage import Stage
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord


def write_outputs(state, job):
    with open(job.layout.results / "calls.txt", "a") as calls:
        calls.write(job.id + "\n")
    if job.id == "broken":
        raise ValueError("cannot write")
    for path in outputs(job):
        path.write_text("x")
    return {"state": state}


def outputs(job):
    return [job.layout.preprocessed(job.id, job.attempt), job.layout.properties(job.id, job.attempt)]


STAGE = Stage("preprocess", handle=write_outputs, setup=lambda model, options: "ready", outputs=outputs,
              fields=lambda job: {"files": [f"{job.id}_0000.nii.gz"]})


def jobs_of(layout, cases, provenance="p1", **upstream):
    jobs = {case: CaseJob(Case(case), "a1", None, layout, provenance=provenance, batch="b1", upstream=upstream)
            for case in cases}
    for case in cases:
        layout.attempt_dir(case, "a1").mkdir(parents=True, exist_ok=True)
    return jobs


def calls_of(layout):
    path = layout.results / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_any_stage_runs_and_its_records_are_written_as_each_case_finishes(tmp_path):
    layout = Layout(tmp_path)
    seen = []
    stage = replace(STAGE, after=lambda job, record: seen.append(
        sorted(p.parent.parent.name for p in tmp_path.glob("work/*/a1/preprocess.json"))))
    manifest = run_batch(stage, jobs_of(layout, ["c1", "c2"]))
    assert seen == [["c1"], ["c1", "c2"]]
    assert manifest.cases == {c: str(layout.record("preprocess", c, "a1")) for c in ("c1", "c2")}
    assert (manifest.stage, manifest.batch, manifest.worker_starts) == ("preprocess", "b1", 1)
    assert manifest.model_loads is None
    for case, record in manifest.records().items():
        assert (record.status, record.batch, record.details["state"]) == ("done", "b1", "ready")
        assert record.details["files"] == [f"{case}_0000.nii.gz"]  # the stage's fields, saved with the record


def test_a_batch_run_again_keeps_what_it_had_finished(tmp_path):
    layout = Layout(tmp_path)
    run_batch(STAGE, jobs_of(layout, ["c1"]))  # as if the batch job were killed after its first case
    first = layout.record("preprocess", "c1", "a1").read_text()
    log = tmp_path / "batch.log"
    manifest = run_batch(STAGE, jobs_of(layout, ["c1", "c2"]), log_path=str(log))
    assert calls_of(layout) == ["c1", "c2"]
    assert layout.record("preprocess", "c1", "a1").read_text() == first
    assert {case: r.status for case, r in manifest.records().items()} == {"c1": "done", "c2": "done"}
    assert "preprocess c1: finished earlier in attempt a1; kept" in log.read_text()
    assert "preprocess c2: done" in log.read_text()


def test_a_finished_case_is_run_again_when_its_files_are_gone_or_its_provenance_changed(tmp_path):
    layout = Layout(tmp_path)
    run_batch(STAGE, jobs_of(layout, ["c1", "c2"]))
    layout.properties("c1", "a1").unlink()
    run_batch(STAGE, jobs_of(layout, ["c1", "c2"]))
    assert calls_of(layout) == ["c1", "c2", "c1"]
    run_batch(STAGE, jobs_of(layout, ["c1", "c2"], provenance="p2"))
    assert calls_of(layout) == ["c1", "c2", "c1", "c1", "c2"]


def test_a_failed_case_is_recorded_not_kept_and_its_batch_mates_go_on(tmp_path):
    layout = Layout(tmp_path)
    manifest = run_batch(STAGE, jobs_of(layout, ["broken", "c1"]))
    records = manifest.records()
    assert (records["broken"].status, records["broken"].kind) == ("failed", "error")
    assert records["broken"].message == "ValueError: cannot write"
    assert records["c1"].status == "done"
    run_batch(STAGE, jobs_of(layout, ["broken"]))
    assert calls_of(layout) == ["broken", "c1", "broken"]


def test_a_case_whose_needed_stage_did_not_finish_is_skipped_without_running(tmp_path):
    layout = Layout(tmp_path)
    needs = replace(STAGE, needs="validate")
    failed = StageRecord("validate", "c1", "failed", kind="invalid_input", message="bad")
    manifest = run_batch(needs, jobs_of(layout, ["c1"], validate=failed))
    skipped = manifest.records()["c1"]
    assert (skipped.status, skipped.kind, skipped.message) == ("skipped", "invalid_input", "not run: validate failed")
    assert (skipped.attempt, skipped.batch, skipped.provenance) == ("a1", "b1", "p1")
    missing = run_batch(needs, jobs_of(layout, ["c2"])).records()["c2"]
    assert (missing.status, missing.message) == ("skipped", "not run: validate failed")
    assert calls_of(layout) == [] and manifest.worker_starts == 0


def test_a_stage_that_loads_the_model_counts_its_loads(tmp_path):
    layout = Layout(tmp_path)
    manifest = run_batch(replace(STAGE, loads_model=True), jobs_of(layout, ["c1", "broken", "c2"]))
    assert manifest.model_loads == manifest.worker_starts == 1  # an error does not restart the worker


def test_a_cascade_members_finished_stages_are_carried_into_the_new_attempt(tmp_path):
    """A rerun after another member failed: member 1 (a cascade) finished in a1, so its previous stage's and
    its own records are carried into a2 without running, and its probabilities and properties moved there
    at its export's turn."""
    layout = Layout(tmp_path)
    stages = [replace(STAGE, name=name, member=1, previous=name.startswith("m1_prev_"))
              for name in ("m1_prev_preprocess", "m1_prev_predict", "m1_prev_export", "m1_preprocess", "m1_export")]
    old_files = [layout.member_probabilities("c1", "a1", "m1"), layout.properties("c1", "a1", "m1")]
    old_files[0].parent.mkdir(parents=True)
    for path in old_files:
        path.write_text("finished")
    for stage in stages:
        StageRecord(stage.name, "c1", "done", attempt="a1", provenance="p1").save(layout.record(stage.name, "c1", "a1"))
    for stage in stages:
        folder = "m1/3d_lowres" if stage.previous else "m1"
        job = CaseJob(Case("c1"), "a2", None, layout, provenance="p1", batch="b2", member_dir=folder, carried_from="a1")
        record = run_batch(stage, {"c1": job}).records()["c1"]
        assert (record.status, record.attempt, record.details["carried_from"]) == ("done", "a2", "a1"), stage.name
    assert calls_of(layout) == []
    moved = (layout.member_probabilities("c1", "a2", "m1"), layout.properties("c1", "a2", "m1"))
    assert [p.read_text() for p in moved] == ["finished", "finished"]
    assert not any(p.exists() for p in old_files)


def test_a_segmented_case_keeps_its_stages_up_to_the_segmentation_and_runs_the_later_ones(tmp_path):
    layout = Layout(tmp_path)
    jobs = {case: replace(job, segmented=True) for case, job in jobs_of(layout, ["seg"]).items()}
    StageRecord("preprocess", "seg", "done", provenance="p1", details={"kept": True}).save(
        layout.record("preprocess", "seg", "a1"))
    # its files are gone (removed after export), but the case is segmented: kept
    manifest = run_batch(STAGE, jobs)
    assert StageRecord.load(manifest.cases["seg"]).details == {"kept": True}
    assert not (tmp_path / "calls.txt").exists() and manifest.worker_starts == 0
    after = replace(STAGE, name="statistics", after_segmentation=True)
    failed = StageRecord("statistics", "seg", "failed", kind="error", provenance="p1")
    failed.save(layout.record("statistics", "seg", "a1"))
    manifest = run_batch(after, jobs)
    assert StageRecord.load(manifest.cases["seg"]).done
    assert (tmp_path / "calls.txt").read_text() == "seg\n"


def test_one_cases_failed_bookkeeping_fails_none_of_its_batch_mates(tmp_path):
    layout = Layout(tmp_path)
    jobs = {case: replace(job, log_path=str(layout.log("preprocess", case, "a1")))
            for case, job in jobs_of(layout, ["c1", "c2", "c3"]).items()}
    log = tmp_path / "batch.log"
    manifest = run_batch(STAGE, jobs, log_path=str(log), faults={"c1": "log_path", "c2": "record_write"})
    assert calls_of(layout) == ["c2", "c3"]  # c1 never ran: its log could not be created
    records = manifest.records()
    assert records["c3"].done and all(p.exists() for p in outputs(jobs["c3"]))
    # c1's record says why; c2's could not be written, so the manifest says it
    assert (records["c1"].status, records["c1"].kind) == ("failed", "error")
    assert records["c1"].message.startswith("the workflow could not keep this case's files: OSError: [Errno 36]")
    assert layout.record("preprocess", "c1", "a1").exists()
    assert not layout.record("preprocess", "c2", "a1").exists()
    assert (records["c2"].status, records["c2"].kind) == ("failed", "error")
    assert "File name too long (injected fault)" in records["c2"].message
    assert manifest.unrecorded == {"c2": {"kind": "error", "message": records["c2"].message}}
    assert "preprocess c2: its record could not be written" in log.read_text()


def test_a_case_failing_for_want_of_space_is_named_so_and_its_intermediates_go(tmp_path):
    def fill_the_disk(state, job):
        if job.id == "full":
            for path in outputs(job):
                path.write_text("x")
            raise OSError("677376 requested and 405440 written")  # numpy's short write on a full disk
        return write_outputs(state, job)

    layout = Layout(tmp_path)
    manifest = run_batch(replace(STAGE, handle=fill_the_disk), jobs_of(layout, ["full", "fine"]))
    full, fine = manifest.records()["full"], manifest.records()["fine"]
    assert (full.status, full.kind) == ("failed", "no_space") and fine.done
    assert full.message.startswith(f"not enough space on the filesystem of {tmp_path} (")
    assert "MB free there now): OSError: 677376 requested and 405440 written" in full.message
    assert [p.name for p in layout.attempt_dir("full", "a1").rglob("*")] == ["preprocess.json"]
    assert all(p.exists() for p in outputs(jobs_of(layout, ["fine"])["fine"]))
