"""Benchmark: wall time of the workflow against nnUNetv2_predict on the same cases, model, device and cores.

Writes N demo-like cases (the demo's generator, training-sized geometries at ~1 mm, 2 channels), then
runs, one after the other on this machine:
  1. `nnUNetv2_predict_from_modelfolder -i IN -o OUT -m MODEL -f 0 -device D` (its defaults),
  2. `snakemake --cores C` with the same model and options (a fresh results folder; statistics off unless
     --statistics, as nnUNetv2_predict computes none),
and prints both wall times, their ratio, the number of model loads, whether the outputs are equal, the time
per stage, how busy the predict slot was (the share of the workflow's wall time its predict workers spent
predicting: the figure that matters on a GPU), the host peak per stage and, on a GPU, the device peak
(per case from the predict records, and for both runs from nvidia-smi sampled every 0.5 s) and the ratio of
each case's recorded peak to its estimate (gpu_memory), the estimate's calibration.
Target on a CPU machine: ratio <= 1.1 for 20+ cases.

    python benchmarks/throughput.py [--cases 24] [--cores 2] [--tta | --no-tta] [--scratch DIR]
    python benchmarks/throughput.py --demo-copies --cases 600 --no-tta [--statistics]   # many small cases
    python benchmarks/throughput.py --device cuda --cores 8 [--model DIR]   # on a GPU machine
"""

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench, demo_data
from nnunet_workflow.dev.demo_model import prepare_demo


def copy_demo_cases(folder: Path, count: int) -> list[str]:
    """`count` cases that are the demo's cases copied under new names (a cohort of many small cases)."""
    demo_input = prepare_demo(bench.REPO / ".demo")["input"]
    originals = sorted({path.name.rsplit("_", 1)[0] for path in demo_input.glob("*_0000.nii.gz")})
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"copy_{i:04d}" for i in range(count)]
    for index, name in enumerate(names):
        for channel in sorted(demo_input.glob(f"{originals[index % len(originals)]}_*.nii.gz")):
            target = folder / f"{name}_{channel.name.rsplit('_', 1)[1]}"
            if not target.exists():
                shutil.copy(channel, target)
    return names


def write_cases(folder: Path, count: int) -> list[str]:
    names = [f"case_{i:03d}" for i in range(count)]
    for index, name in enumerate(names):
        if not (folder / f"{name}_0001.nii.gz").exists():
            seed = [4242, index]
            geometry = demo_data.training_geometry(np.random.default_rng(seed), large=index % 3 == 2)
            demo_data.write_case(name, geometry, seed + [1], folder, folder.parent / "labels" / f"{name}.nii.gz")
    return names


