"""End to end with a faked list of GPUs (CUDA_VISIBLE_DEVICES=3,5 on a machine without one): each predict
job claims one of them and its worker sees that one alone; torch finds no CUDA there and predicts on the CPU,
identical to nnUNetv2_predict."""

import json
import os
import subprocess

import pytest
from e2e import assert_same_image

from nnunet_workflow.dev.runner import REPO, snakemake_command

pytestmark = pytest.mark.slow


def test_each_predict_job_claims_one_gpu_of_the_visible_ones(demo, two_cases, reference, tmp_path):
    source, cases = two_cases
    results = tmp_path / "results"
    command = snakemake_command(demo["model"], source, results, cores=2, batch_size=1, predict_threads=1,
                                statistics="false")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "3,5"})
    assert done.returncode == 0, done.stderr[-4000:]
    manifests = [json.loads(p.read_text()) for p in (results / "work" / "batches").glob("*.predict.json")]
    assert len(manifests) == 2 and {m["gpu"] for m in manifests} <= {"3", "5"}
    for manifest in manifests:
        [record_path] = manifest["cases"].values()
        record = json.loads(open(record_path).read())
        assert record["cuda_visible_devices"] == manifest["gpu"] and record["device"] == "cpu"
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")
