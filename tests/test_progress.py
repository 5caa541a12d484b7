"""Progress of a run: cases through its last stage (done, or failed or skipped), those left, the time left."""

import os

from nnunet_workflow.planning.plan import RunPlan
from nnunet_workflow.results.progress import measure, report_progress
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord


def test_progress_counts_this_runs_cases_and_estimates_the_time_left(tmp_path, capsys):
    layout = Layout(tmp_path)
    attempts = {"a": "a1", "b": "a2", "c": "a1", "d": "a1", "old": "a1"}
    plan = RunPlan(attempts=attempts, pending=["a", "b", "c", "d"], batches={}, memory_floor_mb={})
    plan.save(layout.plan())
    started = layout.plan().stat().st_mtime
    StageRecord("statistics", "a", "done").save(layout.record("statistics", "a", "a1"))
    StageRecord("statistics", "b", "skipped", message="not run: validate failed").save(
        layout.record("statistics", "b", "a2"))
    StageRecord("statistics", "c", "done").save(layout.record("statistics", "c", "a2"))  # an attempt not planned
    progress = measure(layout, plan, "statistics", now=started + 600)
    assert (progress.done, progress.failed, progress.left, progress.finished_before) == (1, 1, 2, 1)
    assert progress.remaining_s == 600
    assert progress.line() == ("progress: 2 of 4 cases through: 1 done, 1 failed, 2 left (1 finished by earlier "
                               "runs); 10 min so far, about 10 min left")
    os.utime(layout.plan(), (started - 30, started - 30))
    written = report_progress(layout, "statistics")
    assert layout.progress().read_text() == written.line() + "\n"
    assert written.line() in capsys.readouterr().err
