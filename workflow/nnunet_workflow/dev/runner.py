"""Running the workflow from Python, as the end-to-end tests and the benchmarks do: the repository, the
venv's executables, and `snakemake --cores N --config ...` from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def snakemake_command(model, source, results, *extra, cores=2, **config) -> list[str]:
    settings = {"model": model, "input": source, "results": results, **config}
    return [str(BIN / "snakemake"), "--cores", str(cores), *map(str, extra), "--config",
            *(f"{key}={value}" for key, value in settings.items())]


def run_workflow(model, source, results, *extra, check=True, cores=2, **config) -> subprocess.CompletedProcess:
    """Run the workflow from the repository root; with `check`, fail with the tail of its output."""
    done = subprocess.run(snakemake_command(model, source, results, *extra, cores=cores, **config), cwd=REPO,
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done
