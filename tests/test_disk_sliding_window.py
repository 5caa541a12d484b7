"""Prediction with the sliding window's sums on disk (stages/disk_sliding_window) equals nnU-Net's
predict_logits_from_preprocessed_data bit for bit: several tiles, a volume smaller than a tile (padded), two folds
averaged, mirroring (TTA), the 2d configuration; and the workflow with `out_of_core: always` equals
nnUNetv2_predict end to end. The predictions run in a subprocess: torch's threads started in
the test process would hang the forked workers of later tests."""

import json
import subprocess
import sys

import numpy as np
import pytest
from e2e import assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.synthetic_model import build_random_model

pytestmark = pytest.mark.slow  # the demo model's plans (built once per CI run)

SCRIPT = """
import json, sys
import numpy as np, torch
from nnunet_workflow.execution.job import RunOptions
from nnunet_workflow.nnunet.model import load_model
from nnunet_workflow.stages.disk_sliding_window import predict_logits_to_file
from nnunet_workflow.stages.predict import load_predictor

model_folder, data_path, ours, theirs, tta = sys.argv[1:6]
predictor = load_predictor(load_model(model_folder), RunOptions(step_size=0.5, tta=tta == "true", device="cpu",
                                                                 threads=2))
shape, dtype = predict_logits_to_file(predictor, data_path, ours)
data = torch.from_numpy(np.load(data_path)).to(dtype=torch.float32, memory_format=torch.contiguous_format)
np.save(theirs, predictor.predict_logits_from_preprocessed_data(data).cpu().numpy())
print(json.dumps({"shape": list(shape), "dtype": str(dtype)}))
"""


def run_both(model, data, tmp_path, tta=False):
    np.save(tmp_path / "data.npy", data)
    script = tmp_path / "both.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(model), str(tmp_path / "data.npy"),
                           str(tmp_path / "ours.npy"), str(tmp_path / "theirs.npy"), str(tta).lower()],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    return np.load(tmp_path / "ours.npy"), np.load(tmp_path / "theirs.npy"), reported


@pytest.fixture(scope="module")
def two_folds(demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("nnUNet_results") / "Dataset996_Disk"
    return build_random_model(demo["model"], root, num_classes=4, seed=5, folds=("0", "1"))


@pytest.mark.parametrize("shape,tta", [((70, 90, 61), False), ((40, 60, 50), True)],
                         ids=["several_tiles", "padded_mirrored"])
def test_logits_equal_nnunets_with_two_folds(two_folds, tmp_path, shape, tta):
    data = np.random.default_rng(1).normal(size=(2, *shape)).astype(np.float32)
    ours, theirs, reported = run_both(two_folds, data, tmp_path, tta)
    assert ours.dtype == theirs.dtype == np.float16 and ours.shape == theirs.shape == (4, *shape)
    assert reported == {"shape": [4, *shape], "dtype": "float16"}
    assert np.array_equal(ours, theirs)
    assert not list(tmp_path.glob("ours.npy.*"))  # no fold or padding scratch left


def test_logits_equal_nnunets_in_the_2d_configuration(demo, tmp_path):
    model = build_random_model(demo["model"], tmp_path / "nnUNet_results" / "Dataset996_Disk", num_classes=3,
                               seed=6, configuration="2d")
    data = np.random.default_rng(2).normal(size=(2, 5, 70, 61)).astype(np.float32)
    ours, theirs, _ = run_both(model, data, tmp_path)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


def test_the_workflow_with_its_sums_on_disk_equals_nnunetv2_predict(two_folds, two_cases, tmp_path):
    source, cases = two_cases
    run_workflow(two_folds, source, tmp_path / "results", out_of_core="always")  # with TTA
    run_nnunet_predict(two_folds, source, tmp_path / "reference", folds=["0", "1"])
    for case in cases:
        assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
        record = json.loads((tmp_path / "results" / "work" / case / "a1" / "predict.json").read_text())
        assert record["status"] == "done" and record["sums_on_disk"] is True
