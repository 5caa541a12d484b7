"""Benchmark: peak memory and time of the statistics stage (label statistics and the QC preview) on a CT-sized
case, against its estimate (`memory.statistics_mb`), with the labels' statistics checked against a direct
count. The stage runs in a fresh Python process, as a worker would.

    python benchmarks/statistics_memory.py [--labels 10] [--size 512 512 300] [--scratch DIR]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.synthetic_model import write_image_case
from nnunet_workflow.estimates.host_memory import statistics_mb

SPACING = (0.7, 0.7, 2.5)  # x, y, z
CHANNELS = 2


def write_segmentation(path: Path, shape_zyx, labels: int) -> None:
    """A label map with `labels` foreground labels as slabs of the volume (every label present, large)."""
    import SimpleITK as sitk

    seg = np.zeros(shape_zyx, dtype=np.uint8)
    bounds = np.linspace(shape_zyx[1] // 8, 7 * shape_zyx[1] // 8, labels + 1).astype(int)
    for label in range(labels):
        seg[shape_zyx[0] // 8: 7 * shape_zyx[0] // 8, bounds[label]: bounds[label + 1], 64:-64] = label + 1
    image = sitk.GetImageFromArray(seg)
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path), useCompression=True)


def run_once(folder: str, labels: int) -> None:
    """The statistics stage's handler on the case in `folder`, in this process; its record details to stdout."""
    from nnunet_workflow.execution.job import CaseJob
    from nnunet_workflow.inputs.cases import Case
    from nnunet_workflow.nnunet.model import ModelInfo
    from nnunet_workflow.stages.statistics import statistics_case
    from nnunet_workflow.store.layout import Layout

    folder = Path(folder)
    model = ModelInfo(folder, "3d_fullres", ("0",), "checkpoint_final.pth", ("CT", "PET"),
                      {"background": 0, **{f"label_{i}": i for i in range(1, labels + 1)}}, ".nii.gz",
                      "SimpleITKIO", (2.5, 0.7, 0.7), (64, 64, 64), (0, 1, 2), labels + 1)
    files = {i: str(folder / f"case_{i:04d}.nii.gz") for i in range(CHANNELS)}
    details = statistics_case(None, CaseJob(Case("case", files), "a1", model, Layout(folder / "results")))
    print(json.dumps(details["labels"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), help="x y z")
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "statistics")
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_once(args.run[0], int(args.run[1]))
        return

    import SimpleITK as sitk

    folder = (args.scratch / f"{'x'.join(map(str, args.size))}_{args.labels}").resolve()
    shape_zyx = tuple(reversed(args.size))
    if not (folder / "results" / "case.nii.gz").exists():
        write_image_case(folder, "case", args.size, SPACING, CHANNELS)
        (folder / "results").mkdir(parents=True, exist_ok=True)
        write_segmentation(folder / "results" / "case.nii.gz", shape_zyx, args.labels)
    run = bench.run_measured([sys.executable, __file__, "--run", str(folder), str(args.labels)],
                             env=bench.environment(OMP_NUM_THREADS=1))
    if run["rc"] != 0:
        print(run["stderr"][-3000:])
        raise SystemExit(1)
    rows = json.loads(run["stdout"].strip().splitlines()[-1])
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "results" / "case.nii.gz")))
    counts = np.bincount(seg.reshape(-1), minlength=args.labels + 1)
    equal = all(row["voxels"] == counts[row["value"]] for row in rows)
    voxels = int(np.prod(args.size))
    estimate = statistics_mb(voxels, CHANNELS)
    print(f"case {list(args.size)} (x, y, z) at {list(SPACING)} mm, {CHANNELS} channels, {args.labels} labels")
    print(bench.format_table([{"stage": "statistics", "seconds": run["seconds"], "peak_mb": run["peak_mb"],
                               "estimate_mb": estimate}]))
    print(f"estimate / peak: {estimate / run['peak_mb']:.2f}; voxel counts equal to a direct count: {equal}")


if __name__ == "__main__":
    main()
