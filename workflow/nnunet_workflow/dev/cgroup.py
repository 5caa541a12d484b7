"""A cgroup (v1 memory controller, needs root) with a hard memory limit, for the benchmarks that run nnU-Net and
the workflow under a real limit: commands run inside it; its peak usage and what its processes held are read
back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..estimates.available_memory import MB, cgroup_limit_and_held_bytes

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
TIMEOUT_S = 3600


class Cgroup:
    """A cgroup v1 memory group with a hard limit; commands run inside it, its peak usage is read back."""

    def __init__(self, name: str, limit_bytes: int):
        if not (CGROUP_ROOT / "memory.limit_in_bytes").exists():
            sys.exit(f"needs the cgroup v1 memory controller at {CGROUP_ROOT} (and root)")
        self.path = CGROUP_ROOT / name
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        swap = self.path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limit_bytes))

    def run(self, command, cwd, env, log: Path) -> dict:
        """Run a command inside the group. Returns its exit, seconds, the group's peak usage as the
        kernel counts it (file cache included), the peak of what it held beyond droppable file cache
        (sampled every 0.1 s), and how many processes the command left behind (killed here)."""
        (self.path / "memory.max_usage_in_bytes").write_text("0")
        inside = ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "cgroup", *map(str, command)]
        held = []
        sampling = threading.Event()
        sampler = threading.Thread(target=self._sample, args=(held, sampling), daemon=True)
        started = time.perf_counter()
        with open(log, "w") as out:
            process = subprocess.Popen(inside, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            sampler.start()
            try:
                rc = process.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:  # a run that hangs after losing a worker counts as failed
                os.killpg(process.pid, 9)
                process.wait()
                rc = f"timeout {TIMEOUT_S} s"
        seconds = round(time.perf_counter() - started)
        sampling.set()
        sampler.join()
        return {"rc": rc, "seconds": seconds, "left_behind": self.kill_all(),
                "peak_mb": int((self.path / "memory.max_usage_in_bytes").read_text()) // MB,
                "held_peak_mb": max(held, default=0) // MB}

    def _sample(self, held: list, stop: threading.Event) -> None:
        while not stop.wait(0.1):
            held.append(cgroup_limit_and_held_bytes(1, self.path)[1] or 0)

    def processes(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]

    def kill_all(self) -> int:
        """SIGKILL every process still in the group (e.g. workers of a run whose main process died);
        returns how many there were."""
        left = self.processes()
        for _ in range(100):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        return len(left)

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # processes still leaving
                time.sleep(0.2)
