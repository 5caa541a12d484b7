"""The workflow through profiles/slurm on a real one-node SLURM cluster (tests/slurm/cluster.sh):
same segmentations as nnUNetv2_predict, failures isolated, SLURM job ids in the summary."""

import os
import re
import subprocess
import time

import pandas as pd
import pytest
from e2e import BIN, REPO, assert_same_image, four_cases_and_a_bad_one

pytestmark = pytest.mark.slow
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root")
    subprocess.run(["bash", str(CLUSTER), "start"], check=True)
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], check=False)


def test_demo_through_the_slurm_profile(demo, reference, slurm_cluster, tmp_path):
    source = tmp_path / "input"
    source.mkdir()
    cases, victim = four_cases_and_a_bad_one(demo, source)
    results = tmp_path / "results"
    # This test cluster has no slurmdbd (sacct would hang) and no GPU: predict runs on the CPU.
    command = [str(BIN / "snakemake"), "--profile", "profiles/slurm", "--slurm-status-command", "squeue",
               "--config", f"model={demo['model']}", f"input={source}", f"results={results}", "device=cpu",
               f'faults={{"{victim}": "predict:kill"}}']
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    print(f"sbatch submissions: {len(submitted)}; workflow run: {seconds:.0f} s")

    rows = {r["case"]: r for r in pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False,
                                              dtype=str).to_dict("records")}
    assert (rows["bad"]["status"], rows["bad"]["stage"], rows["bad"]["kind"]) == ("failed", "validate", "invalid_input")
    assert (rows[victim]["status"], rows[victim]["stage"], rows[victim]["kind"]) == ("failed", "predict", "killed")
    for case in cases:
        if case != victim:
            assert rows[case]["status"] == "done"
            assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")
        stages = ("validate", "preprocess", "predict", "export")
        assert all(rows[case][f"{stage}_slurm_job"] in submitted for stage in stages), rows[case]
    assert len({rows[c]["predict_slurm_job"] for c in cases}) == 1  # one batch, one job, one model load
    # the five cases make one batch: one submission per stage (statistics included), the summary and the
    # report run on the submit node
    assert len(submitted) == 5
