"""batch_size: auto: one batch per predict slot when no cores are left beside it, three per slot when the CPU
stages can overlap prediction, per job slot on a cluster; at most 32 cases a batch."""

from snakemake.resources import Resource

from nnunet_workflow.planning.batch_size import MAX_AUTO_BATCH, MAX_LOCAL_BATCH, auto_batch_size, run_batch_size

CONFIG = {"batch_size": "auto", "device": "auto", "predict_threads": 2}


def test_two_cores_and_one_predict_slot_make_one_batch_of_everything_up_to_the_largest():
    assert auto_batch_size(24, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == 24
    assert auto_batch_size(50, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == MAX_AUTO_BATCH
    assert auto_batch_size(100, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == 50  # one per core
    assert auto_batch_size(0, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == 1


def test_many_cases_locally_make_larger_batches_but_still_one_per_core():
    # each job's start-up counts: 600 cases on 2 cores in 2 batches of 300 (not 19 of 32)
    assert auto_batch_size(120, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == 60
    assert auto_batch_size(600, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == 300
    assert auto_batch_size(100_000, predict_slots=1, cores=2, predict_threads=2, runs_locally=True) == MAX_LOCAL_BATCH
    # with cores to spare, three batches per slot until there is one per core
    assert auto_batch_size(600, predict_slots=1, cores=8, predict_threads=2, runs_locally=True) == 75


def test_spare_cores_give_three_batches_per_predict_slot_so_cpu_stages_overlap_prediction():
    assert auto_batch_size(24, predict_slots=1, cores=8, predict_threads=2, runs_locally=True) == 8
    assert auto_batch_size(24, predict_slots=4, cores=16, predict_threads=2, runs_locally=True) == 2
    assert auto_batch_size(5, predict_slots=4, cores=16, predict_threads=2, runs_locally=True) == 1


def test_on_a_cluster_one_batch_per_job_slot_of_at_least_eight_cases():
    assert auto_batch_size(5, predict_slots=1, cores=1, predict_threads=2, runs_locally=False, max_jobs=100) == 8
    assert auto_batch_size(2000, predict_slots=1, cores=1, predict_threads=2, runs_locally=False,
                           max_jobs=100) == 20
    assert auto_batch_size(9000, predict_slots=1, cores=1, predict_threads=2, runs_locally=False,
                           max_jobs=100) == MAX_AUTO_BATCH


def test_the_run_takes_its_slots_from_the_gpu_budget_or_with_the_cpu_device_from_its_cores():
    two_gpus = {"gpu": Resource("gpu", 2)}
    choose = run_batch_size(CONFIG, two_gpus, cores=16, max_jobs=None, runs_locally=True)
    assert choose(60) == 10  # 2 GPUs x 3 batches
    on_cpu = run_batch_size({**CONFIG, "device": "cpu"}, two_gpus, cores=16, max_jobs=None, runs_locally=True)
    assert on_cpu(64) == 8  # 8 predict jobs of 2 threads fill the 16 cores: one batch each
    assert run_batch_size({**CONFIG, "batch_size": 5}, two_gpus, cores=16, max_jobs=None, runs_locally=True) == 5


def test_a_cluster_run_needs_no_cores_to_choose():
    choose = run_batch_size({**CONFIG, "device": "cpu"}, {}, cores=None, max_jobs=200, runs_locally=False)
    assert choose(5) == 8 and choose(4000) == 20
