"""Stages predict and export without Snakemake: one model load per batch, skips, atomic outputs."""

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.export import export_case
from nnunet_workflow.job import CaseJob
from nnunet_workflow.layout import Layout
from nnunet_workflow.predict import PredictOptions, predict_batch
from nnunet_workflow.records import stage_record

from stages import validated_and_preprocessed

pytestmark = pytest.mark.slow

FAST = PredictOptions(step_size=0.5, tta=False, device="cpu", threads=2)


@pytest.fixture(scope="module")
def predicted(demo, tmp_path_factory):
    """Two demo cases preprocessed and predicted in one batch, plus a case that failed validation."""
    results = tmp_path_factory.mktemp("results")
    cases = sorted(demo["cases"])[:2]
    model, layout, validated, preprocessed = validated_and_preprocessed(demo, results, cases)
    failed = stage_record("validate", "broken", "failed", kind="invalid_input", message="bad")
    preprocessed["broken"] = stage_record("preprocess", "broken", "skipped", kind="invalid_input",
                                          message="not run: validate failed")
    jobs = {case: CaseJob(case, "a1", model, layout) for case in preprocessed}
    batch = predict_batch("batch_0000", jobs, preprocessed, FAST, {case: 600 for case in jobs})
    return jobs, validated | {"broken": failed}, batch, cases


def test_batch_loads_the_model_once_and_skips_the_failed_case(predicted):
    jobs, _, batch, cases = predicted
    assert batch["model_loads"] == 1
    assert {case: r["status"] for case, r in batch["cases"].items()} == {**{c: "done" for c in cases}, "broken": "skipped"}
    for case in cases:
        job = jobs[case]
        logits = np.load(job.layout.logits(case, "a1"))
        assert logits.dtype == np.float16
        assert logits.shape[0] == job.model.num_classes
        assert list(logits.shape[1:]) == list(np.load(job.layout.preprocessed(case, "a1"), mmap_mode="r").shape[1:])


def test_export_writes_the_segmentation_in_the_original_geometry(demo, predicted):
    jobs, validated, batch, cases = predicted
    case = cases[0]
    record = export_case(jobs[case], batch["cases"][case], validated[case], keep_intermediates=True)
    assert record["status"] == "done", record
    segmentation = sitk.ReadImage(record["output"])
    source = sitk.ReadImage(demo["case_files"][case][0])
    assert segmentation.GetSize() == source.GetSize() and segmentation.GetOrigin() == source.GetOrigin()
    assert set(np.unique(sitk.GetArrayViewFromImage(segmentation))) <= {0, 1, 2}
    assert jobs[case].layout.logits(case, "a1").exists()


def test_export_with_probabilities_and_cleanup(predicted):
    jobs, validated, batch, cases = predicted
    case = cases[1]
    record = export_case(jobs[case], batch["cases"][case], validated[case], save_probabilities=True)
    assert record["status"] == "done"
    layout = jobs[case].layout
    npz, pkl = layout.probabilities(case)
    assert np.load(npz)["probabilities"].shape[0] == jobs[case].model.num_classes and pkl.is_file()
    assert not layout.logits(case, "a1").exists() and not layout.preprocessed(case, "a1").exists()


def test_failed_export_leaves_no_file_at_the_final_path(predicted, tmp_path):
    jobs, validated, batch, cases = predicted
    case = cases[0]
    elsewhere = CaseJob(case, "a1", jobs[case].model, Layout(tmp_path))
    record = export_case(elsewhere, batch["cases"][case], validated[case])
    assert record["status"] == "failed" and record["kind"] == "error" and "No such file" in record["message"]
    assert not elsewhere.layout.segmentation(case, ".nii.gz").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_export_skips_a_case_not_predicted(predicted):
    jobs, validated, batch, _ = predicted
    record = export_case(jobs["broken"], batch["cases"]["broken"], validated["broken"])
    assert record["status"] == "skipped" and not jobs["broken"].layout.segmentation("broken", ".nii.gz").exists()
