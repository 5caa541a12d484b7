"""Benchmark: peak memory and time of nnU-Net's export against the streaming export, same case, same run.

Writes random float16 logits of a K-class model on the network grid of a CT-sized case (by default
300x512x512 at 2.5x0.7x0.7 mm, exported from a 2.0x1.5x1.5 mm grid) and its properties, then runs each
export in a fresh Python process (the streaming export once per thread count), measures its peak RSS, and
compares the segmentation files voxel for voxel. The logits are smooth random fields in which every class
wins somewhere (`--organs`: as a many-organ model gives them, each class far below the background except
in its own organ-sized blob). Targets: time <= 0.5x nnU-Net's on the joint path and <= 0.15x on the
separate-z path with 10 classes, <= 0.15x with 118 classes, peak <= 0.25x. `--probabilities`: both exports
with save_probabilities (nnU-Net's, and stages/streaming_probabilities), the .npz compared too. `--torch`: plans
of nnU-Net's torch-resampling planner (`resample_torch_fornnunet`, exported a class at a time here).

    python benchmarks/export_memory.py [--classes 10] [--joint] [--organs] [--threads 1,2] [--shape Z Y X]
        [--probabilities] [--torch] [--scratch DIR]
"""

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, torch_resampling_configuration
from nnunet_workflow.estimates.host_memory import separate_z

TARGET_SPACING = (2.0, 1.5, 1.5)
SHAPE = (300, 512, 512)          # z, y, x: nnU-Net's axis order
SPACING = (2.5, 0.7, 0.7)
# anisotropy 2.5 / 0.7 = 3.6 > 3: nnU-Net takes its separate-z path; --joint uses 2.0 mm slices instead
JOINT_SPACING = (2.0, 0.7, 0.7)


