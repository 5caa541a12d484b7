"""The resource policy: what each job reserves (`mem_mb`, `runtime`, `gpu`) and the run's budgets.

A batch job runs its cases one at a time, so it reserves its largest case's need: the stage's estimate
from the case's validate record (validate's own from the channel files) plus the job around the worker,
at least what an earlier attempt that ran out of memory measured (the plan's floor), never more than the
largest job allowed. Its runtime is the sum of its cases' timeouts. The rules call this module in one
line per directive; a stage's own figures are its line in estimates/stage_needs.
"""

from __future__ import annotations

import sys

from ..estimates.available_memory import available_memory_mb
from ..estimates.host_memory import slab_threads
from ..estimates.stage_needs import estimated_mb, estimated_s
from ..execution.gpu_slots import visible_gpu_ids
from ..inputs.cases import Case
from ..store import stage_names
from ..store.manifest import BatchManifest
from ..store.records import StageRecord
from .pipeline import stage_resources
from .plan import RunPlan

# Memory of a job around its stage worker: the rule's script process, and on a cluster also the
# Snakemake process that runs the job (SLURM counts them all against --mem; a validate job of the
# demo was killed at 269 MB of 251 MB reserved before this was added).
LOCAL_JOB_OVERHEAD_MB = 100
CLUSTER_JOB_OVERHEAD_MB = 400
# Share of the available memory a local run without `--resources mem_mb=` allows itself.
BUDGET_SHARE = 0.9
# Minutes a cluster job gets beyond its cases' timeouts, for the job around them.
JOB_SLACK_MIN = 5


def runtime_minutes(seconds: float) -> int:
    """Cluster wall-time limit: the stage's own timeouts plus a few minutes for the job around them."""
    return -(-int(seconds) // 60) + JOB_SLACK_MIN


class ResourcePolicy:
    """The reservations of one run's jobs, from its plan and cases."""

    def __init__(self, plan: RunPlan, cases: dict[str, Case], runs_locally: bool, export_threads: int = 1,
                 dry_run: bool = False, preprocess_threads: int = 1):
        self.plan, self.cases, self.dry_run = plan, cases, dry_run
        self.wanted_export_threads, self.wanted_preprocess_threads = export_threads, preprocess_threads
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
            stage_name = stage_names.with_member(stage, wildcards)
            validated = self._validated(stage_name, input)
            line = stage_resources(stage_name)
            return max(self.reserved_mb(stage_name, case,
                                        estimated_mb(stage_name, line, self.cases[case], validated.get(case)))
                       for case in self.plan.batches[wildcards.batch])

        return largest

    def threads(self, stage: str):
        """A `threads` function for a preprocess or export rule: the threads for the batch's largest case (one per
        slab, at most the run's `preprocess_threads` or `export_threads`: estimates/host_memory.slab_threads)."""

        def count(wildcards, input) -> int:
            stage_name = stage_names.with_member(stage, wildcards)
            preprocessing = stage_names.kind(stage_name) == "preprocess"
            wanted = self.wanted_preprocess_threads if preprocessing else self.wanted_export_threads
            try:
                validated = self._validated(stage_name, input)
            except FileNotFoundError:
                # not validated yet: Snakemake asks again once it is, except in a dry run, which shows the most
                if self.dry_run:
                    return wanted
                raise
            return max((slab_threads(record.estimates.voxels, wanted) if record is not None else 1)
                       for record in (validated.get(case) for case in self.plan.batches[wildcards.batch]))

        return count

    def runtime(self, stage: str):
        """A `runtime` (minutes) function for a stage's rule: the worker's start plus the cases' timeouts."""

        def total(wildcards, input) -> int:
            stage_name = stage_names.with_member(stage, wildcards)
            validated = self._validated(stage_name, input)
            cases = self.plan.batches[wildcards.batch]
            line = stage_resources(stage_name)
            return runtime_minutes(line.setup_s + sum(
                estimated_s(stage_name, line, self.cases[case], validated.get(case)) for case in cases))

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


def apply_local_budgets(global_resources: dict, runs_locally: bool) -> int | None:
    """Give a local run the budgets it was not given: `gpu` one per visible GPU (one without any), `mem_mb`
    90% of the memory available (printed). Returns the run's mem_mb budget (None on a cluster without one:
    each job gets its own allocation there)."""
    from snakemake.resources import Resource

    def given(name):
        resource = global_resources.get(name)
        return None if resource is None else resource.value

    if runs_locally and given("gpu") is None:
        global_resources["gpu"] = Resource("gpu", max(1, len(visible_gpu_ids())))
    if given("mem_mb") is not None:
        return int(given("mem_mb"))
    if not runs_locally:
        return None
    budget = default_budget_mb()
    global_resources["mem_mb"] = Resource("mem_mb", budget)
    print(f"mem_mb budget: {budget} MB, 90% of the memory available to this run (the host's or its cgroup's); "
          "--resources mem_mb=M sets another", file=sys.stderr)
    return budget
