"""One GPU per predict job: jobs claim distinct GPUs of the visible ones (a faked device list here), wait while
all are taken, free theirs when they end (or die), and show their workers only theirs."""

import multiprocessing
import os
import time

import pytest

from nnunet_workflow.execution.gpu_slots import assigns_gpus, claimed_gpu, one_gpu_for_this_job, visible_gpu_ids


def test_visible_gpus_come_from_cuda_visible_devices_else_the_device_files(tmp_path):
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "3, 5,GPU-ab12"}) == ["3", "5", "GPU-ab12"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": ""}) == []
    for name in ("nvidia10", "nvidia2", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert visible_gpu_ids({}, devices=tmp_path) == ["2", "10"]


def test_which_jobs_claim_a_gpu():
    assert assigns_gpus("auto", {}) and assigns_gpus("cuda", {})
    assert not assigns_gpus("cpu", {}) and not assigns_gpus("cuda:1", {}) and not assigns_gpus("mps", {})
    assert not assigns_gpus("auto", {"SLURM_JOB_ID": "12"})  # SLURM gave the job its GPU


def hold(folder, ids, started, release, claimed):
    with claimed_gpu(folder, ids) as gpu:
        claimed.put(gpu)
        started.set()
        release.wait(30)


def test_concurrent_jobs_get_distinct_gpus_and_a_third_waits_for_one(tmp_path):
    context = multiprocessing.get_context("fork")
    claimed = context.Queue()
    jobs, releases = [], []
    for _ in range(2):
        started, release = context.Event(), context.Event()  # its own event: one job is killed while waiting
        job = context.Process(target=hold, args=(tmp_path, ["3", "5"], started, release, claimed))
        job.start()
        assert started.wait(30)
        jobs.append(job)
        releases.append(release)
    assert sorted([claimed.get(timeout=5), claimed.get(timeout=5)]) == ["3", "5"]
    with pytest.raises(TimeoutError, match=r"no free GPU among \['3', '5'\]"):
        with claimed_gpu(tmp_path, ["3", "5"], timeout_s=1):
            pass
    jobs[0].kill()  # a killed job frees its GPU
    jobs[0].join()
    with claimed_gpu(tmp_path, ["3", "5"], timeout_s=10) as gpu:
        assert gpu in ("3", "5")
    releases[1].set()
    jobs[1].join(30)
    assert jobs[1].exitcode == 0


def test_the_workers_of_a_job_see_its_gpu_alone(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "3,5"}
    with one_gpu_for_this_job(tmp_path, "auto", environ) as gpu:
        assert gpu == "3" and environ["CUDA_VISIBLE_DEVICES"] == "3"
        with one_gpu_for_this_job(tmp_path, "auto", {"CUDA_VISIBLE_DEVICES": "3,5"}) as other:
            assert other == "5"
    assert environ == {"CUDA_VISIBLE_DEVICES": "3,5"}
    with one_gpu_for_this_job(tmp_path, "cpu", environ) as none:
        assert none is None and environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    started = time.monotonic()
    with one_gpu_for_this_job(tmp_path, "auto", {"CUDA_VISIBLE_DEVICES": ""}) as none:
        assert none is None and time.monotonic() - started < 1
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "3"
