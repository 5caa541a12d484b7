"""Benchmark: "Background workers died" under a real memory cap, and the workflow finishing the same cases.

Under a cgroup (v1 memory controller, needs root) capped at --limit-gb, runs on the same CT-sized cases
(default 4 x 512x512x300 int16 at 0.7x0.7x2.5 mm, 2 channels, a 3-class model with target spacing
4 mm; random weights):
  1. `nnUNetv2_predict_from_modelfolder` with its defaults (-npp 3 -nps 3),
  2. the same with `-npp 1 -nps 1`,
  3. this workflow, `snakemake --cores 2`, given no budget (it derives one from the cgroup's limit),
  4. with --budget-mb N, also this workflow given `--resources mem_mb=N`,
and an uncapped `nnUNetv2_predict_from_modelfolder` as the reference. Prints for each: cases finished
and failed, the error text, wall time, the cgroup's peak memory (as the kernel counts it, file cache
included: it fills up to the cap in any long run) and the peak of what the run's processes held
beyond droppable file cache, and how many processes the run left behind in the cgroup (hung workers;
killed before the next run); then whether the workflow's outputs equal the uncapped reference voxel
for voxel.

    sudo python benchmarks/oom_cgroup.py [--limit-gb 6.5] [--budget-mb N] [--cases 4] [--scratch DIR]
"""

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.cgroup import Cgroup
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, write_image_case

TARGET_SPACING = (4.0, 4.0, 4.0)
SIZE, SPACING = (512, 512, 300), (0.7, 0.7, 2.5)
ERROR_MARKERS = ("Background workers died", "RuntimeError", "MemoryError", "Killed", "out of memory")


def first_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    for marker in ERROR_MARKERS:
        for line in lines:
            if marker in line:
                return line.strip()[:140]
    return ""


def outputs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.nii.gz")) if folder.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-gb", type=float, default=6.5)
    parser.add_argument("--budget-mb", type=int, help="also run the workflow with --resources mem_mb=N")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "oom")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    demo = prepare_demo(bench.REPO / ".demo")
    model = build_random_model(demo["model"], scratch / "model", 3, TARGET_SPACING)
    source = scratch / "input"
    names = [f"ct_{i:02d}" for i in range(args.cases)]
    for index, name in enumerate(names):
        if not (source / f"{name}_0001.nii.gz").exists():
            write_image_case(source, name, SIZE, SPACING, channels=2, seed=index)
    env = bench.environment(nnUNet_raw=scratch, nnUNet_preprocessed=scratch, nnUNet_results=scratch)
    predict = [bench.BIN / "nnUNetv2_predict_from_modelfolder", "-i", source, "-m", model, "-f", "0",
               "-device", "cpu", "--disable_tta"]

    reference = scratch / "reference"
    if len(outputs(reference)) < len(names):
        shutil.rmtree(reference, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([*predict, "-o", reference], env=env, check=True, capture_output=True)
        print(f"uncapped reference: {time.perf_counter() - started:.0f} s", flush=True)

    limit = int(args.limit_gb * 1024**3)
    group = Cgroup(f"nnunet_bench_{os.getpid()}", limit)
    rows = []
    try:
        runs = [("nnUNetv2_predict (defaults)", predict, "nnunet_default"),
                ("nnUNetv2_predict -npp 1 -nps 1", [*predict, "-npp", "1", "-nps", "1"], "nnunet_npp1"),
                ("workflow (snakemake --cores 2)", None, "workflow")]
        if args.budget_mb:
            runs.append((f"workflow, --resources mem_mb={args.budget_mb}", ["--resources", f"mem_mb={args.budget_mb}"],
                         "workflow_budget"))
        for label, command, name in runs:
            out = scratch / name
            shutil.rmtree(out, ignore_errors=True)
            log = scratch / f"{name}.log"
            if name.startswith("workflow"):
                command = [bench.BIN / "snakemake", "--cores", "2", *(command or []), "--config", f"model={model}",
                           f"input={source}", f"results={out}", "tta=false"]
                run = group.run(command, bench.REPO, env, log)
            else:
                run = group.run([*command, "-o", out], scratch, env, log)
            finished = [p for p in outputs(out) if (reference / p.name).exists()]
            rows.append({"run": label, "limit_gb": args.limit_gb, "exit": run["rc"], "finished": len(finished),
                         "failed": len(names) - len(finished), "seconds": run["seconds"],
                         "peak_mb": run["peak_mb"], "held_peak_mb": run["held_peak_mb"],
                         "left_behind": run["left_behind"], "error": first_error(log)})
            print(f"{label}: exit {run['rc']}, {len(finished)}/{len(names)} finished", flush=True)
    finally:
        group.remove()

    print(f"\n{len(names)} cases {SIZE[0]}x{SIZE[1]}x{SIZE[2]} at {SPACING} mm, 2 channels int16; "
          f"3-class model, target spacing {TARGET_SPACING} mm; cgroup limit {args.limit_gb} GB")
    print(bench.format_table(rows))
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    for label, _, name in runs[2:]:
        workflow_outputs = outputs(scratch / name)
        identical = len(workflow_outputs) == len(names) and all(
            np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(p))),
                           sitk.GetArrayFromImage(sitk.ReadImage(str(reference / p.name))))
            for p in workflow_outputs)
        print(f"\n{label}: outputs identical to the uncapped nnUNetv2_predict: {identical} "
              f"({len(workflow_outputs)} of {len(names)} cases)")
        budget = [line for line in (scratch / f"{name}.log").read_text().splitlines() if "mem_mb budget" in line]
        print("\n".join(budget))
        summary = scratch / name / "summary.tsv"
        if summary.exists():
            table = pd.read_csv(summary, sep="\t")
            columns = ["case", "status", "message"] + [c for c in table.columns if c.endswith("_peak_mb")]
            print(table[columns].to_string(index=False, na_rep=""))


if __name__ == "__main__":
    main()
