"""Summary rows from stage records: done, failed at a stage, and not yet run."""

import pandas as pd

from nnunet_workflow.layout import Layout
from nnunet_workflow.records import skipped_record, stage_record, write_json
from nnunet_workflow.summary import brief, write_summary


def test_rows_follow_the_records(tmp_path):
    layout = Layout(tmp_path)
    done = {s: stage_record(s, "ok", "done", seconds=1.0, peak_rss_mb=100.0) for s in ("validate", "preprocess")}
    for stage, record in done.items():
        write_json(layout.record(stage, "ok"), record)
    bad = stage_record("validate", "bad", "failed", kind="invalid_input", message="model expects 2 channels")
    write_json(layout.record("validate", "bad"), bad)
    write_json(layout.record("preprocess", "bad"), skipped_record("preprocess", "bad", bad))
    write_json(layout.batch_record("batch_0000"), {"cases": {
        "ok": stage_record("predict", "ok", "done", seconds=2.0),
        "bad": skipped_record("predict", "bad", bad),
    }})
    write_json(layout.record("export", "ok"), stage_record("export", "ok", "done", output=str(tmp_path / "ok.nii.gz")))
    table = write_summary({"batch_0000": ["ok", "bad"], "batch_0001": ["later"]}, layout)

    on_disk = pd.read_csv(layout.summary(), sep="\t", keep_default_na=False)
    assert list(on_disk["case"]) == ["bad", "later", "ok"]
    rows = {row["case"]: row for row in on_disk.to_dict("records")}
    assert (rows["ok"]["status"], rows["ok"]["stage"], rows["ok"]["output"]) == ("done", "export", str(tmp_path / "ok.nii.gz"))
    assert float(rows["ok"]["predict_seconds"]) == 2.0 and float(rows["ok"]["validate_peak_mb"]) == 100.0
    assert (rows["bad"]["status"], rows["bad"]["stage"], rows["bad"]["kind"]) == ("failed", "validate", "invalid_input")
    assert rows["bad"]["log"] == str(layout.log("validate", "bad"))
    assert (rows["later"]["status"], rows["later"]["stage"]) == ("pending", "")
    text = brief(table, layout.summary())
    assert text.splitlines()[0] == "3 cases: 1 done, 1 failed, 1 pending"
    assert "bad: validate invalid_input: model expects 2 channels" in text
