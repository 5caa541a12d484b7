"""Test-only faults: the config's `faults: {case: "stage:action"}` makes that case's worker SIGKILL
itself, run out of memory, stall until killed or raise in that stage, or (predict) run out of GPU memory
while its logits are on the device; or breaks the batch's own bookkeeping of the case (`log_path`: its log
cannot be created; `record_write`: its record cannot be written). The batch runner is given the faults of its
stage's cases and applies them by a wrapper around the stage's handler and around the case's job, so neither
the stages nor their jobs know about faults."""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import fields, replace
from pathlib import Path

from .job import CaseJob

# faults of the batch's bookkeeping of a case, applied to its job (the others run in the worker)
BOOKKEEPING = ("log_path", "record_write")


class _UnrecordableJob(CaseJob):
    """A case job whose records the filesystem refuses (as it would a name too long for it)."""

    def save(self, record) -> None:
        raise OSError(errno.ENAMETOOLONG, "File name too long (injected fault)", str(self.record_path(record.stage)))


def with_bookkeeping_faults(jobs: dict[str, CaseJob], faults: dict[str, str] | None) -> dict[str, CaseJob]:
    """The batch's jobs, those of cases with a bookkeeping fault broken accordingly."""
    broken = dict(jobs)
    for case, action in (faults or {}).items():
        job = jobs.get(case)
        if job is None or action not in BOOKKEEPING:
            continue
        print(f"injecting fault {action!r} for {case}", flush=True)
        if action == "log_path":
            too_long = "x" * 300 + ".log"
            broken[case] = replace(job, log_path=str(Path(job.log_path or job.layout.results).parent / too_long))
        else:
            broken[case] = _UnrecordableJob(**{f.name: getattr(job, f.name) for f in fields(job)})
    return broken


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (same name, so classified as gpu_out_of_memory)."""


class OutOfMemoryOnDevice:
    """A predictor that keeps everything on the device (`perform_everything_on_device`, as nnU-Net's does on a
    GPU, even where it predicts on the CPU) and runs out of GPU memory there; once told to keep its results in
    host memory, it predicts as the predictor it wraps."""

    def __init__(self, predictor):
        object.__setattr__(self, "_predictor", predictor)
        object.__setattr__(self, "perform_everything_on_device", True)

    def __getattr__(self, name):
        return getattr(self._predictor, name)

    def __setattr__(self, name, value):
        if name == "perform_everything_on_device":
            object.__setattr__(self, name, value)
        setattr(self._predictor, name, value)

    def predict_logits_from_preprocessed_data(self, data):
        if self.perform_everything_on_device:
            print("injecting fault 'gpu_oom'", flush=True)
            raise OutOfMemoryError("CUDA out of memory (injected fault)")
        return self._predictor.predict_logits_from_preprocessed_data(data)


def faults_for(faults: dict, stage: str) -> dict[str, str]:
    """{case: action} of the config's faults (`{case: "stage:action"}`) in this stage."""
    chosen = {case: fault.partition(":") for case, fault in faults.items()}
    return {case: action for case, (fault_stage, _, action) in chosen.items() if fault_stage == stage}


def inject_fault(fault: str) -> None:
    """SIGKILL this process, exhaust its memory (MemoryError), stall until killed (the stage's timeout or a
    test ends it), or raise an error."""
    print(f"injecting fault {fault!r}", flush=True)
    if fault == "stall":
        while True:
            time.sleep(60)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "oom":
        import resource

        with open("/proc/self/statm") as statm:
            address_space = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limits = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (address_space + 512 * 1024 * 1024, limits[1]))
        hog = []
        try:
            while True:
                hog.append(b"\1" * (64 * 1024 * 1024))
        finally:
            hog.clear()
            resource.setrlimit(resource.RLIMIT_AS, limits)
    raise RuntimeError("injected fault")


def with_faults(handle, faults: dict[str, str] | None = None):
    """`handle(state, job)` that first injects the fault of the job's case (`faults`: {case: action}), if any."""
    faults = {case: action for case, action in (faults or {}).items() if action not in BOOKKEEPING}
    if not faults:
        return handle

    def handle_with_faults(state, job):
        fault = faults.get(job.id)
        if fault == "gpu_oom":
            return handle(OutOfMemoryOnDevice(state), job)
        if fault:
            inject_fault(fault)
        return handle(state, job)

    return handle_with_faults
