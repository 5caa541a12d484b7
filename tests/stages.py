"""Helpers of the stage tests: run stages on demo cases without Snakemake, through the real batch path."""

from nnunet_workflow.execution.batch import run_batch
from nnunet_workflow.execution.job import CaseJob, RunOptions
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.nnunet.model import load_model
from nnunet_workflow.stages.preprocess import PREPROCESS
from nnunet_workflow.stages.validate import VALIDATE
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord


def run_one(stage, job: CaseJob, fault: str | None = None) -> StageRecord:
    """Run one stage for one case as a batch of one (injecting a test-only `fault`); return the case's record as
    saved."""
    manifest = run_batch(stage, {job.id: job}, faults={job.id: fault} if fault else None)
    return StageRecord.load(manifest.cases[job.id])


DEFAULT_OPTIONS = RunOptions()


def demo_job(demo, layout, case, options=DEFAULT_OPTIONS, **upstream) -> CaseJob:
    model = load_model(demo["model"])
    return CaseJob(Case(case, dict(enumerate(demo["case_files"].get(case, [])))), "a1", model, layout, options,
                   upstream=upstream)


def validated_and_preprocessed(demo, results, cases, options=DEFAULT_OPTIONS):
    """(model, layout, {case: validate record}, {case: preprocess record}) for some demo cases."""
    layout = Layout(results)
    validated, preprocessed = {}, {}
    for case in cases:
        validated[case] = run_one(VALIDATE, demo_job(demo, layout, case, options))
        preprocessed[case] = run_one(PREPROCESS, demo_job(demo, layout, case, options, validate=validated[case]))
    return load_model(demo["model"]), layout, validated, preprocessed
