"""Benchmark: peak memory of a 2-member ensemble of one CT-sized case, nnU-Net's route against the workflow's.

nnU-Net's route is what nnUNetv2_find_best_configuration's inference instructions say: nnUNetv2_predict
--save_probabilities for each member, then nnUNetv2_ensemble (each command's largest process measured).
The workflow runs the same members as `model=[A,B]`; its figure is the largest peak of any stage's worker
(from the summary) and of any process of the whole run. Both ensembles must be identical voxel for voxel.
The members are random-weight models made from the demo's real plans (a 3d_fullres and a coarser
3d_lowres, both on coarse grids so that predicting on the CPU stays short); memory of the probabilities,
which is what differs, depends on the case's full-resolution size and the classes only.

    python benchmarks/ensemble_memory.py [--classes 3] [--size 512 512 300] [--scratch DIR]
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, write_image_case

SPACING = (0.7, 0.7, 2.5)  # x, y, z
FULLRES = {"spacing": [5.0, 3.0, 3.0]}
LOWRES = {"inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_lowres", "spacing": [6.0, 4.0, 4.0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), metavar=("X", "Y", "Z"))
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "ensemble")
    args = parser.parse_args()

    demo = prepare_demo(bench.REPO / ".demo")
    root = args.scratch / "nnUNet_results" / "Dataset991_EnsembleMemory"
    fullres = build_random_model(demo["model"], root, num_classes=args.classes, seed=41,
                                 configurations={"3d_fullres": {**_plans(demo["model"])["3d_fullres"], **FULLRES},
                                                 "3d_lowres": LOWRES})
    lowres = build_random_model(demo["model"], root, num_classes=args.classes, seed=43, configuration="3d_lowres",
                                configurations={"3d_fullres": {**_plans(demo["model"])["3d_fullres"], **FULLRES},
                                                "3d_lowres": LOWRES})
    source = args.scratch / "input"
    if not (source / "ct_0001.nii.gz").exists():
        write_image_case(source, "ct", args.size, SPACING, channels=2)

    env = bench.environment(nnUNet_results=root.parent, nnUNet_raw=args.scratch, nnUNet_preprocessed=args.scratch)
    nnunet, outputs = [], []
    for member in (fullres, lowres):
        configuration = member.name.split("__")[-1]
        outputs.append(args.scratch / f"nnunet_{configuration}")
        shutil.rmtree(outputs[-1], ignore_errors=True)
        command = ["nnUNetv2_predict", "-i", source, "-o", outputs[-1], "-d", root.name, "-c", configuration,
                   "-f", "0", "-device", "cpu", "--disable_tta", "--disable_progress_bar", "--save_probabilities",
                   "-npp", "1", "-nps", "1"]
        nnunet.append({"route": "nnU-Net", "step": f"nnUNetv2_predict -c {configuration} --save_probabilities",
                       **_measured(bench.run_measured(command, env=env))})
    reference = args.scratch / "nnunet_ensemble"
    shutil.rmtree(reference, ignore_errors=True)
    command = ["nnUNetv2_ensemble", "-i", *outputs, "-o", reference, "-np", "1"]
    nnunet.append({"route": "nnU-Net", "step": "nnUNetv2_ensemble", **_measured(bench.run_measured(command, env=env))})

    results = args.scratch / "workflow"
    shutil.rmtree(results, ignore_errors=True)
    command = [bench.BIN / "snakemake", "--cores", "2", "--config", f"model=[{fullres},{lowres}]",
               f"input={source}", f"results={results}", "tta=false"]
    whole = _measured(bench.run_measured(command, env=env, cwd=bench.REPO))
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    stages = [c[: -len("_peak_mb")] for c in summary.columns if c.endswith("_peak_mb")]
    workflow = [{"route": "workflow", "step": stage, "seconds": float(summary[f"{stage}_seconds"].max()),
                 "peak_mb": float(summary[f"{stage}_peak_mb"].max())} for stage in stages]
    workflow.append({"route": "workflow", "step": "whole run (largest process)", **whole})

    rows = nnunet + workflow
    print(f"one case {list(args.size)} at {list(SPACING)} mm, {args.classes} classes, members 3d_fullres "
          f"{FULLRES['spacing']} mm and 3d_lowres {LOWRES['spacing']} mm (random weights, CPU, no TTA)")
    print(bench.format_table(rows, ["route", "step", "seconds", "peak_mb"]))
    nnunet_peak = max(r["peak_mb"] for r in nnunet)
    workflow_peak = max(r["peak_mb"] for r in workflow)
    ensemble_peak = next(r["peak_mb"] for r in workflow if r["step"] == "ensemble")
    print(f"peak of the route: nnU-Net {nnunet_peak} MB, workflow {workflow_peak} MB "
          f"(ratio {workflow_peak / nnunet_peak:.2f}); ensemble step: nnUNetv2_ensemble {nnunet[-1]['peak_mb']} MB, "
          f"workflow's {ensemble_peak} MB (ratio {ensemble_peak / nnunet[-1]['peak_mb']:.2f})")
    import SimpleITK as sitk

    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(results / "ct.nii.gz")))
    theirs = sitk.GetArrayFromImage(sitk.ReadImage(str(reference / "ct.nii.gz")))
    print(f"ensembles identical: {bool(np.array_equal(ours, theirs))}")


def _plans(model: Path) -> dict:
    import json

    return json.loads((model / "plans.json").read_text())["configurations"]


def _measured(run: dict) -> dict:
    if run["rc"] != 0:
        raise SystemExit(f"failed ({run['rc']}):\n{run['stdout'][-2000:]}\n{run['stderr'][-3000:]}")
    return {"seconds": run["seconds"], "peak_mb": run["peak_mb"]}


if __name__ == "__main__":
    main()
