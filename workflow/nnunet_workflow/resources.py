"""The resource policy: what each job reserves (`mem_mb`, `runtime`, `gpu`) and the run's budgets.

A batch job runs its cases one at a time, so it reserves its largest case's need: the stage's estimate
from the case's validate record (validate's own from the channel files) plus the job around the worker,
at least what an earlier attempt that ran out of memory measured (the plan's floor), never more than the
largest job allowed. Its runtime is the sum of its cases' timeouts. The rules call this module in one
line per directive; a new stage is one line in STAGE_RESOURCES.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import memory, timeouts
from .available_memory import available_memory_mb
from .cases import Case
from .gpu_slots import visible_gpu_ids
from .job import CaseJob
from .manifest import BatchManifest
from .plan import RunPlan
from .records import StageRecord
from .stage import stage_kind

# Memory of a job around its stage worker: the rule's script process, and on a cluster also the
# Snakemake process that runs the job (SLURM counts them all against --mem; a validate job of the
# demo was killed at 269 MB of 251 MB reserved before this was added).
LOCAL_JOB_OVERHEAD_MB = 100
CLUSTER_JOB_OVERHEAD_MB = 400
# Share of the available memory a local run without `--resources mem_mb=` allows itself.
BUDGET_SHARE = 0.9
# Minutes a cluster job gets beyond its cases' timeouts, for the job around them.
JOB_SLACK_MIN = 5


@dataclass(frozen=True)
class StageResources:
    """base_mb: a stage worker before it reads a case, and the reservation of a case without an estimate
    (one that failed validate is only skipped). setup_s: seconds the worker may need to start (load a model).
    default_timeout_s: a case's time without an estimate. from_geometry: the estimate from the geometry of a
    validate record written before the stage existed (a rerun adding statistics to older results)."""

    base_mb: int
    setup_s: int = 0
    default_timeout_s: int = 600
    from_geometry: Callable[[dict], int] | None = None


def statistics_mb_from_geometry(geometry: dict) -> int:
    return memory.statistics_mb(math.prod(geometry["shape_nnunet"]), geometry["channels"])


def dicom_seg_mb_from_geometry(geometry: dict) -> int:
    return memory.dicom_seg_mb(math.prod(geometry["shape_nnunet"]))


STAGE_RESOURCES = {
    "validate": StageResources(memory.VALIDATE_BASE_MB),
    "preprocess": StageResources(memory.NNUNET_BASE_MB),
    "predict": StageResources(memory.PREDICT_BASE_MB, setup_s=600),
    "export": StageResources(memory.NNUNET_BASE_MB),
    "ensemble": StageResources(memory.NNUNET_BASE_MB),
    "postprocess": StageResources(memory.NNUNET_BASE_MB),
    "statistics": StageResources(memory.VALIDATE_BASE_MB, from_geometry=statistics_mb_from_geometry),
    "dicom_seg": StageResources(memory.VALIDATE_BASE_MB, default_timeout_s=1800,
                                from_geometry=dicom_seg_mb_from_geometry),
}


def stage_resources(stage: str) -> StageResources:
    """A stage's line; a copy (prev_predict, m1_predict) has the line of the stage it copies."""
    return STAGE_RESOURCES[stage_kind(stage)]


def estimated_mb(stage: str, case: Case, validated: StageRecord | None) -> int:
    """A case's estimated peak in a stage: validate's from the channel files, the others' from validate."""
    if stage == "validate":
        return memory.validate_memory_mb(case.files())
    estimates = validated.estimates if validated else {}
    if f"{stage}_mb" in estimates:
        return int(estimates[f"{stage}_mb"])
    line, geometry = stage_resources(stage), validated.details.get("geometry") if validated else None
    return line.from_geometry(geometry) if line.from_geometry and geometry else line.base_mb


def estimated_s(stage: str, case: Case, validated: StageRecord | None) -> int:
    """A case's time limit in a stage, found the same way as its memory."""
    if stage == "validate":
        return timeouts.validate_timeout_s(case.files())
    estimates = validated.estimates if validated else {}
    return int(estimates.get(f"{stage}_timeout_s", stage_resources(stage).default_timeout_s))


def case_timeout_s(stage: str, job: CaseJob) -> int:
    return estimated_s(stage, job.case, job.upstream.get("validate"))


