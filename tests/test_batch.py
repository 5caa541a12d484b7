"""Batch jobs: each case's record is on disk as soon as the case is through, and a batch run again
after being killed keeps the cases it had finished (same attempt, same provenance, files present)."""

import json

from nnunet_workflow.batch import run_batch
from nnunet_workflow.job import CaseJob
from nnunet_workflow.layout import Layout


def write_outputs(_state, data_path, properties_path, calls_path):
    with open(calls_path, "a") as calls:
        calls.write(data_path + "\n")
    for path in (data_path, properties_path):
        with open(path, "w") as handle:
            handle.write("x")
    return {}


def preprocess(layout, cases, provenance="p1", log_path=None, after=None):
    jobs = {case: CaseJob(case, "a1", None, layout, provenance) for case in cases}
    for case in cases:
        layout.attempt_dir(case, "a1").mkdir(parents=True, exist_ok=True)
    calls = layout.results / "calls.txt"

    def prepare(case, job):
        return (str(layout.preprocessed(case, "a1")), str(layout.properties(case, "a1")), str(calls)), 30

    return run_batch("preprocess", jobs, prepare, write_outputs, log_path=log_path, after=after)


def calls_of(layout):
    path = layout.results / "calls.txt"
    return [line.split("/work/")[1].split("/")[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_each_record_is_written_before_the_next_case_runs(tmp_path):
    layout = Layout(tmp_path)
    seen = []
    preprocess(layout, ["c1", "c2"], after=lambda case, job, outcome: seen.append(
        sorted(p.parent.parent.name for p in tmp_path.glob("work/*/a1/preprocess.json"))))
    assert seen == [["c1"], ["c1", "c2"]]


def test_a_batch_run_again_keeps_what_it_had_finished(tmp_path):
    layout = Layout(tmp_path)
    preprocess(layout, ["c1"])  # as if the batch job were killed after its first case
    first = (layout.record("preprocess", "c1", "a1")).read_text()
    log = tmp_path / "batch.log"
    batch = preprocess(layout, ["c1", "c2"], log_path=str(log))
    assert calls_of(layout) == ["c1", "c2"]
    assert layout.record("preprocess", "c1", "a1").read_text() == first
    assert {case: r["status"] for case, r in batch["cases"].items()} == {"c1": "done", "c2": "done"}
    assert "preprocess c1: finished earlier in attempt a1; kept" in log.read_text()


def test_a_finished_case_is_run_again_when_its_files_are_gone_or_its_provenance_changed(tmp_path):
    layout = Layout(tmp_path)
    preprocess(layout, ["c1", "c2"])
    layout.properties("c1", "a1").unlink()
    preprocess(layout, ["c1", "c2"])
    assert calls_of(layout) == ["c1", "c2", "c1"]
    preprocess(layout, ["c1", "c2"], provenance="p2")
    assert calls_of(layout) == ["c1", "c2", "c1", "c1", "c2"]


def test_a_failed_case_is_not_kept(tmp_path):
    layout = Layout(tmp_path)
    jobs = {"c1": CaseJob("c1", "a1", None, layout, "p1")}
    layout.attempt_dir("c1", "a1").mkdir(parents=True)
    failed = run_batch("preprocess", jobs, lambda case, job: (("missing-folder/x", "y", str(tmp_path / "calls")), 30),
                       write_outputs)
    assert failed["cases"]["c1"]["status"] == "failed"
    preprocess(layout, ["c1"])
    assert calls_of(layout) == ["c1"]


def test_fields_given_per_case_are_in_the_record_on_disk(tmp_path):
    layout = Layout(tmp_path)
    jobs = {case: CaseJob(case, "a1", None, layout, "p1") for case in ("c1", "c2")}
    for case in jobs:
        layout.attempt_dir(case, "a1").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    batch = run_batch("preprocess", jobs, lambda case, job: ((str(layout.preprocessed(case, "a1")),
                                                               str(layout.properties(case, "a1")), str(calls)), 30),
                      write_outputs, case_fields=lambda case: {"files": [f"{case}_0000.nii.gz"]}, batch="b1")
    for case in jobs:
        saved = json.loads(layout.record("preprocess", case, "a1").read_text())
        assert saved["files"] == [f"{case}_0000.nii.gz"] and saved["batch"] == "b1"
        assert saved == batch["cases"][case]
