"""The run plan: attempts from the records on disk, pending cases only in batches, memory floors."""

from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.planning.plan import RunPlan, make_plan, plan_batches
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord


def make_cases(tmp_path, sizes):
    cases = {}
    for name, size in sizes.items():
        path = tmp_path / "in" / f"{name}_0000.nii.gz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * size)
        cases[name] = Case(name, {0: str(path)})
    return cases


def test_batches_are_largest_first_bounded_and_named_by_members(tmp_path):
    cases = make_cases(tmp_path, {"a": 10, "b": 30, "c": 20, "d": 30, "e": 5})
    attempts = dict.fromkeys(cases, "a1")
    batches = plan_batches(cases, attempts, batch_size=2)
    assert list(batches.values()) == [["b", "d"], ["c", "a"], ["e"]]
    assert plan_batches(dict(reversed(list(cases.items()))), attempts, batch_size=2) == batches
    assert plan_batches(cases, {**attempts, "e": "a2"}, batch_size=2).keys() != batches.keys()


def finish(layout, case, attempt, provenance="p1"):
    for stage in ("validate", "preprocess", "predict", "export"):
        StageRecord(stage, case, "done", provenance=provenance).save(layout.record(stage, case, attempt))
    (layout.results / f"{case}.nii.gz").write_bytes(b"segmentation")


def test_plan_from_records(tmp_path):
    cases = make_cases(tmp_path, {"new": 1, "done": 1, "oom": 1, "bad": 1, "cut": 1, "stale": 1, "lost": 1})
    layout = Layout(tmp_path / "results")
    layout.results.mkdir()
    finish(layout, "done", "a1")
    finish(layout, "stale", "a1", provenance="old-model")
    finish(layout, "lost", "a1")
    (layout.results / "lost.nii.gz").unlink()
    StageRecord("validate", "oom", "done", provenance="p1").save(layout.record("validate", "oom", "a1"))
    StageRecord("preprocess", "oom", "failed", kind="out_of_memory", peak_rss_mb=2000, reserved_mb=1800,
                provenance="p1").save(layout.record("preprocess", "oom", "a1"))
    StageRecord("validate", "bad", "failed", kind="invalid_input").save(layout.record("validate", "bad", "a1"))
    StageRecord("validate", "cut", "done", provenance="p1").save(layout.record("validate", "cut", "a3"))

    plan = make_plan(cases, layout, ".nii.gz", dict.fromkeys(cases, "p1"), batch_size=10)

    assert plan.attempts == {"new": "a1", "done": "a1", "oom": "a2", "bad": "a2", "cut": "a3", "stale": "a2",
                             "lost": "a2"}
    assert sorted(plan.pending) == ["bad", "cut", "lost", "new", "oom", "stale"]
    assert sorted(case for cases in plan.batches.values() for case in cases) == sorted(plan.pending)
    assert plan.memory_floor_mb == {"oom": {"preprocess": 3000}}
    # the summary reads the records of the finished case (it is in no batch)
    assert plan.finished_records(layout) == [layout.record(s, "done", "a1")
                                             for s in ("validate", "preprocess", "predict", "export")]
    plan.save(tmp_path / "plan.json")
    assert RunPlan.load(tmp_path / "plan.json") == plan


def test_attempts_are_numbered_not_sorted_as_text(tmp_path):
    layout = Layout(tmp_path)
    for name in ("a2", "a10", "a9", "alpha", "a1"):
        layout.case_dir("c").joinpath(name).mkdir(parents=True)
    assert layout.attempt_numbers("c") == [1, 2, 9, 10]
    StageRecord("validate", "c", "failed", kind="invalid_input").save(layout.record("validate", "c", "a10"))
    plan = make_plan(make_cases(tmp_path, {"c": 1}), layout, ".nii.gz", {"c": "p1"}, batch_size=10)
    assert plan.attempts == {"c": "a11"}


def test_a_segmented_case_without_its_statistics_runs_them_alone_in_its_attempt(tmp_path):
    cases = make_cases(tmp_path, {"whole": 1, "none": 1, "oom": 1, "before": 1})
    layout = Layout(tmp_path / "results")
    layout.results.mkdir()
    for case in ("whole", "none", "oom", "before"):
        finish(layout, case, "a1")
    StageRecord("statistics", "whole", "done", provenance="p1").save(layout.record("statistics", "whole", "a1"))
    StageRecord("statistics", "oom", "failed", kind="out_of_memory", peak_rss_mb=900, reserved_mb=1000,
                provenance="p1").save(layout.record("statistics", "oom", "a1"))

    plan = make_plan(cases, layout, ".nii.gz", dict.fromkeys(cases, "p1"), 10, None, "export", ("statistics",))

    assert plan.attempts == dict.fromkeys(cases, "a1")
    assert sorted(plan.pending) == sorted(plan.segmented) == ["before", "none", "oom"]
    assert plan.memory_floor_mb == {"oom": {"statistics": 1500}}
    # without statistics in the run, they are finished as before
    assert make_plan(cases, layout, ".nii.gz", dict.fromkeys(cases, "p1"), 10).pending == []
