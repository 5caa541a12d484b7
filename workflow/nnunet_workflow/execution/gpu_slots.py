"""One GPU per predict job on a multi-GPU workstation: a job claims one free GPU of those visible to the run
(`CUDA_VISIBLE_DEVICES`, else `/dev/nvidiaN`) by holding an exclusive lock file per GPU in the results folder,
and its worker sees that GPU alone. Snakemake's `gpu` resource bounds how many predict jobs run at once; this
says which GPU each one takes. Under SLURM (a job id in the environment) the scheduler assigns the GPU."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.5


def visible_gpu_ids(environ=None, devices="/dev") -> list[str]:
    """The ids of the NVIDIA GPUs this process may use, without importing torch: CUDA_VISIBLE_DEVICES's
    entries (indices or UUIDs), else the indices of /dev/nvidiaN."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    found = [n[len("nvidia"):] for n in os.listdir(devices) if n.startswith("nvidia") and n[len("nvidia"):].isdigit()]
    return sorted(found, key=int)


def assigns_gpus(device: str, environ=None) -> bool:
    """Whether a predict job claims a GPU: the device is `auto` or `cuda` (not the CPU, MPS or a `cuda:N` the
    user chose) and no SLURM job has been given its GPU."""
    environ = os.environ if environ is None else environ
    return device in ("auto", "cuda") and "SLURM_JOB_ID" not in environ


@contextmanager
def claimed_gpu(folder, ids: list[str], timeout_s: float | None = None) -> Iterator[str | None]:
    """Hold the lock of the first free GPU of `ids` (waiting while all are taken) and yield its id; None when
    there is no GPU. The lock goes with the process, so a killed job frees its GPU."""
    if not ids:
        yield None
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for gpu in ids:
            handle = open(folder / f"{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                yield gpu
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {ids} after {timeout_s} s (locks in {folder})")
        time.sleep(POLL_S)


@contextmanager
def one_gpu_for_this_job(folder, device: str, environ=None) -> Iterator[str | None]:
    """Claim a GPU for this job when it assigns GPUs (see assigns_gpus) and show the job's workers only that
    one (CUDA_VISIBLE_DEVICES); yield its id, or None."""
    environ = os.environ if environ is None else environ
    if not assigns_gpus(device, environ):
        yield None
        return
    with claimed_gpu(folder, visible_gpu_ids(environ)) as gpu:
        if gpu is None:
            yield None
            return
        before = environ.get("CUDA_VISIBLE_DEVICES")
        environ["CUDA_VISIBLE_DEVICES"] = gpu
        try:
            yield gpu
        finally:
            if before is None:
                environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                environ["CUDA_VISIBLE_DEVICES"] = before
