"""Benchmark: dry-run planning time (`snakemake -n`) for 1,000 and 10,000 cases of tiny files.

Writes N two-channel 4x4x4 cases (symlinks to one pair of files, so writing 10,000 cases is quick),
then times `snakemake -n --cores 2` on each folder: case discovery, the plan, and Snakemake's DAG
(four jobs per batch of 8 cases, and the summary). Target: <= 30 s for 10,000 cases, growing linearly.

    python benchmarks/planning_scale.py [--counts 100 1000 10000] [--scratch DIR]
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.demo_model import prepare_demo


def write_cases(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*_0001.nii.gz"))) == count:
        return
    template = folder.parent / "template"
    template.mkdir(exist_ok=True)
    for channel in range(2):
        image = sitk.GetImageFromArray(np.full((4, 4, 4), 100 + channel, dtype=np.int16))
        sitk.WriteImage(image, str(template / f"t_{channel:04d}.nii.gz"))
    for index in range(count):
        for channel in range(2):
            link = folder / f"case_{index:05d}_{channel:04d}.nii.gz"
            if not link.exists():
                link.symlink_to(template / f"t_{channel:04d}.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "scale")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    model = prepare_demo(bench.REPO / ".demo")["model"]
    rows = []
    for count in args.counts:
        source = scratch / f"input_{count}"
        write_cases(source, count)
        command = [bench.BIN / "snakemake", "-n", "--cores", "2", "--quiet", "rules", "--config", f"model={model}",
                   f"input={source}", f"results={scratch / f'results_{count}'}"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=bench.REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        total = re.search(r"^total\s+(\d+)", done.stdout + done.stderr, re.MULTILINE)
        rows.append({"cases": count, "jobs": int(total[1]) if total else None, "seconds": round(seconds, 1),
                     "ms_per_case": round(1000 * seconds / count, 2)})
    print("snakemake -n (dry run: parse, plan, DAG), tiny cases")
    print(bench.format_table(rows))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        per_case = (last["seconds"] - first["seconds"]) / (last["cases"] - first["cases"])
        print(f"time ratio {last['seconds'] / first['seconds']:.1f} for {last['cases'] / first['cases']:.0f}x the "
              f"cases; {1000 * per_case:.2f} ms per additional case over a fixed {first['seconds']:.1f} s")


if __name__ == "__main__":
    main()
