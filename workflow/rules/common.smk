# Config, model, cases and the run plan: decided once at parse time (read-only), used by every rule.
import sys

import yaml

from snakemake.resources import Resource
from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from nnunet_workflow import memory, run_lock
from nnunet_workflow.cases import discover_cases
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


def gpu_budget():
    """Without `--resources gpu=`, a local run predicts one batch per visible GPU at a time (one if none)."""
    given = workflow.global_resources.get("gpu")
    if workflow.local_exec and (given is None or given.value is None):
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
    if not workflow.local_exec:
        return None
    budget = memory.default_budget_mb()
    workflow.global_resources["mem_mb"] = Resource("mem_mb", budget)
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
BATCH_OF = PLAN.batch_of


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
    case="[^/]+",
    attempt="a[0-9]+",
    batch="batch_[0-9a-f]+",


def case_channels(wildcards):
    """Channel files of a case by channel index."""
    return CASES[wildcards.case].channels


JOB_OVERHEAD_MB = (
    memory.LOCAL_JOB_OVERHEAD_MB
    if workflow.local_exec
    else memory.CLUSTER_JOB_OVERHEAD_MB
)


def reserved_mb(stage, case, estimated):
    """Memory to reserve: the stage's estimate plus the job around it, or more where an earlier
    attempt ran out of memory, but never more than the largest job allowed."""
    floor = PLAN.memory_floor_mb.get(case, {}).get(stage, 0)
    wanted = max(estimated + JOB_OVERHEAD_MB, floor)
    return min(wanted, PLAN.max_job_mem_mb or wanted)


def estimate_mb(stage):
    """A mem_mb function reading the case's estimate from its validate record (known once it ran)."""

    def from_record(wildcards, input):
        estimates = read_json(input.validated).get("estimates", {})
        estimated = estimates.get(f"{stage}_mb", memory.NNUNET_BASE_MB)
        return reserved_mb(stage, wildcards.case, estimated)

    return from_record


def estimate_runtime(stage):
    """A runtime (minutes) function: the stage's timeout for the case, from its validate record."""

    def from_record(wildcards, input):
        estimates = read_json(input.validated).get("estimates", {})
        return runtime_minutes(estimates.get(f"{stage}_timeout_s", 600))

    return from_record


def runtime_minutes(seconds):
    """Cluster wall-time limit: the stage's own timeout plus five minutes for the job around it."""
    return -(-int(seconds) // 60) + 5


def validate_runtime(wildcards):
    return runtime_minutes(memory.validate_timeout_s(CASES[wildcards.case].files()))


def batch_runtime(wildcards, input):
    """The timeouts of all cases of the batch, plus time to load the model."""
    timeouts = [
        read_json(path).get("estimates", {}).get("predict_timeout_s", 600)
        for path in input.validated
    ]
    return runtime_minutes(sum(timeouts) + 600)


def validate_mb(wildcards):
    estimated = memory.validate_memory_mb(CASES[wildcards.case].files())
    return reserved_mb("validate", wildcards.case, estimated)


def batch_attempts(wildcards):
    """{case: attempt} of the cases of a predict batch."""
    return {case: PLAN.attempts[case] for case in PLAN.batches[wildcards.batch]}


def batch_records(stage):
    """Input function: the `stage` records of every case of a batch."""

    def records(wildcards):
        return [
            str(LAYOUT.record(stage, case, attempt))
            for case, attempt in batch_attempts(wildcards).items()
        ]

    return records


def batch_mb(wildcards, input):
    """One case at a time beside the loaded model: the largest reservation of the batch."""
    return memory.batch_memory_mb(
        reserved_mb(
            "predict",
            record["case"],
            record.get("estimates", {}).get("predict_mb", memory.PREDICT_BASE_MB),
        )
        for record in map(read_json, input.validated)
    )


def case_batch_record(wildcards):
    return str(LAYOUT.batch_record(BATCH_OF[wildcards.case]))


def pending_exports():
    """Export records of the cases this run works on; finished cases are no target at all."""
    return [
        str(LAYOUT.record("export", case, PLAN.attempts[case])) for case in PLAN.pending
    ]


def predict_gpus():
    """Predict jobs claim a GPU unless the device is the CPU."""
    return 0 if config["device"] == "cpu" else 1
