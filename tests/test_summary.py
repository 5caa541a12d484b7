"""Summary rows from stage records: done, failed at a stage, and not yet run."""

import pandas as pd

from nnunet_workflow.layout import Layout
from nnunet_workflow.records import skipped_record, stage_record, write_json
from nnunet_workflow.summary import brief, write_summary


def test_rows_follow_the_records_of_the_current_attempt(tmp_path):
    layout = Layout(tmp_path)
    for stage in ("validate", "preprocess"):
        write_json(layout.record(stage, "ok", "a2"), stage_record(stage, "ok", "done", seconds=1.0, peak_rss_mb=100.0))
    write_json(layout.record("predict", "ok", "a2"), stage_record("predict", "ok", "done", seconds=2.0, batch="b1"))
    write_json(layout.record("export", "ok", "a2"), stage_record("export", "ok", "done", output=str(tmp_path / "ok.nii.gz")))
    write_json(layout.record("validate", "ok", "a1"), stage_record("validate", "ok", "failed", kind="timeout"))
    bad = stage_record("validate", "bad", "failed", kind="invalid_input", message="model expects 2 channels")
    write_json(layout.record("validate", "bad", "a1"), bad)
    write_json(layout.record("preprocess", "bad", "a1"), skipped_record("preprocess", "bad", bad))
    table = write_summary({"ok": "a2", "bad": "a1", "later": "a1"}, layout)

    on_disk = pd.read_csv(layout.summary(), sep="\t", keep_default_na=False)
    assert list(on_disk["case"]) == ["bad", "later", "ok"]
    rows = {row["case"]: row for row in on_disk.to_dict("records")}
    ok = rows["ok"]
    assert (ok["status"], ok["stage"], ok["output"], ok["attempt"], ok["batch"]) == (
        "done", "export", str(tmp_path / "ok.nii.gz"), "a2", "b1")
    assert float(ok["predict_seconds"]) == 2.0 and float(ok["validate_peak_mb"]) == 100.0
    assert (rows["bad"]["status"], rows["bad"]["stage"], rows["bad"]["kind"]) == ("failed", "validate", "invalid_input")
    assert rows["bad"]["log"] == str(layout.log("validate", "bad", "a1"))
    assert (rows["later"]["status"], rows["later"]["stage"]) == ("pending", "")
    text = brief(table, layout.summary())
    assert text.splitlines()[0] == "3 cases: 1 done, 1 failed, 1 pending"
    assert "bad: validate invalid_input: model expects 2 channels" in text
