"""Benchmark: the memory model's estimate against the peak RSS each stage really reached.

Builds random-weight nnU-Net models with 3 and 50 classes from the demo model's plans, writes a corpus
of synthetic int16 cases from small to CT-sized (isotropic, anisotropic with the separate-z path),
runs the workflow on them (and once more with save_probabilities; and with plans of nnU-Net's torch-resampling
planner, and a region model with save_probabilities), then prints estimate vs measured per case and stage and the
ratio statistics.
Target: no estimate under its measurement; median over-reservation <= 1.3x.

    python benchmarks/memory_model.py [--scratch DIR] [--quick]

Cases, models and runs are cached in the scratch folder; a second call only recomputes the estimates.
"""

import argparse
from pathlib import Path

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, torch_resampling_configuration, write_image_case

# model target spacing, nnU-Net axis order (z, y, x); a coarse model sees few target voxels per case
TARGET_SPACING = (2.0, 1.5, 1.5)
COARSE_SPACING = (4.0, 4.0, 4.0)
# name: (size x, y, z; spacing x, y, z); all two-channel int16
CORPUS = {
    "small_iso": ((64, 64, 64), (1.0, 1.0, 1.0)),
    "brain_iso": ((176, 224, 192), (1.0, 1.0, 1.0)),
    "thick_slices": ((320, 320, 40), (0.7, 0.7, 5.0)),   # anisotropy 7: the separate-z path
    "ct_medium": ((512, 512, 120), (0.8, 0.8, 2.0)),
    "ct_large": ((512, 512, 300), (0.7, 0.7, 2.5)),
}
QUICK = ("small_iso", "thick_slices", "brain_iso")
MODELS = {"3 classes": (3, TARGET_SPACING), "50 classes": (50, TARGET_SPACING)}
COARSE_CASES = ("ct_large", "thick_slices")
# exporting probabilities holds K float32 volumes: keep that run to the cases that fit this machine
PROBABILITY_CASES = ("small_iso", "brain_iso", "thick_slices", "ct_medium")
# the models' variants beyond the class count: (folder suffix, build_random_model's arguments)
TORCH_PLANS = ("_torchres", {"configuration": "3d_fullres_torchres",
                             "configurations": {"3d_fullres_torchres": torch_resampling_configuration()}})
REGIONS = ("_regions", {"dataset_changes": {"labels": {"background": 0, "whole": [1, 2], "core": 2},
                                            "regions_class_order": [1, 2]}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "memory")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    demo = prepare_demo(bench.REPO / ".demo")
    names = QUICK if args.quick else tuple(CORPUS)

    all_rows = []
    plain = ("", {})
    runs = [(label, k, spacing, False, names, plain) for label, (k, spacing) in MODELS.items()]
    with_probabilities = tuple(n for n in names if n in PROBABILITY_CASES)
    runs.append(("3 classes", 3, TARGET_SPACING, True, with_probabilities, plain))
    runs.append(("3 classes 4 mm", 3, COARSE_SPACING, False, tuple(n for n in names if n in COARSE_CASES), plain))
    runs.append(("10 classes torchres", 10, TARGET_SPACING, False, names, TORCH_PLANS))
    runs.append(("2 regions", 2, TARGET_SPACING, True, with_probabilities, REGIONS))
    for label, classes, spacing, probabilities, cases, (variant, changes) in runs:
        suffix = ("" if spacing == TARGET_SPACING else "_coarse") + variant
        model = build_random_model(demo["model"], scratch / f"model_{classes}{suffix}", classes, spacing, **changes)
        source = scratch / ("input_" + "_".join(cases))
        for index, name in enumerate(cases):
            size, voxel_spacing = CORPUS[name]
            if not (source / f"{name}_0001.nii.gz").exists():
                write_image_case(source, name, size, voxel_spacing, channels=2, seed=index)
        results = scratch / f"results_{classes}{suffix}{'_probabilities' if probabilities else ''}_{len(cases)}"
        if not (results / "summary.tsv").exists():
            seconds = bench.run_workflow(model, source, results, tta=False,
                                         save_probabilities=str(probabilities).lower())
            print(f"ran {label}{' + probabilities' if probabilities else ''} on {len(cases)} cases: {seconds:.0f} s",
                  flush=True)
        rows = bench.stage_memory(results, model, save_probabilities=probabilities)
        for row in rows:
            row["model"] = label + (" +prob" if probabilities else "")
        all_rows += rows

    columns = ["model", "case", "stage", "voxels", "voxels_resampled", "separate_z", "estimate_mb",
               "measured_mb", "ratio", "seconds"]
    print("\nEstimate vs measured peak RSS of each stage's worker (MB)")
    print(bench.format_table(all_rows, columns))
    print("\nRatio estimate / measured (target: under = 0, median <= 1.3)")
    print(bench.format_table(bench.ratio_summary(all_rows)))


if __name__ == "__main__":
    main()
