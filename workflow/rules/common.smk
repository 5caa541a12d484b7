# Config, model, cases, the run plan and the resource policy: decided once at parse time (read-only).
import os
import sys

import yaml

from snakemake.utils import min_version, validate

from nnunet_workflow.inputs.cases import discover_cases
from nnunet_workflow.nnunet.model import describe_run
from nnunet_workflow.nnunet.nnunet_files import write_nnunet_files
from nnunet_workflow.planning.batch_size import run_batch_size
from nnunet_workflow.planning.plan import RunPlan, make_plan
from nnunet_workflow.planning.provenance import case_provenance, write_provenance_file
from nnunet_workflow.planning.resources import (
    ResourcePolicy,
    apply_local_budgets,
    predict_gpus,
)
from nnunet_workflow.planning.run_location import is_dry_run, runs_locally
from nnunet_workflow.planning.run_setup import RunSetup, resolve_run
from nnunet_workflow.planning.settings import coerce_config
from nnunet_workflow.results.summary import print_brief
from nnunet_workflow.store import run_lock, stage_names
from nnunet_workflow.store.atomic_files import remove_partial_files
from nnunet_workflow.store.layout import Layout

min_version("9.0")

SCHEMA_PATH = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_config(config, yaml.safe_load(SCHEMA_PATH.read_text()))
validate(config, schema=str(SCHEMA_PATH))
LAYOUT = Layout(config["results"])
# Whether jobs run on this machine: known from the command line and profile, since Snakemake
# attaches its executor (workflow.local_exec) only after this file is parsed.
RUNS_LOCALLY = runs_locally(sys.argv)
# The main process resolves the run (model=DatasetXXX_Name/: what nnU-Net recommends there; the
# model or an ensemble's members; the stages) and plans it from the records on disk, read-only;
# it saves both when the run starts. Job processes that re-parse this file (cluster jobs) read
# them instead, so neither the run nor its batches can change under them.
if workflow.is_main_process:
    SETUP = resolve_run(config)
    print(
        "\n".join(
            describe_run(SETUP.members, config["postprocessing"], SETUP.recommended)
        ),
        file=sys.stderr,
    )
    CASES = discover_cases(
        config["input"], SETUP.model.channel_names, SETUP.model.file_ending
    )
    BUDGET_MB = apply_local_budgets(workflow.global_resources, RUNS_LOCALLY)
    PLAN = make_plan(
        CASES,
        LAYOUT,
        SETUP.model.file_ending,
        {
            case: case_provenance(
                SETUP.run_key,
                CASES[case],
                SETUP.model.image_reader_writer,
                config["hash_inputs"],
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
        SETUP.segmenting_stage,
        SETUP.after_segmentation,
    )
else:
    SETUP = RunSetup.load(LAYOUT.run_setup())
    config.update(SETUP.config)
    PLAN = RunPlan.load(LAYOUT.plan())
    CASES = PLAN.pending_cases()
# the run's stages by name, in the order a case goes through them
STAGES = SETUP.stages
POLICY = ResourcePolicy(
    PLAN,
    CASES,
    RUNS_LOCALLY,
    config["export_threads"],
    is_dry_run(sys.argv),
    config["preprocess_threads"],
)
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
    SETUP.save(LAYOUT.run_setup())
    write_nnunet_files(LAYOUT, SETUP.model, config)
    write_provenance_file(LAYOUT, SETUP.members, config, SETUP.run_key)


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
        name = stage_names.with_member(stage, wildcards)
        needed = dict.fromkeys(("validate", *STAGES[name].needed))
        return {n: str(LAYOUT.manifest(wildcards.batch, n)) for n in needed}

    return upstream


def batch_manifests():
    """Manifests of every stage of the batches this run works on (finished cases are in none)."""
    return [
        str(LAYOUT.manifest(batch, stage)) for batch in PLAN.batches for stage in STAGES
    ]


def finished_records():
    """The stage records of the cases finished in earlier runs (no job runs for them)."""
    return [str(path) for path in PLAN.finished_records(LAYOUT)]
