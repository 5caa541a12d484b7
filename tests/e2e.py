"""Helpers of the end-to-end tests: run the workflow and nnUNetv2_predict, compare images."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_workflow.dev.runner import BIN, REPO, run_workflow  # noqa: F401 (the tests import them from here)
from nnunet_workflow.nnunet.model import load_model


def run_nnunet_predict(model_folder, source, output, *options, folds=None) -> None:
    """The reference: nnU-Net's own `nnUNetv2_predict` on the same model (found via nnUNet_results), with
    the folds given, else those the model folder has (its default -f is 0 1 2 3 4, whatever exists)."""
    model_folder = Path(model_folder)
    folds = folds or load_model(model_folder).folds
    trainer, plans, configuration = model_folder.name.split("__")
    dataset = model_folder.parent.name
    env = {**os.environ, "nnUNet_results": str(model_folder.parent.parent),
           "nnUNet_raw": str(output), "nnUNet_preprocessed": str(output)}
    command = [str(BIN / "nnUNetv2_predict"), "-i", str(source), "-o", str(output), "-d", dataset,
               "-tr", trainer, "-p", plans, "-c", configuration, "-f", *folds, "-device", "cpu",
               "--disable_progress_bar", *options]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def assert_same_image(ours, reference) -> None:
    """Voxel-for-voxel equality, plus the same size, spacing, origin, direction and pixel type."""
    a, b = sitk.ReadImage(str(ours)), sitk.ReadImage(str(reference))
    assert a.GetSize() == b.GetSize(), ours
    assert a.GetSpacing() == b.GetSpacing(), ours
    assert a.GetOrigin() == b.GetOrigin(), ours
    assert a.GetDirection() == b.GetDirection(), ours
    assert a.GetPixelID() == b.GetPixelID(), ours
    assert np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)), ours


def four_cases_and_a_bad_one(demo, folder) -> tuple[list[str], str]:
    """Copy the four smallest demo cases (one predict batch of 4) and a case missing its second
    channel into `folder`; return the four case ids and the one predicted second in the batch."""
    sizes = {case: sum(os.path.getsize(f) for f in files) for case, files in demo["case_files"].items()}
    cases = sorted(sizes, key=sizes.get)[:4]
    for case in cases:
        for path in demo["case_files"][case]:
            shutil.copy(path, folder)
    shutil.copy(demo["case_files"][cases[0]][0], Path(folder) / "bad_0000.nii.gz")
    return cases, sorted(cases, key=lambda c: (-sizes[c], c))[1]
