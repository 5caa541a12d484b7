"""Summary rows from stage records: done, failed at a stage, and not yet run; read from manifests and
from the records of finished cases, as the summary rule declares them."""

import pandas as pd

from nnunet_workflow.results.summary import brief, collect_records, write_summary
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.manifest import BatchManifest
from nnunet_workflow.store.records import StageRecord


def save(layout, record):
    path = layout.record(record.stage, record.case, record.attempt)
    record.save(path)
    return str(path)


def test_rows_follow_the_records_of_the_current_attempt(tmp_path):
    layout = Layout(tmp_path)
    finished = [save(layout, StageRecord(stage, "ok", "done", seconds=1.0, peak_rss_mb=100.0, attempt="a2"))
                for stage in ("validate", "preprocess")]
    finished.append(save(layout, StageRecord("predict", "ok", "done", seconds=2.0, batch="b1", attempt="a2")))
    finished.append(save(layout, StageRecord("export", "ok", "done", attempt="a2",
                                             details={"output": str(tmp_path / "ok.nii.gz")})))
    save(layout, StageRecord("validate", "ok", "failed", kind="timeout", attempt="a1"))  # an older attempt: unread
    bad = StageRecord("validate", "bad", "failed", kind="invalid_input", message="model expects 2 channels",
                      attempt="a1", details={"warnings": ["every voxel has the value 0"]})
    manifests = []
    for record in (bad, bad.skipped("preprocess")):
        manifest = tmp_path / f"{record.stage}.manifest.json"
        BatchManifest(record.stage, "b2", {"bad": save(layout, record)}, 1, 1).save(manifest)
        manifests.append(manifest)
    records = collect_records(manifests, finished)
    table = write_summary({"ok": "a2", "bad": "a1", "later": "a1"}, records, layout)

    on_disk = pd.read_csv(layout.summary(), sep="\t", keep_default_na=False)
    assert list(on_disk["case"]) == ["bad", "later", "ok"]
    rows = {row["case"]: row for row in on_disk.to_dict("records")}
    ok = rows["ok"]
    assert (ok["status"], ok["stage"], ok["output"], ok["attempt"], ok["batch"]) == (
        "done", "export", str(tmp_path / "ok.nii.gz"), "a2", "b1")
    assert float(ok["predict_seconds"]) == 2.0 and float(ok["validate_peak_mb"]) == 100.0
    assert (rows["bad"]["status"], rows["bad"]["stage"], rows["bad"]["kind"]) == ("failed", "validate", "invalid_input")
    assert rows["bad"]["log"] == str(layout.log("validate", "bad", "a1"))
    assert rows["bad"]["warnings"] == "every voxel has the value 0"
    assert (rows["later"]["status"], rows["later"]["stage"]) == ("pending", "")
    text = brief(table, layout.summary())
    assert text.splitlines()[0] == "3 cases: 1 done, 1 failed, 1 pending"
    assert "bad: validate invalid_input: model expects 2 channels" in text


def test_statistics_have_a_column_of_their_own_and_a_table_with_the_runs_volume_outliers(tmp_path):
    layout = Layout(tmp_path)
    stages = ("validate", "export", "statistics")
    records = {}
    for index in range(12):
        case = f"c{index}"
        volume = 50.0 if index == 11 else 10.0 + index / 10
        labels = [{"label": "sphere", "value": 1, "voxels": int(volume * 1000), "volume_ml": volume, "border": "",
                   "T1_mean": 400.0}, {"label": "box", "value": 2, "voxels": 0, "volume_ml": 0.0, "border": "",
                                       "T1_mean": None}]
        notes = ["label box is empty"]
        records[case] = {
            "validate": StageRecord("validate", case, "done", attempt="a1",
                                    details={"plausibility": ["channel 0000 (T1): 0.00% ..."] if index == 0 else []}),
            "export": StageRecord("export", case, "done", attempt="a1", details={"output": f"{case}.nii.gz"}),
            "statistics": StageRecord("statistics", case, "done", attempt="a1",
                                      details={"labels": labels, "output_notes": notes}),
        }
    records["c4"]["statistics"] = StageRecord("statistics", "c4", "failed", kind="out_of_memory", message="killed",
                                              attempt="a1")
    table = write_summary(dict.fromkeys(records, "a1"), records, layout, stages=stages,
                          statistics_path=layout.statistics())
    rows = {row["case"]: row for row in table.to_dict("records")}
    assert set(table["status"]) == {"done"} and set(table["stage"]) == {"export"}
    assert rows["c4"]["statistics"] == "failed: out_of_memory: killed" and rows["c1"]["statistics"] == "done"
    assert rows["c0"]["plausibility"] == "input: channel 0000 (T1): 0.00% ...; output: label box is empty"
    assert rows["c11"]["plausibility"].startswith("output: label box is empty; output: label sphere volume 50 ml is "
                                                  "far from the run's median 10.6 ml (robust z +")
    assert rows["c4"]["plausibility"] == ""
    statistics = pd.read_csv(layout.statistics(), sep="\t")
    assert list(statistics.columns[:6]) == ["case", "label", "value", "voxels", "volume_ml", "border"]
    assert len(statistics) == 22 and "c4" not in set(statistics["case"])
    assert statistics["T1_mean"].isna().sum() == 11


def test_a_gpu_prediction_has_its_peak_and_its_estimate_side_by_side(tmp_path):
    """Predict on a GPU records torch's reserved peak and the estimate it placed the logits by (none for a
    network the estimate does not count); the summary shows both per stage, a cascade's copy under its name."""
    layout = Layout(tmp_path)
    paths = [save(layout, StageRecord(stage, "c1", "done", attempt="a1")) for stage in ("validate", "preprocess")]
    paths.append(save(layout, StageRecord("predict", "c1", "done", attempt="a1",
                                          details={"gpu_peak_mb": 2048.5, "gpu_estimate_mb": 2300})))
    paths.append(save(layout, StageRecord("prev_predict", "c1", "done", attempt="a1",
                                          details={"gpu_peak_mb": 900.0, "gpu_estimate_mb": None})))
    paths.append(save(layout, StageRecord("predict", "c2", "done", attempt="a1")))  # on the CPU
    stages = ("validate", "preprocess", "prev_predict", "predict")
    table = write_summary({"c1": "a1", "c2": "a1"}, collect_records([], paths), layout, stages=stages)
    rows = {row["case"]: row for row in table.to_dict("records")}
    assert (rows["c1"]["predict_gpu_peak_mb"], rows["c1"]["predict_gpu_estimate_mb"]) == (2048.5, 2300)
    assert rows["c1"]["prev_predict_gpu_peak_mb"] == 900.0 and pd.isna(rows["c1"]["prev_predict_gpu_estimate_mb"])
    assert pd.isna(rows["c2"]["predict_gpu_estimate_mb"])
