"""Benchmark: wall time of the workflow against nnUNetv2_predict on the same cases, model, device and cores.

Writes N demo-like cases (the demo's generator, training-sized geometries at ~1 mm, 2 channels), then
runs, one after the other on this machine:
  1. `nnUNetv2_predict_from_modelfolder -i IN -o OUT -m DEMO_MODEL -f 0 -device cpu` (its defaults),
  2. `snakemake --cores C` with the same model and options (a fresh results folder),
and prints both wall times, their ratio, the number of model loads, and whether the outputs are equal.
Target on a CPU machine: ratio <= 1.1 for 20+ cases.

    python benchmarks/throughput.py [--cases 24] [--cores 2] [--tta | --no-tta] [--scratch DIR]
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench, demo_data
from nnunet_workflow.dev.demo_model import prepare_demo


def write_cases(folder: Path, count: int) -> list[str]:
    names = [f"case_{i:03d}" for i in range(count)]
    for index, name in enumerate(names):
        if not (folder / f"{name}_0001.nii.gz").exists():
            seed = [4242, index]
            geometry = demo_data.training_geometry(np.random.default_rng(seed), large=index % 3 == 2)
            demo_data.write_case(name, geometry, seed + [1], folder, folder.parent / "labels" / f"{name}.nii.gz")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "throughput")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    model = prepare_demo(bench.REPO / ".demo")["model"]
    source = scratch / f"input_{args.cases}"
    names = write_cases(source, args.cases)

    reference, ours = scratch / "nnunet", scratch / "workflow"
    for folder in (reference, ours):
        shutil.rmtree(folder, ignore_errors=True)
    env = bench.environment(nnUNet_raw=scratch, nnUNet_preprocessed=scratch, nnUNet_results=scratch)
    command = [bench.BIN / "nnUNetv2_predict_from_modelfolder", "-i", source, "-o", reference, "-m", model,
               "-f", "0", "-device", "cpu", *([] if args.tta else ["--disable_tta"])]
    nnunet = bench.run_measured(command, env=env)
    if nnunet["rc"] != 0:
        sys.exit(nnunet["stderr"][-3000:])
    started = time.perf_counter()
    bench.run_workflow(model, source, ours, cores=args.cores, tta=str(args.tta).lower(), device="cpu")
    workflow_seconds = time.perf_counter() - started

    batches = [json.loads(p.read_text()) for p in (ours / "work").glob("batches/*.predict.json")]
    loads = sum(b.get("model_loads", 0) for b in batches)
    import SimpleITK as sitk

    equal = all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(ours / f"{n}.nii.gz"))),
                               sitk.GetArrayFromImage(sitk.ReadImage(str(reference / f"{n}.nii.gz"))))
                for n in names)
    rows = [{"run": "nnUNetv2_predict (defaults)", "seconds": round(nnunet["seconds"], 1), "model_loads": 1},
            {"run": f"workflow (snakemake --cores {args.cores})", "seconds": round(workflow_seconds, 1),
             "model_loads": loads, "batches": len(batches)}]
    print(f"{args.cases} cases, demo model, CPU, tta={args.tta}, {args.cores} cores")
    print(bench.format_table(rows, ["run", "seconds", "model_loads", "batches"]))
    print(f"ratio workflow / nnUNetv2_predict: {workflow_seconds / nnunet['seconds']:.2f}")
    print(f"outputs identical: {equal}")
    stage_seconds = bench.stage_seconds(ours)
    print("workflow time per stage, summed over cases (s): "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in stage_seconds.items()))


if __name__ == "__main__":
    main()
