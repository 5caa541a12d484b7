"""Progress a person can read while a long run goes on: cases done, failed and left of this run's plan, and
an estimate of the time left, written to `{results}/progress.txt` and printed each time a batch job of the
run's last stage finishes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ..store.atomic_files import atomic_path
from ..store.layout import Layout
from ..planning.plan import RunPlan
from ..store.records import DONE, StageRecord


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    left: int
    finished_before: int  # cases finished by earlier runs (not in this run's plan)
    elapsed_s: float

    @property
    def remaining_s(self) -> float | None:
        """Time left at the pace so far (None before the first case is through)."""
        through = self.done + self.failed
        return None if through == 0 else self.elapsed_s / through * self.left

    def line(self) -> str:
        total = self.done + self.failed + self.left
        remaining = self.remaining_s
        eta = "" if remaining is None or not self.left else f", about {_duration(remaining)} left"
        before = f" ({self.finished_before} finished by earlier runs)" if self.finished_before else ""
        return (f"progress: {self.done + self.failed} of {total} cases through: {self.done} done, "
                f"{self.failed} failed, {self.left} left{before}; {_duration(self.elapsed_s)} so far{eta}")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{round(seconds)} s" if seconds < 90 else f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def measure(layout: Layout, plan: RunPlan, last_stage: str, now: float | None = None) -> Progress:
    """Where this run's pending cases stand: a case is through when its record of the run's last stage is
    there (done, or failed or skipped after an earlier stage failed). The run started when its plan was saved."""
    done = failed = left = 0
    for case in plan.pending:
        record = StageRecord.load_if_present(layout.record(last_stage, case, plan.attempts[case]))
        if record is None:
            left += 1
        elif record.status == DONE:
            done += 1
        else:
            failed += 1
    started = layout.plan().stat().st_mtime if layout.plan().exists() else (now or time.time())
    elapsed = max(0.0, (now or time.time()) - started)
    return Progress(done, failed, left, len(plan.attempts) - len(plan.pending), elapsed)


def report_progress(layout: Layout, last_stage: str) -> Progress | None:
    """Write `progress.txt` and print its line (to stderr: the terminal of a local run, a cluster job's log);
    None when the run has no saved plan."""
    if not layout.plan().exists():
        return None
    progress = measure(layout, RunPlan.load(layout.plan()), last_stage)
    with atomic_path(layout.progress(), suffix=".txt") as temp:
        temp.write_text(progress.line() + "\n")
    print(progress.line(), file=sys.stderr, flush=True)
    return progress
