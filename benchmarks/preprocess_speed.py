"""Benchmark: time and peak memory of nnU-Net's run_case against the preprocess stage's, same case, same run.

Writes a two-channel int16 CT-sized case (by default 512x512x300 voxels at 0.8x0.8x1.0 mm, nonzero everywhere)
and a random-weight model of the demo's plans at 1.5 mm isotropic (the joint path; `--separate` takes a
512x512x60 case at 0.5x0.5x4 mm instead: nnU-Net's separate-z path), then preprocesses it in a fresh Python
process with nnU-Net's `DefaultPreprocessor.run_case` and with `stages/case_preprocessing.run_case` once per
thread count, measures the wall time and peak RSS of each process, and compares the arrays bit for bit.
Target on 2 cores (the CT-sized case): time <= 0.6x run_case's, peak <= 0.5x.

    python benchmarks/preprocess_speed.py [--separate] [--threads 1,2] [--scratch DIR]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nnunet_workflow.dev import bench
from nnunet_workflow.dev.demo_model import prepare_demo
from nnunet_workflow.dev.synthetic_model import build_random_model, write_image_case

TARGET_SPACING = (1.5, 1.5, 1.5)
CASES = {"joint": ((512, 512, 300), (0.8, 0.8, 1.0)),      # x, y, z size; spacing
         "separate": ((512, 512, 60), (0.5, 0.5, 4.0))}


def preprocess_once(method: str, model_folder: str, files: list[str], output: str) -> None:
    """One case's preprocessing in this process; the data saved to `output` and its seconds printed."""
    from nnunet_workflow.nnunet.model import load_model, nnunet_plans
    from nnunet_workflow.stages.case_preprocessing import run_case

    plans_manager, configuration_manager, dataset_json = nnunet_plans(load_model(model_folder))
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    started = time.perf_counter()
    if method == "nnunet":
        data = preprocessor.run_case(files, None, plans_manager, configuration_manager, dataset_json)[0]
    else:
        data = run_case(preprocessor, files, None, plans_manager, configuration_manager, dataset_json,
                        int(method.partition(":")[2]))[0]
    print(json.dumps({"seconds": time.perf_counter() - started}))
    np.save(output, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separate", action="store_true", help="the thick-slice case (separate-z path)")
    parser.add_argument("--threads", default="1,2", help="thread counts of the stage's preprocessing, e.g. 1,2,4")
    parser.add_argument("--scratch", type=Path, default=bench.REPO / ".benchmarks" / "preprocess")
    parser.add_argument("--run", nargs=4, metavar=("METHOD", "MODEL", "FILES", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        method, model, files, output = args.run
        preprocess_once(method, model, files.split("::"), output)
        return

    scratch = args.scratch.resolve()
    name = "separate" if args.separate else "joint"
    size, spacing = CASES[name]
    demo = prepare_demo(bench.REPO / ".demo")
    model = build_random_model(demo["model"], scratch / "model", 3, TARGET_SPACING)
    files = sorted((scratch / name).glob("case_*.nii.gz"))
    if len(files) != 2:
        files = write_image_case(scratch / name, "case", size, spacing, channels=2)
    rows, outputs = [], []
    for method in ["nnunet", *(f"stage:{n}" for n in args.threads.split(","))]:
        output = scratch / name / f"{method.replace(':', '_')}.npy"
        output.unlink(missing_ok=True)
        run = bench.run_measured([sys.executable, __file__, "--run", method, model, "::".join(map(str, files)),
                                  output], env=bench.environment(OMP_NUM_THREADS=1))
        if run["rc"] != 0:
            print(run["stderr"][-3000:])
        seconds = json.loads(run["stdout"].strip().splitlines()[-1])["seconds"] if run["rc"] == 0 else None
        rows.append({"preprocessing": method, "exit": run["rc"], "seconds": round(seconds or 0, 1),
                     "peak_mb": run["peak_mb"]})
        outputs.append(output)
    reference = np.load(outputs[0]) if rows[0]["exit"] == 0 else None
    same = reference is not None and all(r["exit"] == 0 for r in rows) and all(
        np.array_equal(reference, np.load(o)) for o in outputs[1:])
    print(f"{name}: {list(size)} voxels (x, y, z) at {list(spacing)} mm, 2 channels -> {list(TARGET_SPACING)} mm, "
          f"network input {list(reference.shape) if reference is not None else '?'}")
    print(bench.format_table(rows))
    nnunet, one = rows[0], rows[1]
    for row in rows[1:]:
        if nnunet["peak_mb"] and row["peak_mb"] and row["seconds"]:
            print(f"{row['preprocessing']} / run_case peak: {row['peak_mb'] / nnunet['peak_mb']:.2f}; time: "
                  f"{row['seconds'] / nnunet['seconds']:.2f}; speed-up over 1 thread: "
                  f"{one['seconds'] / row['seconds']:.2f}")
    print(f"arrays identical: {same}")


if __name__ == "__main__":
    main()
