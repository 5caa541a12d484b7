"""Helpers of the stage tests: run validate and preprocess on demo cases without Snakemake."""

from nnunet_workflow.cases import Case
from nnunet_workflow.job import CaseJob
from nnunet_workflow.layout import Layout
from nnunet_workflow.model import load_model
from nnunet_workflow.preprocess import preprocess_case
from nnunet_workflow.validate import validate_case


def validated_and_preprocessed(demo, results, cases, save_probabilities=False):
    """(model, layout, {case: validate record}, {case: preprocess record}) for some demo cases."""
    model = load_model(demo["model"])
    layout = Layout(results)
    validated, preprocessed = {}, {}
    for case in cases:
        channels = dict(enumerate(demo["case_files"][case]))
        job = CaseJob(case, "a1", model, layout)
        validated[case] = validate_case(Case(case, channels), job, save_probabilities)
        preprocessed[case] = preprocess_case(job, validated[case])
    return model, layout, validated, preprocessed
