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
BUILD_VERSION = f"demo-model-3/generator-{demo_data.GENERATOR_VERSION}"
# The stock trainer class, so any nnU-Net finds it by name at inference; only its schedule (epochs, iterations,
# learning rate) is changed, at training time. (The nnUNetTrainer_Xepochs variants would do too, but looking them
# up imports every trainer module, including the Primus ones that need timm and hence torchvision.)
TRAINER = "nnUNetTrainer"
# Short schedule for 2 CPU cores: 5 epochs of 40 iterations (2 validation iterations each) at initial lr 0.05
# (poly decay). Lowest demo Dice 0.920-0.956 over 4 seeds (demo_006's sphere each time), 109-119 s for plan,
# preprocessing, training and validation on 2 cores (the 8 x 250 iterations at lr 0.01 before: ~20 min).
NUM_EPOCHS = 5
NUM_ITERATIONS_PER_EPOCH = 40
NUM_VAL_ITERATIONS_PER_EPOCH = 2
INITIAL_LR = 0.05
SEED = 12345
CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"
# 8 features at full resolution: with 4, one build of 3 never learned the box (Dice 0) within 200 iterations.
FEATURES_PER_STAGE = (8, 16, 32, 64, 64, 64)
# One convolution per stage, encoder and decoder: a train step about 2.5x cheaper than nnU-Net's 2.
N_CONV_PER_STAGE = 1
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
    env["nnUNet_n_proc_DA"] = str(N_PROCESSES)  # not 0 here: the planner calls torch.set_num_threads(n_proc_DA)
    env["nnUNet_def_n_proc"] = str(N_PROCESSES)  # nnU-Net's final validation would spawn 8 export workers
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
    arch["n_conv_per_stage"] = [N_CONV_PER_STAGE] * arch["n_stages"]
    arch["n_conv_per_stage_decoder"] = [N_CONV_PER_STAGE] * (arch["n_stages"] - 1)
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
    # Data augmentation in the training process itself (nnU-Net's SingleThreadedAugmenter): on 2 cores worker
    # processes only compete with torch's threads (measured ~10% faster than 2 workers).
    _run([sys.executable, "-c", train], {**env, "nnUNet_n_proc_DA": "0"}, log)
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
    random.seed(SEED)  # with nnUNet_n_proc_DA=0 probably seeds the augmentation too (determinism not checked)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    trainer = get_trainer_from_args(str(demo_data.DEMO_DATASET_ID), CONFIGURATION, 0, TRAINER, PLANS,
                                    device=torch.device("cpu"))
    # all read in run_training (initialize/configure_optimizers run there), so setting them here takes effect
    trainer.num_epochs = num_epochs
    trainer.num_iterations_per_epoch = NUM_ITERATIONS_PER_EPOCH
    trainer.num_val_iterations_per_epoch = NUM_VAL_ITERATIONS_PER_EPOCH
    trainer.initial_lr = INITIAL_LR
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
