"""Label statistics equal a direct count on the segmentation and numpy's own figures on the labelled voxels;
region labels, empty labels and the image border; the output checks built on them."""

import math

import numpy as np

from nnunet_workflow.stages.label_statistics import foreground_labels, label_statistics
from nnunet_workflow.stages.output_checks import case_notes, robust_z, volume_outliers


def test_statistics_equal_a_direct_count_and_numpys_percentiles():
    rng = np.random.default_rng(3)
    seg = rng.integers(0, 3, size=(9, 11, 13)).astype(np.uint8)
    seg[seg == 2] = 0
    seg[2:4, 3:6, 0:5] = 2  # touches axis 2's start
    t1, t2 = rng.normal(100, 10, seg.shape).astype(np.float32), rng.normal(5, 1, seg.shape).astype(np.float32)
    spacing = (2.0, 0.5, 0.8)
    rows = label_statistics(seg, [t1, t2], spacing, {"background": 0, "a": 1, "b": 2, "none": 3}, ["T1", "T2"])
    assert [row["label"] for row in rows] == ["a", "b", "none"]
    for row, value in zip(rows, (1, 2, 3)):
        mask = seg == value
        assert row["voxels"] == int(mask.sum())
        assert math.isclose(row["volume_ml"], mask.sum() * 2.0 * 0.5 * 0.8 / 1000)
        for name, channel in (("T1", t1), ("T2", t2)):
            if not mask.any():
                assert math.isnan(row[f"{name}_mean"]) and math.isnan(row[f"{name}_p95"])
                continue
            inside = channel[mask].astype(np.float64)
            assert math.isclose(row[f"{name}_mean"], inside.mean())
            assert [row[f"{name}_{k}"] for k in ("p5", "median", "p95")] == list(np.percentile(inside, [5, 50, 95]))
    assert rows[1]["border"] == "axis 2 start"
    assert rows[2]["voxels"] == 0 and rows[2]["border"] == ""


def test_a_region_is_every_voxel_of_its_labels_and_background_and_ignore_are_left_out():
    assert foreground_labels({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "ignore": 4}) == {
        "whole": (1, 2, 3), "core": (2, 3)}
    seg = np.zeros((1, 6, 6), dtype=np.uint8)  # a 2D case: its single plane is no border
    seg[0, 1:3, 1:3], seg[0, 3, 3] = 1, 3
    rows = label_statistics(seg, [np.ones(seg.shape, np.float32)], (999.0, 1.0, 1.0),
                            {"background": 0, "whole": [1, 2, 3], "core": [2, 3]}, ["CT"])
    assert [(r["label"], r["value"], r["voxels"], r["border"]) for r in rows] == [
        ("whole", "1,2,3", 5, ""), ("core", "2,3", 1, "")]


def test_case_notes_name_empty_labels_and_labels_at_the_border():
    rows = [{"label": "liver", "voxels": 0, "border": ""}, {"label": "spleen", "voxels": 5, "border": "axis 0 end"},
            {"label": "kidney", "voxels": 9, "border": ""}]
    assert case_notes(rows) == ["label liver is empty",
                                "label spleen touches the image border (axis 0 end): it may be cut off"]


def test_a_volume_far_from_the_runs_is_noted_with_its_robust_z_score():
    volumes = {"liver": {f"c{i}": 1500.0 + 10 * i for i in range(9)} | {"huge": 9000.0},
               "few": {"a": 1.0, "b": 1000.0}}
    notes = volume_outliers(volumes)
    assert list(notes) == ["huge"]
    assert notes["huge"][0].startswith("label liver volume 9e+03 ml is far from the run's median 1.54e+03 ml")
    assert "over 10 cases" in notes["huge"][0]
    assert list(robust_z(np.array([1.0, 1.0, 1.0]))) == [0, 0, 0]
