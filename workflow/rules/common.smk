# Config, model, cases and the run plan: decided once at parse time (read-only), used by every rule.
import os
import sys

import yaml

from snakemake.resources import Resource
from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from nnunet_workflow import memory, run_lock
from nnunet_workflow.cases import discover_cases
from nnunet_workflow.execution import runs_locally
from nnunet_workflow.layout import Layout
from nnunet_workflow.model import load_model
from nnunet_workflow.plan import RunPlan, make_plan
from nnunet_workflow.provenance import provenance_key
from nnunet_workflow.records import read_json, remove_partial_files
from nnunet_workflow.settings import coerce_config
from nnunet_workflow.summary import print_brief

SCHEMA_PATH = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_config(config, yaml.safe_load(SCHEMA_PATH.read_text()))
validate(config, schema=str(SCHEMA_PATH))

MODEL = load_model(
    config["model"], config["folds"], config["checkpoint"], config["configuration"]
)
CASES = discover_cases(config["input"], MODEL.channel_names)
# Whether jobs run on this machine: known from the command line and profile, since Snakemake
# attaches its executor (workflow.local_exec) only after this file is parsed.
RUNS_LOCALLY = runs_locally(sys.argv)


def gpu_budget():
    """Without `--resources gpu=`, a local run predicts one batch per visible GPU at a time (one if none)."""
    given = workflow.global_resources.get("gpu")
    if RUNS_LOCALLY and (given is None or given.value is None):
        workflow.global_resources["gpu"] = Resource(
            "gpu", max(1, memory.visible_gpus())
        )


def memory_budget_mb():
    """The run's mem_mb budget: `--resources mem_mb=`, else (local runs) derived from free memory.

    A cluster run without one has no shared budget: each job gets its own allocation.
    """
    given = workflow.global_resources.get("mem_mb")
    if given is not None and given.value is not None:
        return int(given.value)
    if not RUNS_LOCALLY:
        return None
    budget = memory.default_budget_mb()
    workflow.global_resources["mem_mb"] = Resource("mem_mb", budget)
    print(
        f"mem_mb budget: {budget} MB, 90% of the memory available to this run "
        "(the host's or its cgroup's); --resources mem_mb=M sets another",
        file=sys.stderr,
    )
    return budget


LAYOUT = Layout(config["results"])
# The main process decides the plan from the records on disk; job processes that re-parse this
# file (cluster jobs) read the plan it saved at start instead, so batches cannot change under them.
if workflow.is_main_process:
    MEMORY_BUDGET_MB = memory_budget_mb()
    gpu_budget()
    MAX_JOB_MB = min(
        filter(None, (config["max_job_mem_mb"], MEMORY_BUDGET_MB)), default=None
    )
    PLAN = make_plan(
        CASES,
        LAYOUT,
        MODEL.file_ending,
        provenance_key(MODEL, config),
        config["batch_size"],
        MAX_JOB_MB,
    )
else:
    PLAN = RunPlan.load(LAYOUT.plan())


onstart:
    run_lock.acquire(LAYOUT.run_lock())
    remove_partial_files(LAYOUT.results)
    PLAN.save(LAYOUT.plan())


onsuccess:
    run_lock.release(LAYOUT.run_lock())
    print_brief(LAYOUT.summary())


onerror:
    run_lock.release(LAYOUT.run_lock())


wildcard_constraints:
    batch="batch_[0-9a-f]+",


JOB_OVERHEAD_MB = (
    memory.LOCAL_JOB_OVERHEAD_MB if RUNS_LOCALLY else memory.CLUSTER_JOB_OVERHEAD_MB
)
# Seconds a predict job may need to load the model, beside its cases' own timeouts.
MODEL_LOAD_S = 600
BASE_MB = {
    "preprocess": memory.NNUNET_BASE_MB,
    "predict": memory.PREDICT_BASE_MB,
    "export": memory.NNUNET_BASE_MB,
}


def reserved_mb(stage, case, estimated):
    """Memory to reserve for a case: the stage's estimate plus the job around it, or more where an
    earlier attempt ran out of memory, but never more than the largest job allowed."""
    floor = PLAN.memory_floor_mb.get(case, {}).get(stage, 0)
    wanted = max(estimated + JOB_OVERHEAD_MB, floor)
    return min(wanted, PLAN.max_job_mem_mb or wanted)


def runtime_minutes(seconds):
    """Cluster wall-time limit: the stage's own timeouts plus five minutes for the job around them."""
    return -(-int(seconds) // 60) + 5


def batch_attempts(wildcards):
    """{case: attempt} of the cases of a batch."""
    return {case: PLAN.attempts[case] for case in PLAN.batches[wildcards.batch]}


def batch_channels(wildcards):
    """{case: {channel index: file}} of the cases of a batch."""
    return {case: CASES[case].channels for case in PLAN.batches[wildcards.batch]}


def batch_channel_files(wildcards):
    """The existing channel files of a batch: a missing one is reported by validate for its case
    (as input it would stop the whole run before any job)."""
    return [
        path
        for case in PLAN.batches[wildcards.batch]
        for path in CASES[case].files()
        if os.path.exists(path)
    ]


def validate_batch_mb(wildcards):
    """Validation reads one case at a time: the largest case's need decides."""
    return max(
        reserved_mb("validate", case, memory.validate_memory_mb(CASES[case].files()))
        for case in PLAN.batches[wildcards.batch]
    )


def validate_batch_runtime(wildcards):
    return runtime_minutes(
        sum(
            memory.validate_timeout_s(CASES[case].files())
            for case in PLAN.batches[wildcards.batch]
        )
    )


def batch_mb(stage):
    """A mem_mb function: a batch job runs one case at a time, so its largest reservation decides
    (estimates from the batch's validate record)."""

    def largest(wildcards, input):
        return max(
            reserved_mb(
                stage,
                case,
                record.get("estimates", {}).get(f"{stage}_mb", BASE_MB[stage]),
            )
            for case, record in read_json(input.validated)["cases"].items()
        )

    return largest


def batch_runtime(stage, extra_s=0):
    """A runtime (minutes) function: the sum of the stage's timeouts over the batch's cases."""

    def total(wildcards, input):
        return runtime_minutes(
            extra_s
            + sum(
                record.get("estimates", {}).get(f"{stage}_timeout_s", 600)
                for record in read_json(input.validated)["cases"].values()
            )
        )

    return total


def batch_exports():
    """Export records of the batches this run works on; finished cases are in no batch at all."""
    return [str(LAYOUT.batch_record(batch, "export")) for batch in PLAN.batches]


def predict_gpus():
    """Predict jobs claim a GPU unless the device is the CPU."""
    return 0 if config["device"] == "cpu" else 1