@contextmanager
def gpu_memory_sampler():
    """Yield a dict whose "peak_mb" becomes the most GPU memory in use (all GPUs, nvidia-smi) while the block
    ran; None without nvidia-smi."""
    found = {"peak_mb": None}
    if shutil.which("nvidia-smi") is None:
        yield found
        return
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            done = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True)
            used = sum(int(v) for v in done.stdout.split() if v.strip().isdigit())
            found["peak_mb"] = max(found["peak_mb"] or 0, used)
            stop.wait(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


def workflow_figures(results: Path, wall_seconds: float) -> dict:
    """From the workflow's summary: the predict slot's busy share, host peak per stage, device peak per case."""
    import pandas as pd

    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    stages = [c.removesuffix("_peak_mb") for c in summary.columns if c.endswith("_peak_mb") and "gpu" not in c]
    gpu = summary["predict_gpu_peak_mb"].max() if "predict_gpu_peak_mb" in summary else None
    return {"predict_busy": float(summary["predict_seconds"].sum()) / wall_seconds,
            "host_peak_mb": {stage: summary[f"{stage}_peak_mb"].max() for stage in stages},
            "gpu_peak_mb_per_case": None if gpu is None or pd.isna(gpu) else float(gpu),
            "gpu_estimate_ratios": gpu_estimate_ratios(summary)}


def gpu_estimate_ratios(summary) -> list[float]:
    """Per case, the GPU peak predict recorded (torch's reserved) over its estimate (gpu_memory's
    predict_gpu_reserved_mb for the way the logits were kept): the calibration of the estimate; [] on a CPU."""
    import pandas as pd

    if "predict_gpu_estimate_mb" not in summary:
        return []
    peak = pd.to_numeric(summary["predict_gpu_peak_mb"], errors="coerce")
    estimate = pd.to_numeric(summary["predict_gpu_estimate_mb"], errors="coerce")
    return [float(r) for r in (peak / estimate).dropna()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, for both runs")
    parser.add_argument("--model", type=Path, help="a trained-model folder with fold_0 (default: the demo's)")
    parser.add_argument("--statistics", action="store_true", help="the workflow's statistics stage on too")
    parser.add_argument("--demo-copies", action="store_true",
                        help="the cases are the demo's copied under new names (a cohort of many small cases: "
                             "e.g. --cases 600 --no-tta)")
    parser.add_argument("--batch-size", default="auto",
                        help="the workflow's batch_size: a number, or auto (its default)")
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "throughput")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    model = args.model.resolve() if args.model else prepare_demo(bench.REPO / ".demo")["model"]
    if args.demo_copies:
        source = scratch / f"demo_copies_{args.cases}"
        names = copy_demo_cases(source, args.cases)
    else:
        source = scratch / f"input_{args.cases}"
        names = write_cases(source, args.cases)

    reference, ours = scratch / "nnunet", scratch / "workflow"
    for folder in (reference, ours):
        shutil.rmtree(folder, ignore_errors=True)
    env = bench.environment(nnUNet_raw=scratch, nnUNet_preprocessed=scratch, nnUNet_results=scratch)
    device = args.device.split(":")[0]
    command = [bench.BIN / "nnUNetv2_predict_from_modelfolder", "-i", source, "-o", reference, "-m", model,
               "-f", "0", "-device", device, *([] if args.tta else ["--disable_tta"])]
    # nnUNetv2_predict takes -device cuda and uses GPU 0 of those visible; the workflow the one it claims
    env_gpu = {"CUDA_VISIBLE_DEVICES": args.device.split(":")[1]} if ":" in args.device else {}
    with gpu_memory_sampler() as nnunet_gpu:
        nnunet = bench.run_measured(command, env={**env, **env_gpu})
    if nnunet["rc"] != 0:
        sys.exit(nnunet["stderr"][-3000:])
    started = time.perf_counter()
    with gpu_memory_sampler() as workflow_gpu:
        bench.run_workflow(model, source, ours, cores=args.cores, tta=str(args.tta).lower(), device=args.device,
                           statistics=str(args.statistics).lower(), batch_size=args.batch_size)
    workflow_seconds = time.perf_counter() - started

    batches = [json.loads(p.read_text()) for p in (ours / "work").glob("batches/*.predict.json")]
    loads = sum(b.get("model_loads", 0) for b in batches)
    import SimpleITK as sitk

    equal = all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(ours / f"{n}.nii.gz"))),
                               sitk.GetArrayFromImage(sitk.ReadImage(str(reference / f"{n}.nii.gz"))))
                for n in names)
    figures = workflow_figures(ours, workflow_seconds)
    rows = [{"run": "nnUNetv2_predict (defaults)", "seconds": round(nnunet["seconds"], 1), "model_loads": 1,
             "host_peak_mb": nnunet["peak_mb"], "gpu_peak_mb": nnunet_gpu["peak_mb"]},
            {"run": f"workflow (snakemake --cores {args.cores})", "seconds": round(workflow_seconds, 1),
             "model_loads": loads, "batches": len(batches),
             "host_peak_mb": max(figures["host_peak_mb"].values()), "gpu_peak_mb": workflow_gpu["peak_mb"]}]
    print(f"{args.cases} cases, model {model.name}, device {args.device}, tta={args.tta}, {args.cores} cores, "
          f"statistics {'on' if args.statistics else 'off'}, batch_size {args.batch_size} "
          f"(largest batch: {max((len(b['cases']) for b in batches), default=0)} cases)")
    print(bench.format_table(rows, ["run", "seconds", "model_loads", "batches", "host_peak_mb", "gpu_peak_mb"]))
    print(f"ratio workflow / nnUNetv2_predict: {workflow_seconds / nnunet['seconds']:.2f}")
    print(f"outputs identical: {equal}")
    stage_seconds = bench.stage_seconds(ours)
    print("workflow time per stage, summed over cases (s): "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in stage_seconds.items()))
    print("workflow host peak per stage (MB, largest case): "
          + ", ".join(f"{stage} {peak:.0f}" for stage, peak in figures["host_peak_mb"].items()))
    print(f"predict slot busy: {figures['predict_busy']:.0%} of the workflow's wall time"
          + ("" if figures["gpu_peak_mb_per_case"] is None
             else f"; largest case's GPU peak (torch's allocator): {figures['gpu_peak_mb_per_case']:.0f} MB"))
    ratios = figures["gpu_estimate_ratios"]
    if ratios:
        print(f"GPU peak / estimate (gpu_memory.predict_gpu_reserved_mb) over {len(ratios)} cases: median "
              f"{np.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f} (above 1: the estimate is short)")


if __name__ == "__main__":
    main()
