"""Model kinds end to end against the nnU-Net CLI, on random-weight models built from the demo's real
plans (identity needs no training): nnU-Net's fold rules and the averaging of several folds."""

import json
import os
import shutil

import pytest
from e2e import assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.synthetic_model import build_random_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_cases(demo, tmp_path_factory):
    """The two smallest demo cases, copied into a folder of their own."""
    folder = tmp_path_factory.mktemp("two_cases")
    cases = sorted(demo["case_files"], key=lambda c: sum(os.path.getsize(p) for p in demo["case_files"][c]))[:2]
    for case in cases:
        for path in demo["case_files"][case]:
            shutil.copy(path, folder)
    return folder, cases


@pytest.fixture(scope="module")
def three_fold_model(demo, tmp_path_factory):
    """A random-weight model with fold_0, fold_1 and fold_all, each with its own weights, in an
    nnUNet_results layout (so nnUNetv2_predict finds it by dataset, trainer, plans and configuration)."""
    root = tmp_path_factory.mktemp("nnUNet_results") / "Dataset998_Folds"
    return build_random_model(demo["model"], root, num_classes=3, target_spacing=(1.0, 1.0, 1.0), seed=7,
                              folds=("0", "1", "all"))


@pytest.mark.parametrize("folds, nnunet_folds", [(None, ["0", "1"]), ("all", ["all"])])
def test_folds_follow_nnunet_and_several_are_averaged_as_nnunet_does(three_fold_model, two_cases, tmp_path,
                                                                      folds, nnunet_folds):
    """Without `folds`, nnU-Net's auto-detection: fold_0 and fold_1 averaged, fold_all left out; with
    `folds=all`, fold_all alone. Each identical to nnUNetv2_predict -f with the same folds."""
    source, cases = two_cases
    options = {"tta": "false"} if folds is None else {"tta": "false", "folds": folds}
    run_workflow(three_fold_model, source, tmp_path / "results", **options)
    run_nnunet_predict(three_fold_model, source, tmp_path / "reference", "--disable_tta", folds=nnunet_folds)
    for case in cases:
        assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
    manifest = json.loads(next((tmp_path / "results" / "work" / "batches").glob("*.predict.json")).read_text())
    log = (tmp_path / "results" / "logs" / "predict" / f"{manifest['batch']}.log").read_text()
    assert f"(folds {', '.join(nnunet_folds)})" in log
