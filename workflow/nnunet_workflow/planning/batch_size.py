"""How many cases each batch job takes with `batch_size: auto`, from the number of cases to run and the slots
they run in. Every batch pays its jobs' start-up (a worker importing nnU-Net per stage, the model loaded once
in predict: ~3.5 s of the demo's predict job before its first case on 2 cores), so fewer, larger batches are
faster, until the CPU stages of one batch could run beside the prediction of another:

- locally, with no cores left beside the predict slots (2 cores, a predict job taking both): one batch per
  predict slot (measured, 24 demo cases on 2 cores: one batch in 57.0 and 58.9 s, three of 8 in 63.9 s);
- locally with cores to spare (a GPU workstation): three batches per predict slot, so that preprocessing and
  export of the others overlap each prediction, leaving only the first batch's preprocessing and the last
  one's export outside it;
- on a cluster, where every job also waits in the queue: one batch per job slot (`--jobs`), at least
  CLUSTER_MIN_BATCH cases each.
At most MAX_AUTO_BATCH cases per batch (progress is reported per batch, and a job's reservation is its largest
case's), except for a local run of many cases: there every job's start-up (a process, a worker importing
nnU-Net and torch: 3-4 s of CPU on 2 cores, the model's load) came to more wall time than the cases' own CPU
stages (600 demo-sized cases on 2 cores: 19 batches, 95 jobs), so a batch may hold up to cases / cores, never
more than MAX_LOCAL_BATCH: one batch per core, so that the CPU stages of different batches still fill the
cores, one job per core (120 demo-sized cases on 2 cores: 2 batches of 60 took 85.2 s, 4 of 32 109.7 s)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from .resources import predict_slots

AUTO = "auto"
MAX_AUTO_BATCH = 32
MAX_LOCAL_BATCH = 512
OVERLAP_BATCHES_PER_SLOT = 3
CLUSTER_MIN_BATCH = 8


def auto_batch_size(cases: int, predict_slots: int, cores: int, predict_threads: int, runs_locally: bool,
                    max_jobs: int | None = None) -> int:
    """Cases per batch for `cases` pending cases (see the module's docstring for the reasoning)."""
    if cases <= 0:
        return 1
    largest = MAX_AUTO_BATCH
    if runs_locally:
        spare_cores = cores - predict_slots * predict_threads
        batches = max(1, predict_slots) * (OVERLAP_BATCHES_PER_SLOT if spare_cores > 0 else 1)
        smallest = 1
        largest = min(MAX_LOCAL_BATCH, max(MAX_AUTO_BATCH, math.ceil(cases / max(1, cores))))
    else:
        batches, smallest = max(1, max_jobs or cases), CLUSTER_MIN_BATCH
    return max(1, min(largest, max(smallest, math.ceil(cases / batches))))


def run_batch_size(config: dict, global_resources: dict, cores: int | None, max_jobs: int | None,
                   runs_locally: bool) -> int | Callable[[int], int]:
    """The run's batch size: the configured number, or with `auto` the choice as a function of the number of
    pending cases (which the plan knows), from the run's predict slots, cores and job slots."""
    if config["batch_size"] != AUTO:
        return int(config["batch_size"])
    cores, threads = cores or 1, config["predict_threads"]  # a cluster run may give no cores: its jobs' count
    slots = predict_slots(global_resources, config["device"], cores, threads) if runs_locally else 1
    return partial(auto_batch_size, predict_slots=slots, cores=cores, predict_threads=threads,
                   runs_locally=runs_locally, max_jobs=max_jobs)