def member_rule_stage(stage: str, wildcards) -> str:
    """The stage of a job: an ensemble member's rule names it with the member's wildcard (m{member}_predict)."""
    return stage.format(member=wildcards.member) if "{member}" in stage else stage


def runtime_minutes(seconds: float) -> int:
    """Cluster wall-time limit: the stage's own timeouts plus a few minutes for the job around them."""
    return -(-int(seconds) // 60) + JOB_SLACK_MIN


class ResourcePolicy:
    """The reservations of one run's jobs, from its plan and cases."""

    def __init__(self, plan: RunPlan, cases: dict[str, Case], runs_locally: bool):
        self.plan, self.cases = plan, cases
        self.overhead_mb = LOCAL_JOB_OVERHEAD_MB if runs_locally else CLUSTER_JOB_OVERHEAD_MB

    def reserved_mb(self, stage: str, case: str, estimated: int) -> int:
        """The estimate plus the job around the worker, or more where an earlier attempt ran out of memory,
        but never more than the largest job allowed."""
        floor = self.plan.memory_floor_mb.get(case, {}).get(stage, 0)
        wanted = max(estimated + self.overhead_mb, floor)
        return min(wanted, self.plan.max_job_mem_mb or wanted)

    def _validated(self, stage: str, input) -> dict[str, StageRecord | None]:
        """The validate records of a batch's cases (none for validate itself)."""
        return {} if stage == "validate" else BatchManifest.load(input.validate).records()

    def mem_mb(self, stage: str):
        """A `mem_mb` function for a stage's rule: the batch's largest reservation. `stage` may hold the
        wildcard of an ensemble member's rules ("m{member}_predict")."""

        def largest(wildcards, input) -> int:
            stage_name = member_rule_stage(stage, wildcards)
            validated = self._validated(stage_name, input)
            return max(self.reserved_mb(stage_name, case,
                                        estimated_mb(stage_name, self.cases[case], validated.get(case)))
                       for case in self.plan.batches[wildcards.batch])

        return largest

    def runtime(self, stage: str):
        """A `runtime` (minutes) function for a stage's rule: the worker's start plus the cases' timeouts."""

        def total(wildcards, input) -> int:
            stage_name = member_rule_stage(stage, wildcards)
            validated = self._validated(stage_name, input)
            cases = self.plan.batches[wildcards.batch]
            return runtime_minutes(stage_resources(stage_name).setup_s + sum(
                estimated_s(stage_name, self.cases[case], validated.get(case)) for case in cases))

        return total


def predict_gpus(device: str) -> int:
    """Predict jobs claim a GPU unless the device is the CPU."""
    return 0 if device == "cpu" else 1


def predict_slots(global_resources: dict, device: str, cores: int, predict_threads: int) -> int:
    """How many predict jobs a local run runs at once: one per unit of its `gpu` budget, or with the device
    `cpu` (no GPU claimed) as many as its cores hold at `predict_threads` each."""
    if predict_gpus(device) == 0:
        return max(1, cores // predict_threads)
    gpu = global_resources.get("gpu")
    return max(1, int(getattr(gpu, "value", gpu) or 1))


def default_budget_mb(available_mb: int | None = None) -> int:
    """The mem_mb budget of a local run given none: a share of the memory available when it starts."""
    return int(BUDGET_SHARE * (available_memory_mb() if available_mb is None else available_mb))


def visible_gpus(environ=None, devices="/dev") -> int:
    """NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES, else /dev/nvidiaN), without importing torch."""
    return len(visible_gpu_ids(environ, devices))


def apply_local_budgets(global_resources: dict, runs_locally: bool) -> int | None:
    """Give a local run the budgets it was not given: `gpu` one per visible GPU (one without any), `mem_mb`
    90% of the memory available (printed). Returns the run's mem_mb budget (None on a cluster without one:
    each job gets its own allocation there)."""
    from snakemake.resources import Resource

    def given(name):
        resource = global_resources.get(name)
        return None if resource is None else resource.value

    if runs_locally and given("gpu") is None:
        global_resources["gpu"] = Resource("gpu", max(1, visible_gpus()))
    if given("mem_mb") is not None:
        return int(given("mem_mb"))
    if not runs_locally:
        return None
    budget = default_budget_mb()
    global_resources["mem_mb"] = Resource("mem_mb", budget)
    print(f"mem_mb budget: {budget} MB, 90% of the memory available to this run (the host's or its cgroup's); "
          "--resources mem_mb=M sets another", file=sys.stderr)
    return budget
