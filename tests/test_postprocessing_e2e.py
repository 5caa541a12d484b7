"""Postprocessing as a stage, against nnU-Net's own: a postprocessing.pkl made of nnU-Net's functions applied
by the workflow equals `nnUNetv2_apply_postprocessing` on `nnUNetv2_predict`'s output; a missing file is
refused before any job."""

import json
import pickle
import subprocess

import pandas as pd
import pytest
from e2e import BIN, assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.synthetic_model import build_random_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def noisy_model(demo, tmp_path_factory):
    """Random weights: scattered predictions, so removing all but the largest component changes voxels."""
    root = tmp_path_factory.mktemp("nnUNet_results") / "Dataset993_Postprocessing"
    return build_random_model(demo["model"], root, seed=29)


def write_postprocessing_pkl(path):
    """As nnUNetv2_find_best_configuration's: all foreground first, then a single label."""
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    functions = [remove_all_but_largest_component_from_segmentation] * 2
    path.write_bytes(pickle.dumps((functions, [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 2}])))
    return path


def test_postprocessing_is_identical_to_nnunetv2_apply_postprocessing(noisy_model, two_cases, tmp_path):
    source, cases = two_cases
    pkl = write_postprocessing_pkl(tmp_path / "postprocessing.pkl")
    results = tmp_path / "results"
    run_workflow(noisy_model, source, results, tta="false", postprocessing=pkl)
    run_nnunet_predict(noisy_model, source, tmp_path / "reference", "--disable_tta")
    command = [str(BIN / "nnUNetv2_apply_postprocessing"), "-i", str(tmp_path / "reference"), "-o",
               str(tmp_path / "reference_pp"), "-pp_pkl_file", str(pkl), "-np", "1"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    changed = 0
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", tmp_path / "reference_pp" / f"{case}.nii.gz")
        assert_same_image(results / "before_postprocessing" / f"{case}.nii.gz",
                          tmp_path / "reference" / f"{case}.nii.gz")
        record = json.loads((results / "work" / case / "a1" / "postprocess.json").read_text())
        assert record["status"] == "done" and record["postprocessing"] == str(pkl)
        changed += record["voxels_changed"]
    assert changed > 0  # the comparison is not between two untouched segmentations
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    assert list(summary["stage"]) == ["postprocess"] * 2 and list(summary["status"]) == ["done"] * 2
    assert list(summary["output"]) == [str(results / f"{case}.nii.gz") for case in sorted(cases)]
    assert summary["postprocess_seconds"].notna().all()

    # a rerun with the same file touches nothing; a missing file is refused before any job
    again = run_workflow(noisy_model, source, results, tta="false", postprocessing=pkl)
    assert "Nothing to be done" in again.stdout + again.stderr
    missing = run_workflow(noisy_model, source, tmp_path / "other", postprocessing=tmp_path / "none.pkl", check=False)
    assert missing.returncode != 0 and f"postprocessing file {tmp_path / 'none.pkl'} does not exist" in missing.stderr
    assert not (tmp_path / "other").exists()
