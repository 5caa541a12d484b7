"""Benchmark: a TotalSegmentator-size model (118 outputs) on CTs at 0.8 mm, nnUNetv2_predict against the workflow,
each run whole under the same hard memory limit (a cgroup v1 memory group, needs root).

Builds a random-weight model with 118 outputs from the demo model's real nnU-Net plans at 1.5 mm isotropic (the
demo's small network: it is the CPU stages that are measured), writes one two-channel int16 CT of 512x512xZ
voxels at 0.8 mm per size given, and runs on each, one after the other:
  1. `nnUNetv2_predict_from_modelfolder -f 0 -device cpu --disable_tta` (its defaults otherwise),
  2. the workflow, `snakemake --cores 2 --config tta=false statistics=false` (its defaults otherwise),
inside a cgroup capped at --limit-gb (default 22: this 24 GB machine less what its system holds). Prints per
run the exit, the wall time, the peak of what the run's processes held together (beyond droppable file
cache, sampled every 0.1 s) and the kernel's peak for the group, and whether the segmentations are
identical where both finished. Target: the workflow's peak <= 0.1x nnU-Net's, time <= 0.6x, identical, on the
largest case nnU-Net finishes; and a size at which nnU-Net dies and the workflow finishes.

    sudo python benchmarks/many_classes.py [--sizes 100,200] [--limit-gb 22] [--scratch DIR]
"""

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.cgroup import Cgroup
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, write_image_case

CLASSES = 118
TARGET_SPACING = (1.5, 1.5, 1.5)
SPACING = (0.8, 0.8, 0.8)


def identical(ours: Path, reference: Path) -> bool | None:
    import SimpleITK as sitk

    if not (ours.exists() and reference.exists()):
        return None
    return bool(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(ours))),
                               sitk.GetArrayFromImage(sitk.ReadImage(str(reference)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,200", help="slices (z) of each 512x512 case at 0.8 mm")
    parser.add_argument("--limit-gb", type=float, default=22.0)
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "many_classes")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    demo = prepare_demo(bench.REPO / ".demo")
    model = build_random_model(demo["model"], scratch / "model", CLASSES, TARGET_SPACING)
    env = bench.environment(nnUNet_raw=scratch, nnUNet_preprocessed=scratch, nnUNet_results=scratch)
    group = Cgroup(f"many_classes_{os.getpid()}", int(args.limit_gb * 1024**3))
    rows, sizes = [], [int(z) for z in args.sizes.split(",")]
    try:
        for z in sizes:
            source = scratch / f"input_{z}"
            if not (source / "ct_0001.nii.gz").exists():
                write_image_case(source, "ct", (512, 512, z), SPACING, channels=2)
            runs = {
                "nnUNetv2_predict": [bench.BIN / "nnUNetv2_predict_from_modelfolder", "-i", source, "-m", model,
                                     "-f", "0", "-device", "cpu", "--disable_tta", "-o", scratch / f"nnunet_{z}"],
                "workflow": [bench.BIN / "snakemake", "--cores", "2", "--config", f"model={model}",
                             f"input={source}", f"results={scratch / f'workflow_{z}'}", "tta=false",
                             "statistics=false"],
            }
            for name, command in runs.items():
                out = scratch / f"{'nnunet' if name.startswith('nnU') else 'workflow'}_{z}"
                shutil.rmtree(out, ignore_errors=True)
                run = group.run(command, bench.REPO if name == "workflow" else scratch, env,
                                scratch / f"{out.name}.log")
                finished = (out / "ct.nii.gz").exists()
                rows.append({"case": f"512x512x{z}", "run": name, "exit": run["rc"], "finished": finished,
                             "seconds": run["seconds"], "held_peak_mb": run["held_peak_mb"],
                             "group_peak_mb": run["peak_mb"]})
                print(f"512x512x{z}, {name}: exit {run['rc']}, finished {finished}, {run['seconds']} s", flush=True)
    finally:
        group.remove()
    print(f"\n{CLASSES}-class model at {list(TARGET_SPACING)} mm (random weights, the demo's network); CTs 512x512xZ "
          f"at {list(SPACING)} mm, 2 channels int16; no TTA; cgroup limit {args.limit_gb} GB")
    print(bench.format_table(rows))
    for z in sizes:
        nnunet, ours = [r for r in rows if r["case"] == f"512x512x{z}"]
        same = identical(scratch / f"workflow_{z}" / "ct.nii.gz", scratch / f"nnunet_{z}" / "ct.nii.gz")
        line = f"512x512x{z}: "
        if nnunet["finished"] and ours["finished"]:
            line += (f"workflow / nnU-Net peak {ours['held_peak_mb'] / nnunet['held_peak_mb']:.2f}, time "
                     f"{ours['seconds'] / nnunet['seconds']:.2f}; segmentations identical: {same}")
        else:
            line += (f"nnU-Net {'finished' if nnunet['finished'] else 'did not finish'}, the workflow "
                     f"{'finished' if ours['finished'] else 'did not finish'}")
        print(line)


if __name__ == "__main__":
    main()
