# Config, model, cases, the run plan and the resource policy: decided once at parse time (read-only).
import os
import sys

import yaml

from snakemake.utils import min_version, validate

from nnunet_workflow import run_lock
from nnunet_workflow.atomic_files import remove_partial_files
from nnunet_workflow.batch_size import run_batch_size
from nnunet_workflow.cases import discover_cases
from nnunet_workflow.execution import runs_locally
from nnunet_workflow.layout import Layout
from nnunet_workflow.model import describe_run, load_members
from nnunet_workflow.nnunet_files import write_nnunet_files
from nnunet_workflow.plan import RunPlan, make_plan
from nnunet_workflow.postprocess import check_postprocessing_file
from nnunet_workflow.provenance import (
    case_provenance,
    provenance_key,
    write_provenance_file,
)
from nnunet_workflow.recommended import apply_recommended
from nnunet_workflow.pipeline import AFTER_SEGMENTATION, segmenting_stage, stages_for
from nnunet_workflow.resources import (
    ResourcePolicy,
    apply_local_budgets,
    member_rule_stage,
    predict_gpus,
)
from nnunet_workflow.settings import coerce_config
from nnunet_workflow.summary import print_brief

min_version("9.0")

SCHEMA_PATH = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_config(config, yaml.safe_load(SCHEMA_PATH.read_text()))
validate(config, schema=str(SCHEMA_PATH))
# model=DatasetXXX_Name/ (with inference_information.json): what nnU-Net recommends there
RECOMMENDED = apply_recommended(config)

# The model, or an ensemble's members (model=[A,B]); MODEL, the first, stands for the run's
# channels, labels, file ending and reader.
MEMBERS = load_members(
    config["model"],
    config["folds"],
    config["checkpoint"],
    config["configuration"],
    config["previous_stage_model"],
)
MODEL = MEMBERS[0]
POSTPROCESSING = check_postprocessing_file(config["postprocessing"])
STAGES = stages_for(MEMBERS, POSTPROCESSING, config["statistics"], config["dicom_seg"])
STAGE_NAMES = tuple(STAGES)
# the stage that writes the segmentations, and those that look at them after (statistics, dicom_seg)
SEGMENTING_STAGE = segmenting_stage(STAGE_NAMES)
AFTER_STAGES = tuple(name for name in STAGE_NAMES if name in AFTER_SEGMENTATION)
CASES = discover_cases(config["input"], MODEL.channel_names)
# Whether jobs run on this machine: known from the command line and profile, since Snakemake
# attaches its executor (workflow.local_exec) only after this file is parsed.
RUNS_LOCALLY = runs_locally(sys.argv)
LAYOUT = Layout(config["results"])
# The main process decides the plan from the records on disk; job processes that re-parse this
# file (cluster jobs) read the plan it saved at start instead, so batches cannot change under them.
RUN_KEY = provenance_key(MEMBERS, config)
if workflow.is_main_process:
    print(
        "\n".join(describe_run(MEMBERS, config["postprocessing"], RECOMMENDED)),
        file=sys.stderr,
    )
    BUDGET_MB = apply_local_budgets(workflow.global_resources, RUNS_LOCALLY)
    PLAN = make_plan(
        CASES,
        LAYOUT,
        MODEL.file_ending,
        {
            case: case_provenance(
                RUN_KEY, CASES[case], MODEL.image_reader_writer, config["hash_inputs"]
            )
            for case in CASES
        },
        run_batch_size(
            config,
            workflow.global_resources,
            # a cluster run may define no cores (Snakemake raises when asked for them)
            workflow.cores if RUNS_LOCALLY else None,
            workflow.nodes,
            RUNS_LOCALLY,
        ),
        min(filter(None, (config["max_job_mem_mb"], BUDGET_MB)), default=None),
        SEGMENTING_STAGE,
        AFTER_STAGES,
    )
else:
    PLAN = RunPlan.load(LAYOUT.plan())
POLICY = ResourcePolicy(PLAN, CASES, RUNS_LOCALLY)
SEGMENTED = set(PLAN.segmented)
# the summary rule's outputs: the summary, and the run's statistics table when statistics are on
SUMMARY_FILES = {
    "summary": str(LAYOUT.summary()),
    **({"statistics": str(LAYOUT.statistics())} if config["statistics"] else {}),
}


onstart:
    run_lock.acquire(LAYOUT.run_lock())
    remove_partial_files(LAYOUT.results)
    PLAN.save(LAYOUT.plan())
    write_nnunet_files(LAYOUT, MODEL, config)
    write_provenance_file(LAYOUT, MEMBERS, config, RUN_KEY)


onsuccess:
    run_lock.release(LAYOUT.run_lock())
    print_brief(LAYOUT.summary())


onerror:
    run_lock.release(LAYOUT.run_lock())


wildcard_constraints:
    batch="batch_[0-9a-f]+",


def batch_cases(wildcards):
    """{case: {"attempt": ..., "channels": {index: file}, "provenance": key}} of the cases of a batch."""
    return {
        case: {
            "attempt": PLAN.attempts[case],
            "channels": CASES[case].channels,
            "provenance": PLAN.provenance[case],
            "carried_from": PLAN.carried_from.get(case),
            "segmented": case in SEGMENTED,
        }
        for case in PLAN.batches[wildcards.batch]
    }


def batch_channel_files(wildcards):
    """The existing channel files of a batch: a missing one is reported by validate for its case
    (as input it would stop the whole run before any job)."""
    return [
        path
        for case in PLAN.batches[wildcards.batch]
        for path in CASES[case].files()
        if os.path.exists(path)
    ]


def stage_upstream(stage):
    """The input of a stage's rule: validate's manifest and those of the stages it needs
    (a cascade's preprocess its previous stage's export, an ensemble every member's export).
    `stage` may hold the wildcard of an ensemble member's rules ("m{member}_predict").
    """

    def upstream(wildcards):
        name = member_rule_stage(stage, wildcards)
        needed = dict.fromkeys(("validate", *STAGES[name].needed))
        return {n: str(LAYOUT.manifest(wildcards.batch, n)) for n in needed}

    return upstream


def batch_manifests():
    """Manifests of every stage of the batches this run works on (finished cases are in none)."""
    return [
        str(LAYOUT.manifest(batch, stage))
        for batch in PLAN.batches
        for stage in STAGE_NAMES
    ]


def finished_records():
    """The stage records of the cases finished in earlier runs (no job runs for them)."""
    return [str(path) for path in PLAN.finished_records(LAYOUT)]
