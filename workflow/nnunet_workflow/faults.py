"""Test-only faults: the config's `faults: {case: "stage:action"}` makes that case's worker SIGKILL
itself, run out of memory, stall until killed or raise in that stage. A fault is carried by the case's
job and applied by a wrapper around the stage's handler, so no stage knows about faults."""

from __future__ import annotations

import os
import signal
import time

FAULT_ACTIONS = ("kill", "oom", "stall", "raise")


def fault_for(faults: dict, case: str, stage: str) -> str | None:
    """The action configured for this case and stage, or None."""
    fault_stage, _, action = faults.get(case, "").partition(":")
    return action if fault_stage == stage else None


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


def with_faults(handle):
    """`handle(state, job)` that first injects the job's fault, if it has one."""

    def handle_with_faults(state, job):
        if getattr(job, "fault", None):
            inject_fault(job.fault)
        return handle(state, job)

    return handle_with_faults
