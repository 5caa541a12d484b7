"""End to end on the demo: input plausibility against the model's dataset_fingerprint.json (swapped channels
and a channel on another intensity scale are flagged with their figures, the others not), and statistics,
previews and the report computed on a later run without segmenting again."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from e2e import run_workflow

from nnunet_workflow.store.layout import Layout

pytestmark = pytest.mark.slow


def write_variants(demo, folder) -> dict[str, str]:
    """The smallest demo case as it is, with its channels swapped, and with T1 on a 10x intensity scale."""
    case = min(demo["case_files"], key=lambda c: sitk.ReadImage(demo["case_files"][c][0]).GetNumberOfPixels())
    t1, t2 = demo["case_files"][case]
    shutil.copy(t1, folder / "plain_0000.nii.gz")
    shutil.copy(t2, folder / "plain_0001.nii.gz")
    shutil.copy(t2, folder / "swapped_0000.nii.gz")
    shutil.copy(t1, folder / "swapped_0001.nii.gz")
    scaled = sitk.ReadImage(t1) * 10.0
    sitk.WriteImage(scaled, str(folder / "scaled_0000.nii.gz"))
    shutil.copy(t2, folder / "scaled_0001.nii.gz")
    return {"plain": case}


def test_implausible_input_is_flagged_and_statistics_come_later_without_segmenting_again(demo, tmp_path):
    source = tmp_path / "input"
    source.mkdir()
    write_variants(demo, source)
    results = tmp_path / "results"
    layout = Layout(results)
    run_workflow(demo["model"], source, results, tta="false", statistics="false")
    summary = pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False).set_index("case")
    assert set(summary["status"]) == {"done"}  # plausibility: warn segments them all
    notes = summary["plausibility"]
    assert notes["plain"] == ""
    assert re.match(r"input: channel 0000 \(T1\) and channel 0001 \(T2\) look swapped: (99|100)\.\d% of channel "
                    r"0000 \(T1\)'s voxels lie in T2's training foreground range \(\S+ to \S+\) and 0\.0% in its own",
                    notes["swapped"]), notes["swapped"]
    assert re.match(r"input: channel 0000 \(T1\): 0\.\d\d% of its voxels lie in the training foreground's "
                    r"intensity range \S+ to \S+ \(p0\.5 to p99\.5, median \S+, dataset_fingerprint\.json\); this "
                    r"image spans \S+ to \S+", notes["scaled"]), notes["scaled"]
    assert "look swapped" not in notes["scaled"] and notes["scaled"].count("input:") == 1
    assert not (results / "statistics.tsv").exists() and not (results / "qc").exists()
    segmentations = {case: (results / f"{case}.nii.gz").stat().st_mtime_ns for case in summary.index}

    run_workflow(demo["model"], source, results, tta="false")
    assert {case: (results / f"{case}.nii.gz").stat().st_mtime_ns for case in summary.index} == segmentations
    for manifest in (results / "work" / "batches").glob("*.predict.json"):
        assert json.loads(manifest.read_text())["model_loads"] in (0, None)
    for case in summary.index:
        assert not layout.record("statistics", case, "a2").exists()  # the same attempt
        assert json.loads(layout.record("predict", case, "a1").read_text())["status"] == "done"
    after = pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False).set_index("case")
    assert set(after["statistics"]) == {"done"} and set(after["attempt"]) == {"a1"}
    assert after.loc["swapped", "plausibility"].startswith("input: channel 0000 (T1) and channel 0001 (T2) look")
    statistics = pd.read_csv(results / "statistics.tsv", sep="\t")
    assert sorted(set(statistics["case"])) == sorted(summary.index)
    # statistics equal a direct count on each segmentation, intensities on its channels
    for row in statistics.itertuples():
        seg = sitk.ReadImage(str(results / f"{row.case}.nii.gz"))
        mask = sitk.GetArrayFromImage(seg) == row.value
        assert row.voxels == int(mask.sum())
        assert np.isclose(row.volume_ml, mask.sum() * np.prod(seg.GetSpacing()) / 1000)
        t1 = sitk.GetArrayFromImage(sitk.ReadImage(str(source / f"{row.case}_0000.nii.gz"))).astype(np.float64)
        if row.voxels:
            assert np.isclose(row.T1_mean, t1[mask].mean()) and np.isclose(row.T1_p95, np.percentile(t1[mask], 95))
    for case in summary.index:
        assert after.loc[case, "preview"] == str(layout.preview(case)) and layout.preview(case).is_file()
    page = layout.report().read_text()
    assert all(f'alt="preview of {case}"' in page for case in summary.index)
    assert "look swapped" in page
