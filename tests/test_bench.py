"""The benchmark helpers: ratio statistics, tables, and the peak memory of a command."""

import sys

from nnunet_workflow.dev import bench


def test_ratio_summary_counts_estimates_under_the_measurement():
    rows = [{"stage": "preprocess", "ratio": 1.2}, {"stage": "preprocess", "ratio": 0.9},
            {"stage": "export", "ratio": 1.5}, {"stage": "predict", "ratio": None}]
    summary = {row["stage"]: row for row in bench.ratio_summary(rows)}
    assert summary["preprocess"] == {"stage": "preprocess", "n": 2, "under": 1, "min": 0.9, "median": 1.05,
                                     "max": 1.2}
    assert summary["predict"]["n"] == 0 and summary["predict"]["median"] is None
    assert summary["all"]["n"] == 3 and summary["all"]["median"] == 1.2


def test_format_table_aligns_columns():
    text = bench.format_table([{"a": 1, "bb": "x"}, {"a": 100, "bb": None}])
    assert text.splitlines() == ["  a  bb", "---  --", "  1   x", "100    "]


def test_run_measured_reports_the_peak_of_the_command():
    allocate = "import numpy; a = numpy.ones(300 * 2**20 // 8); print('ok')"
    run = bench.run_measured([sys.executable, "-c", allocate])
    assert run["rc"] == 0 and run["stdout"].strip() == "ok"
    assert 300 <= run["peak_mb"] < 600
    failed = bench.run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed["rc"] == 3