def write_inputs(folder: Path, classes: int, shape, spacing, organs: bool = False) -> tuple[Path, Path]:
    """Smooth random logits (K, *network grid) in float16, as predict saves them, and the properties."""
    from scipy import ndimage

    folder.mkdir(parents=True, exist_ok=True)
    logits_path, properties_path = folder / "logits.npy", folder / "properties.pkl"
    if logits_path.exists() and properties_path.exists():
        return logits_path, properties_path
    grid = [int(round(n * s / t)) for n, s, t in zip(shape, spacing, TARGET_SPACING)]
    rng = np.random.default_rng(classes)
    logits = np.lib.format.open_memmap(logits_path, mode="w+", dtype=np.float16, shape=(classes, *grid))
    for k in range(classes):
        coarse = rng.normal(scale=3, size=[max(2, n // 8) for n in grid])
        field = ndimage.zoom(coarse, [n / c for n, c in zip(grid, coarse.shape)], order=1)[
            tuple(slice(0, n) for n in grid)]
        if organs and k > 0:  # far below the background except in a blob of a few centimetres
            blob = np.full(grid, -10.0)
            centre = [rng.integers(n // 8, n - n // 8) for n in grid]
            box = tuple(slice(max(0, c - n // 10), c + n // 10) for c, n in zip(centre, grid))
            blob[box] = field[box] + 6
            field = blob
        elif organs:
            field = field + 3
        logits[k] = field  # smooth fields so that every class wins somewhere, with real boundaries
    logits.flush()
    del logits
    properties = {
        "spacing": list(spacing), "shape_before_cropping": list(shape),
        "bbox_used_for_cropping": [[0, n] for n in shape],
        "shape_after_cropping_and_before_resampling": list(shape),
        "sitk_stuff": {"spacing": tuple(reversed(spacing)), "origin": (0.0, 0.0, 0.0),
                       "direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)},
    }
    with open(properties_path, "wb") as handle:
        pickle.dump(properties, handle)
    return logits_path, properties_path


def export_once(method: str, model_folder: str, logits_path: str, properties_path: str, output: str,
                probabilities: bool = False) -> None:
    """One export in this process, as the workflow's export stage or nnUNetv2_predict would do it."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    from nnunet_workflow.nnunet.model import load_model, nnunet_plans
    from nnunet_workflow.stages.streaming_export import NpyChannels, export_streaming
    from nnunet_workflow.stages.streaming_probabilities import export_with_probabilities

    plans_manager, configuration_manager, dataset_json = nnunet_plans(load_model(model_folder))
    with open(properties_path, "rb") as handle:
        properties = pickle.load(handle)
    threads = int(method.partition(":")[2] or 1)
    if method.startswith("streaming") and probabilities:
        export_with_probabilities(NpyChannels(logits_path), properties, configuration_manager, plans_manager,
                                  dataset_json, output[: -len(".nii.gz")], ".nii.gz", threads=threads)
    elif method.startswith("streaming"):
        export_streaming(NpyChannels(logits_path), properties, configuration_manager, plans_manager, dataset_json,
                         output, threads=threads)
    else:
        export_prediction_from_logits(np.load(logits_path), properties, configuration_manager, plans_manager,
                                      dataset_json, output[: -len(".nii.gz")], save_probabilities=probabilities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--joint", action="store_true", help=f"source spacing {JOINT_SPACING} (no separate z)")
    parser.add_argument("--organs", action="store_true", help="logits as a many-organ model gives them")
    parser.add_argument("--shape", type=int, nargs=3, default=SHAPE, metavar=("Z", "Y", "X"),
                        help=f"the case's voxels (default {' '.join(map(str, SHAPE))}; smaller for many classes, "
                             "whose nnU-Net export needs ~600 bytes per voxel for 118)")
    parser.add_argument("--threads", default="1,2", help="thread counts of the streaming export, e.g. 1,2,4")
    parser.add_argument("--probabilities", action="store_true", help="save_probabilities on in both exports")
    parser.add_argument("--torch", action="store_true", help="plans resampling with nnU-Net's torch function")
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "export")
    parser.add_argument("--run", nargs=4, metavar=("METHOD", "MODEL", "LOGITS", "PROPERTIES_AND_OUTPUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        method, model, logits, both = args.run
        properties, output = both.split("::")
        export_once(method, model, logits, properties, output, args.probabilities)
        return

    import SimpleITK as sitk

    scratch = args.scratch.resolve()
    shape, spacing = tuple(args.shape), (JOINT_SPACING if args.joint else SPACING)
    demo = prepare_demo(bench.REPO / ".demo")
    if args.torch:
        model = build_random_model(demo["model"], scratch / f"model_{args.classes}", args.classes, TARGET_SPACING,
                                   configuration="3d_fullres_torchres",
                                   configurations={"3d_fullres_torchres": torch_resampling_configuration()})
    else:
        model = build_random_model(demo["model"], scratch / f"model_{args.classes}", args.classes, TARGET_SPACING)
    case = scratch / (f"case_{args.classes}{'_joint' if args.joint else ''}{'_organs' if args.organs else ''}"
                      + ("" if shape == SHAPE else "_" + "x".join(map(str, shape))))
    logits, properties = write_inputs(case, args.classes, shape, spacing, args.organs)
    grid = list(np.load(logits, mmap_mode="r").shape)
    rows = []
    methods = ["nnunet", *(f"streaming:{n}" for n in args.threads.split(","))]
    for method in methods:
        output = case / f"{method.replace(':', '_')}.nii.gz"
        output.unlink(missing_ok=True)
        run = bench.run_measured([sys.executable, __file__, "--run", method, model, logits, f"{properties}::{output}",
                                  *(["--probabilities"] if args.probabilities else [])],
                                 env=bench.environment(OMP_NUM_THREADS=1))
        if run["rc"] != 0:
            print(run["stderr"][-3000:])
        rows.append({"export": method, "exit": run["rc"], "seconds": run["seconds"], "peak_mb": run["peak_mb"]})
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "nnunet.nii.gz"))) if rows[0]["exit"] == 0 else None
    same = reference is not None and all(r["exit"] == 0 for r in rows) and all(
        np.array_equal(reference, sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"{m.replace(':', '_')}.nii.gz"))))
        for m in methods[1:])
    print(f"{args.classes} classes{' (organs)' if args.organs else ''}, logits {grid} (float16) -> {list(shape)} at "
          f"{list(spacing)} mm, " + ("nnU-Net's torch resampling, joint (force_separate_z: False)" if args.torch
                                     else f"separate z: {separate_z(spacing, TARGET_SPACING)}"))
    print(bench.format_table(rows))
    nnunet, one = rows[0], rows[1]
    for row in rows[1:]:
        if nnunet["peak_mb"] and row["peak_mb"]:
            print(f"{row['export']} / nnU-Net peak: {row['peak_mb'] / nnunet['peak_mb']:.2f}; time: "
                  f"{row['seconds'] / nnunet['seconds']:.2f}; speed-up over 1 thread: "
                  f"{one['seconds'] / row['seconds']:.2f}")
    print(f"segmentations identical: {same}")
    if args.probabilities:
        expected = np.load(case / "nnunet.npz")["probabilities"] if rows[0]["exit"] == 0 else None
        print("probabilities identical: " + str(expected is not None and all(
            np.array_equal(expected, np.load(case / f"{m.replace(':', '_')}.npz")["probabilities"])
            for m in methods[1:])))


if __name__ == "__main__":
    main()
