"""Build (once, cached) a tiny real nnU-Net v2 model trained on CPU on the synthetic demo dataset,
with nnU-Net's own planning, preprocessing and stock nnUNetTrainer, each run in a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nnunet_workflow.dev import demo_data

# Bump whenever the generator or this recipe changes: an existing cache with another version is rebuilt.
BUILD_VERSION = f"demo-model-2/generator-{demo_data.GENERATOR_VERSION}"
# The stock trainer class, so any nnU-Net finds it by name at inference; only its epoch count is changed, at
# training time. (The nnUNetTrainer_Xepochs variants would do too, but looking them up imports every trainer
# module, including the Primus ones that need timm and hence torchvision.)
TRAINER = "nnUNetTrainer"
# 5 epochs gave a lowest demo Dice of 0.953 in one build and 0.898 in another: train longer.
NUM_EPOCHS = 8
SEED = 12345
CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"
FEATURES_PER_STAGE = (4, 8, 16, 32, 32, 32)
N_PROCESSES = 2

MODEL_DIR = "nnunet"
STAMP = "build.json"


def _stamp_ok(root: Path) -> bool:
    """True when root holds a completed build of the current version."""
    stamp = root / STAMP
    if not stamp.is_file():
        return False
    info = json.loads(stamp.read_text())
    checkpoint = root / info["model_folder"] / "fold_0" / "checkpoint_final.pth"
    return info.get("version") == BUILD_VERSION and checkpoint.is_file()


def _model_folder(nnunet_root: Path) -> Path:
    dataset = f"Dataset{demo_data.DEMO_DATASET_ID:03d}_Demo"
    return nnunet_root / "nnUNet_results" / dataset / f"{TRAINER}__{PLANS}__{CONFIGURATION}"


def _nnunet_env(nnunet_root: Path) -> dict[str, str]:
    """Environment pointing nnU-Net at nnunet_root, with CPU-friendly process counts."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(nnunet_root / name)
    env["nnUNet_n_proc_DA"] = str(N_PROCESSES)
    env["nnUNet_compile"] = "false"
    env["PYTHONUNBUFFERED"] = "1"  # nnU-Net's log lines reach the progress echo as they are printed
    return env


def _cli(name: str) -> str:
    """Path of an nnU-Net console script installed beside this interpreter (else its bare name)."""
    executable = Path(sys.executable).parent / name
    return str(executable) if executable.is_file() else name


def _is_training_progress(line: str) -> bool:
    """True for the lines of nnU-Net's training log worth showing while the demo model trains."""
    return any(key in line for key in ("Epoch ", "Pseudo dice", "Epoch time", "Mean Validation Dice"))


def _run(command: list[str], env: dict[str, str], log_path: Path) -> None:
    """Run command, appending its output to log_path and echoing nnU-Net's training progress to stderr;
    raise with the log's tail if it fails."""
    print(f"[demo_model] {' '.join(command)}", file=sys.stderr, flush=True)
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
            for line in child.stdout:
                log.write(line)
                if _is_training_progress(line):
                    print(f"[demo_model]   {line.strip()}", file=sys.stderr, flush=True)
        returncode = child.returncode
    if returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f"{command[0]} failed with exit code {returncode}; log {log_path}:\n{tail}")


def _shrink_plans(plans_path: Path) -> None:
    """Make the 3d_fullres network tiny (same number of stages) so it trains fast on CPU and stays small."""
    plans = json.loads(plans_path.read_text())
    arch = plans["configurations"][CONFIGURATION]["architecture"]["arch_kwargs"]
    arch["features_per_stage"] = list(FEATURES_PER_STAGE[: arch["n_stages"]])
    plans_path.write_text(json.dumps(plans, indent=2))


