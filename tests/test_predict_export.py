"""Stages predict and export without Snakemake: one model load per batch, skips, atomic outputs."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from stages import demo_job, run_one, validated_and_preprocessed

from nnunet_workflow.execution.batch import run_batch
from nnunet_workflow.execution.job import RunOptions
from nnunet_workflow.stages.export import EXPORT
from nnunet_workflow.stages.predict import PREDICT
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord

pytestmark = pytest.mark.slow

FAST = RunOptions(step_size=0.5, tta=False, device="cpu", threads=2)


@pytest.fixture(scope="module")
def predicted(demo, tmp_path_factory):
    """Two demo cases preprocessed and predicted in one batch, plus a case that failed validation."""
    results = tmp_path_factory.mktemp("results")
    cases = sorted(demo["cases"])[:2]
    model, layout, validated, preprocessed = validated_and_preprocessed(demo, results, cases, FAST)
    validated["broken"] = StageRecord("validate", "broken", "failed", kind="invalid_input", message="bad")
    preprocessed["broken"] = validated["broken"].skipped("preprocess")
    jobs = {case: demo_job(demo, layout, case, FAST, validate=validated[case], preprocess=preprocessed[case])
            for case in preprocessed}
    manifest = run_batch(PREDICT, jobs)
    predictions = manifest.records()
    export_jobs = {case: replace(job, upstream={**job.upstream, "predict": predictions[case]})
                   for case, job in jobs.items()}
    return export_jobs, manifest, cases


def test_batch_loads_the_model_once_and_skips_the_failed_case(predicted):
    jobs, manifest, cases = predicted
    assert manifest.model_loads == 1
    assert {case: r.status for case, r in manifest.records().items()} == {**{c: "done" for c in cases},
                                                                         "broken": "skipped"}
    for case in cases:
        job = jobs[case]
        logits = np.load(job.layout.logits(case, "a1"))
        assert logits.dtype == np.float16
        assert logits.shape[0] == job.model.num_classes
        assert list(logits.shape[1:]) == list(np.load(job.layout.preprocessed(case, "a1"), mmap_mode="r").shape[1:])


def test_export_writes_the_segmentation_in_the_original_geometry(demo, predicted):
    jobs, _, cases = predicted
    case = cases[0]
    job = replace(jobs[case], options=replace(FAST, keep_intermediates=True))
    record = run_one(EXPORT, job)
    assert record.status == "done", record
    segmentation = sitk.ReadImage(record.details["output"])
    source = sitk.ReadImage(demo["case_files"][case][0])
    assert segmentation.GetSize() == source.GetSize() and segmentation.GetOrigin() == source.GetOrigin()
    assert set(np.unique(sitk.GetArrayViewFromImage(segmentation))) <= {0, 1, 2}
    assert job.layout.logits(case, "a1").exists()


def test_export_with_probabilities_and_cleanup(predicted):
    jobs, _, cases = predicted
    case = cases[1]
    job = replace(jobs[case], options=replace(FAST, save_probabilities=True))
    record = run_one(EXPORT, job)
    assert record.status == "done"
    layout = job.layout
    npz, pkl = layout.probabilities(case)
    assert np.load(npz)["probabilities"].shape[0] == job.model.num_classes and pkl.is_file()
    assert not layout.logits(case, "a1").exists() and not layout.preprocessed(case, "a1").exists()


def test_failed_export_leaves_no_file_at_the_final_path(predicted, tmp_path):
    jobs, _, cases = predicted
    case = cases[0]
    elsewhere = replace(jobs[case], layout=Layout(tmp_path))
    elsewhere.record_path("export").parent.mkdir(parents=True)
    record = run_one(EXPORT, elsewhere)
    assert record.status == "failed" and record.kind == "error" and "No such file" in record.message
    assert not elsewhere.layout.segmentation(case, ".nii.gz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["work"]
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "export.json"]


def test_export_skips_a_case_not_predicted(predicted):
    jobs, _, _ = predicted
    record = run_one(EXPORT, jobs["broken"])
    assert record.status == "skipped" and not jobs["broken"].layout.segmentation("broken", ".nii.gz").exists()


def test_a_case_out_of_gpu_memory_is_predicted_again_with_the_logits_on_the_host(demo, predicted):
    """An injected GPU out-of-memory error while everything is on the device: the case is predicted again with
    perform_everything_on_device=False, its logits equal to those of the plain prediction, and it says so."""
    import shutil

    jobs, _, cases = predicted
    case = cases[0]
    job = replace(jobs[case], attempt="a9")  # an attempt of its own: a1's record is done
    job.layout.attempt_dir(case, "a9").mkdir()
    shutil.copy(job.layout.preprocessed(case, "a1"), job.layout.preprocessed(case, "a9"))
    plain = np.load(job.layout.logits(case, "a1"))
    record = run_one(PREDICT, job, fault="gpu_oom")
    assert record.done, record.message
    assert record.details["logits_on_host"] is True
    assert record.warnings == ["predict ran out of GPU memory (OutOfMemoryError: CUDA out of memory (injected "
                               "fault)); predicted again with the logits kept in host memory "
                               "(perform_everything_on_device=False, same results)"]
    assert np.array_equal(np.load(job.layout.logits(case, "a9")), plain)
