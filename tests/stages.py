"""Helpers of the stage tests: run stages on demo cases without Snakemake, through the real batch path."""

from nnunet_workflow.batch import run_batch
from nnunet_workflow.cases import Case
from nnunet_workflow.job import CaseJob, RunOptions
from nnunet_workflow.layout import Layout
from nnunet_workflow.model import load_model
from nnunet_workflow.preprocess import PREPROCESS
from nnunet_workflow.records import StageRecord
from nnunet_workflow.validate import VALIDATE


def run_one(stage, job: CaseJob) -> StageRecord:
    """Run one stage for one case as a batch of one; return the case's record as saved."""
    manifest = run_batch(stage, {job.id: job})
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