def _build(nnunet_root: Path) -> Path:
    """Write the training data, plan, shrink, preprocess and train fold 0; return the model folder."""
    env = _nnunet_env(nnunet_root)
    log = nnunet_root / "build.log"
    dataset_id = str(demo_data.DEMO_DATASET_ID)
    dataset_dir = demo_data.write_training_dataset(nnunet_root / "nnUNet_raw")
    _run([_cli("nnUNetv2_plan_and_preprocess"), "-d", dataset_id, "-c", CONFIGURATION,
          "--verify_dataset_integrity", "--no_pp", "-npfp", str(N_PROCESSES)], env, log)
    _shrink_plans(nnunet_root / "nnUNet_preprocessed" / dataset_dir.name / f"{PLANS}.json")
    _run([_cli("nnUNetv2_preprocess"), "-d", dataset_id, "-c", CONFIGURATION, "-np", str(N_PROCESSES)], env, log)
    train = f"from nnunet_workflow.dev.demo_model import train_fold0; train_fold0({NUM_EPOCHS})"
    _run([sys.executable, "-c", train], env, log)
    return _model_folder(nnunet_root)


def train_fold0(num_epochs: int) -> None:
    """Train and validate fold 0 of the demo dataset on CPU, as nnUNetv2_train does, for num_epochs epochs.

    Meant for a subprocess whose environment already names the nnUNet_* folders: nnunetv2 reads them on import.
    """
    import random

    import numpy as np
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    torch.set_num_threads(os.cpu_count() or 1)
    random.seed(SEED)  # less variation between builds (data augmentation workers still draw their own)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    trainer = get_trainer_from_args(str(demo_data.DEMO_DATASET_ID), CONFIGURATION, 0, TRAINER, PLANS,
                                    device=torch.device("cpu"))
    trainer.num_epochs = num_epochs
    trainer.run_training()
    trainer.perform_actual_validation()


def build_demo_model(cache_dir: Path) -> Path:
    """Return the trained demo model folder under cache_dir, building it first unless a complete build exists.

    The build runs in a scratch folder that is renamed into place only when training has finished, so an
    interrupted build is never mistaken for a complete one. Not safe for concurrent builds into one cache_dir.
    """
    cache_dir = Path(cache_dir).resolve()
    final = cache_dir / MODEL_DIR
    if _stamp_ok(final):
        return _model_folder(final)
    scratch = cache_dir / f".{MODEL_DIR}.partial"
    for stale in (final, scratch):
        shutil.rmtree(stale, ignore_errors=True)
    scratch.mkdir(parents=True)
    model_folder = _build(scratch)
    stamp = {"version": BUILD_VERSION, "trainer": TRAINER, "epochs": NUM_EPOCHS,
             "model_folder": str(model_folder.relative_to(scratch))}
    (scratch / STAMP).write_text(json.dumps(stamp, indent=2))
    scratch.rename(final)
    return _model_folder(final)


def _write_demo_cases(cache_dir: Path) -> tuple[Path, Path]:
    """Write the demo test cases to cache_dir/demo_input and demo_truth unless already complete."""
    images, truth, stamp = cache_dir / "demo_input", cache_dir / "demo_truth", cache_dir / "demo_cases.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("version") == BUILD_VERSION:
        return images, truth
    stamp.unlink(missing_ok=True)
    for folder in (images, truth):
        shutil.rmtree(folder, ignore_errors=True)
    cases = demo_data.write_demo_cases(images, truth)
    stamp.write_text(json.dumps({"version": BUILD_VERSION, "cases": cases}, indent=2))
    return images, truth


def prepare_demo(cache_dir: Path) -> dict[str, Path]:
    """Build the demo model and write the demo test cases; return {"model", "input", "truth"} paths."""
    cache_dir = Path(cache_dir).resolve()
    model = build_demo_model(cache_dir)
    images, truth = _write_demo_cases(cache_dir)
    return {"model": model, "input": images, "truth": truth}


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Build (or reuse) the cached nnU-Net demo model and demo cases; print the model folder.")
    parser.add_argument("--cache", type=Path, required=True, help="cache folder for the demo build")
    args = parser.parse_args()
    print(prepare_demo(args.cache)["model"])


if __name__ == "__main__":
    main()
