"""Helpers shared by the scripts in `benchmarks/`: run the workflow, read what its jobs measured, peak
memory of a command, ratio statistics and plain-text tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..estimates import host_memory
from ..nnunet.model import load_model
from ..store import stage_names
from ..store.layout import WORK, Layout
from ..store.records import StageRecord
from . import runner
from .runner import BIN, REPO  # noqa: F401 (the benchmarks use bench.REPO)

# the stages whose workers' peaks the memory model estimates (validate's is a fixed base)
STAGES = stage_names.MODEL_CHAIN


def run_workflow(model, source, results, cores=2, extra=(), **config) -> float:
    """Run `snakemake --cores N --config ...` from the repository root; return its wall time (s)."""
    started = time.perf_counter()
    runner.run_workflow(model, source, results, *extra, cores=cores, **config)
    return time.perf_counter() - started


def last_attempt(layout: Layout, case: str) -> str | None:
    numbers = layout.attempt_numbers(case)
    return f"a{numbers[-1]}" if numbers else None


def stage_memory(results, model_folder, save_probabilities=False) -> list[dict]:
    """Per case and stage of a finished run: the estimate the current memory model gives (recomputed
    from the geometry validate recorded) and the peak RSS the stage's worker reached."""
    layout = Layout(results)
    model = load_model(model_folder)
    rows = []
    for case_dir in sorted(p for p in (layout.results / WORK).iterdir() if p.is_dir()):
        case = case_dir.name
        attempt = last_attempt(layout, case)
        validated = StageRecord.load_if_present(layout.record("validate", case, attempt)) if attempt else None
        if not validated or "geometry" not in validated.details:
            continue
        geometry = validated.details["geometry"]
        estimates = host_memory.stage_estimates(geometry["shape_nnunet"], geometry["spacing_nnunet"],
                                           geometry["channels"], geometry["bytes_per_voxel"], model,
                                           save_probabilities)
        for stage in STAGES:
            record = StageRecord.load_if_present(layout.record(stage, case, attempt))
            if record is None or not record.done:
                continue
            rows.append({"case": case, "classes": model.num_classes, "stage": stage,
                         "voxels": estimates.voxels, "voxels_resampled": estimates.voxels_resampled["predict"],
                         "separate_z": estimates.separate_z, "estimate_mb": estimates.memory_mb[stage],
                         "measured_mb": record.peak_rss_mb, "seconds": record.seconds})
    for row in rows:
        row["ratio"] = round(row["estimate_mb"] / row["measured_mb"], 2) if row["measured_mb"] else None
    return rows


def ratio_summary(rows) -> list[dict]:
    """Per stage and overall: how many estimates fall under the measurement, and the ratio's spread."""
    groups = {stage: [r["ratio"] for r in rows if r["stage"] == stage and r["ratio"]] for stage in STAGES}
    groups["all"] = [r["ratio"] for r in rows if r["ratio"]]
    return [{"stage": stage, "n": len(ratios), "under": sum(r < 1 for r in ratios),
             "min": min(ratios, default=None), "median": round(statistics.median(ratios), 3) if ratios else None,
             "max": max(ratios, default=None)} for stage, ratios in groups.items()]


def format_table(rows, columns=None) -> str:
    """A fixed-width text table of dicts (the columns of the first row unless given)."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    cells = [[str(c) for c in columns]] + [["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_measured(command, env=None, cwd=None, log=None) -> dict:
    """Run a command; return its exit code, wall time and the peak RSS of its largest process (MB),
    from the kernel's accounting of the waited-for process tree (RUSAGE_CHILDREN of a fresh shell)."""
    probe = ("import resource, subprocess, sys, json; "
             "rc = subprocess.run(sys.argv[1:]).returncode; "
             "print(json.dumps({'rc': rc, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}),"
             " file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *map(str, command)], env=env, cwd=cwd,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if log:
        Path(log).write_text(done.stdout + done.stderr)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "{}"
    try:
        measured = json.loads(last)
    except ValueError:
        measured = {"rc": done.returncode, "maxrss_kb": None}
    peak = measured.get("maxrss_kb")
    return {"rc": measured.get("rc", done.returncode), "seconds": round(seconds, 1),
            "peak_mb": round(peak / 1024) if peak else None, "stdout": done.stdout, "stderr": done.stderr}


def environment(**extra) -> dict:
    """This process's environment with the venv's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def stage_seconds(results) -> dict:
    """Seconds each stage's workers ran, summed over the cases of a run's summary (predict: per case)."""
    import pandas as pd

    table = pd.read_csv(Path(results) / "summary.tsv", sep="\t")
    return {stage: float(table[f"{stage}_seconds"].fillna(0).sum())
            for stage in ("validate", *STAGES) if f"{stage}_seconds" in table}
