"""The resource policy: reservations per batch from the validate records, floors after an out-of-memory
attempt, the cap of the largest job, runtimes, defaults for a case without estimates, and budgets."""

from types import SimpleNamespace

from nnunet_workflow.estimates import host_memory as memory
from nnunet_workflow.estimates import stage_needs
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.planning import resources
from nnunet_workflow.planning.pipeline import stage_resources
from nnunet_workflow.planning.plan import RunPlan
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.manifest import BatchManifest
from nnunet_workflow.store.records import StageRecord


def policy_with_validated(tmp_path, runs_locally=True, max_job_mem_mb=None, floors=None):
    """A plan with one batch of three cases: two validated with estimates, one that failed validate."""
    layout = Layout(tmp_path)
    estimates = {"big": {"memory_mb": {"preprocess": 3000, "predict": 1500},
                         "timeout_s": {"preprocess": 400, "predict": 900}},
                 "small": {"memory_mb": {"preprocess": 700, "predict": 900},
                           "timeout_s": {"preprocess": 310, "predict": 610}}}
    paths = {}
    for case in ("big", "small", "bad"):
        record = StageRecord("validate", case, "done" if case in estimates else "failed", attempt="a1",
                             details={"estimates": estimates[case]} if case in estimates else {})
        paths[case] = str(layout.record("validate", case, "a1"))
        record.save(paths[case])
    manifest = tmp_path / "batch_1.validate.json"
    BatchManifest("validate", "batch_1", paths, 1, 1).save(manifest)
    plan = RunPlan(attempts=dict.fromkeys(paths, "a1"), pending=list(paths), batches={"batch_1": list(paths)},
                   memory_floor_mb=floors or {}, max_job_mem_mb=max_job_mem_mb)
    cases = {case: Case(case, {0: str(tmp_path / f"{case}_0000.nii")}) for case in paths}
    for case in cases.values():
        (tmp_path / f"{case.id}_0000.nii").write_bytes(b"\0" * (3 << 20))
    policy = resources.ResourcePolicy(plan, cases, runs_locally)
    return policy, SimpleNamespace(batch="batch_1"), SimpleNamespace(validate=str(manifest))


def test_a_batch_reserves_its_largest_case_plus_the_job_around_it(tmp_path):
    policy, wildcards, input = policy_with_validated(tmp_path)
    assert policy.mem_mb("preprocess")(wildcards, input) == 3000 + resources.LOCAL_JOB_OVERHEAD_MB
    assert policy.mem_mb("predict")(wildcards, input) == 1500 + resources.LOCAL_JOB_OVERHEAD_MB
    # validate's own estimate comes from the channel files: a base and twice the largest file's content
    assert policy.mem_mb("validate")(wildcards, None) == memory.VALIDATE_BASE_MB + 6 + resources.LOCAL_JOB_OVERHEAD_MB
    cluster, wildcards, input = policy_with_validated(tmp_path, runs_locally=False)
    assert cluster.mem_mb("preprocess")(wildcards, input) == 3000 + resources.CLUSTER_JOB_OVERHEAD_MB


def test_a_case_without_estimates_reserves_the_stage_base_and_its_default_time(tmp_path):
    policy, wildcards, input = policy_with_validated(tmp_path)
    validated = BatchManifest.load(input.validate).records()
    export, predict = stage_resources("export"), stage_resources("predict")
    assert stage_needs.estimated_mb("export", export, policy.cases["bad"], validated["bad"]) == memory.NNUNET_BASE_MB
    assert stage_needs.estimated_mb("predict", predict, policy.cases["bad"], None) == memory.PREDICT_BASE_MB
    assert stage_needs.estimated_s("export", export, policy.cases["bad"], validated["bad"]) == 600


def test_statistics_of_a_case_validated_before_they_existed_are_estimated_from_its_geometry(tmp_path):
    older = StageRecord("validate", "old", "done", details={
        "estimates": {"memory_mb": {"export": 900}}, "geometry": {"shape_nnunet": [300, 512, 512], "channels": 2}})
    case = Case("old", {0: "old_0000.nii.gz"})
    statistics = stage_resources("statistics")
    from_geometry = memory.statistics_mb(300 * 512 * 512, 2)
    assert stage_needs.estimated_mb("statistics", statistics, case, older) == from_geometry > 2000
    assert stage_needs.estimated_mb("statistics", statistics, case, None) == memory.VALIDATE_BASE_MB


def test_floors_after_running_out_of_memory_and_the_cap_of_the_largest_job(tmp_path):
    floored, wildcards, input = policy_with_validated(tmp_path, floors={"small": {"predict": 5000}})
    assert floored.mem_mb("predict")(wildcards, input) == 5000
    assert floored.reserved_mb("preprocess", "small", 700) == 800  # the floor is for predict only
    capped, wildcards, input = policy_with_validated(tmp_path, max_job_mem_mb=2000, floors={"small": {"predict": 5000}})
    assert capped.mem_mb("predict")(wildcards, input) == 2000
    assert capped.mem_mb("preprocess")(wildcards, input) == 2000


def test_runtime_is_the_sum_of_the_timeouts_plus_the_worker_start_in_minutes(tmp_path):
    policy, wildcards, input = policy_with_validated(tmp_path)
    assert policy.runtime("preprocess")(wildcards, input) == -(-(400 + 310 + 600) // 60) + resources.JOB_SLACK_MIN
    predict_s = stage_resources("predict").setup_s + 900 + 610 + 600
    assert policy.runtime("predict")(wildcards, input) == -(-predict_s // 60) + resources.JOB_SLACK_MIN
    assert resources.runtime_minutes(60) == 1 + resources.JOB_SLACK_MIN
    assert resources.runtime_minutes(61) == 2 + resources.JOB_SLACK_MIN


def test_every_stage_of_a_case_has_resources_and_its_place_in_the_journey():
    from nnunet_workflow.planning.pipeline import REGISTERED
    from nnunet_workflow.store import stage_names

    assert tuple(REGISTERED) == ("validate", "preprocess", "predict", "export", "ensemble", "postprocess", "statistics",
                                 "dicom_seg")
    copies = ["validate", "prev_preprocess", "prev_predict", "prev_export", "preprocess", "predict", "export",
              "m0_preprocess", "m0_export", "m1_prev_preprocess", "m1_prev_export", "m1_preprocess", "m1_export",
              "m17_preprocess", "ensemble", "postprocess", "statistics", "dicom_seg"]
    assert sorted(copies[::-1], key=stage_names.journey_key) == copies
    assert all(stage_resources(stage) for stage in copies)
    assert not stage_names.is_stage("predict_gpu") and not stage_names.is_stage("plan")


def test_a_cascade_runs_its_previous_stage_first_through_copies_of_the_stages(two_channel_model):
    from dataclasses import replace

    from nnunet_workflow.planning.pipeline import stages_for

    cascade = replace(two_channel_model, previous_stage=replace(two_channel_model, configuration="3d_lowres"))
    everything = ["statistics", "dicom_seg"]
    assert tuple(stages_for(two_channel_model)) == ("validate", "preprocess", "predict", "export")
    assert tuple(stages_for(cascade, postprocessing=True))[-2:] == ("export", "postprocess")
    assert tuple(stages_for(cascade, True, everything))[-4:] == ("export", "postprocess", "statistics", "dicom_seg")
    with_all = stages_for(cascade, True, everything)
    assert with_all["statistics"].needs == with_all["dicom_seg"].needs == "postprocess"
    stages = stages_for(cascade)
    assert tuple(stages) == ("validate", "prev_preprocess", "prev_predict", "prev_export", "preprocess", "predict",
                             "export")
    assert [stages[s].needs for s in stages] == [None, "validate", "prev_preprocess", "prev_predict", "prev_export",
                                                 "preprocess", "predict"]
    assert [s for s in stages if stages[s].previous] == ["prev_preprocess", "prev_predict", "prev_export"]
    assert stage_resources("prev_predict") == stages["predict"].resources
    assert stages["prev_predict"].loads_model and stages["prev_predict"].handle is stages["predict"].handle


def test_the_default_budget_is_a_share_of_what_is_available():
    assert resources.default_budget_mb(available_mb=10_000) == 9_000
    assert resources.default_budget_mb(available_mb=0) == 0


def test_predict_jobs_claim_a_gpu_unless_the_device_is_the_cpu():
    assert resources.predict_gpus("cpu") == 0 and resources.predict_gpus("cuda:1") == 1


def test_local_budgets_are_set_only_where_none_was_given(capsys):
    from snakemake.resources import Resource

    given = {"mem_mb": Resource("mem_mb", 5000), "gpu": Resource("gpu", 3)}
    assert resources.apply_local_budgets(given, runs_locally=True) == 5000
    assert given["gpu"].value == 3 and capsys.readouterr().err == ""
    derived = {}
    budget = resources.apply_local_budgets(derived, runs_locally=True)
    assert derived["mem_mb"].value == budget > 0 and derived["gpu"].value >= 1
    assert f"mem_mb budget: {budget} MB" in capsys.readouterr().err
    cluster = {}
    assert resources.apply_local_budgets(cluster, runs_locally=False) is None and cluster == {}


def test_preprocess_and_export_jobs_ask_for_one_thread_per_slab_of_their_largest_case_at_most_their_setting(
        tmp_path):
    import pytest

    policy, wildcards, input = policy_with_validated(tmp_path)
    assert policy.threads("export")(wildcards, input) == 1  # no voxels estimated: one slab
    validate = BatchManifest.load(input.validate)
    big = StageRecord.load(validate.cases["big"])
    StageRecord.from_json({**big.to_json(), "estimates": {"voxels": 5 * memory.SLAB_VOXELS}}).save(
        validate.cases["big"])
    for wanted, threads in ((1, 1), (2, 2), (4, 4), (8, 5)):
        policy.wanted_export_threads, policy.wanted_preprocess_threads = wanted, 3
        assert policy.threads("export")(wildcards, input) == threads
        assert policy.threads("prev_export")(wildcards, input) == threads
        assert policy.threads("preprocess")(wildcards, input) == 3  # its own setting
        assert policy.threads("prev_preprocess")(wildcards, input) == 3
    missing = SimpleNamespace(validate=str(tmp_path / "not_yet.json"))
    with pytest.raises(FileNotFoundError):  # Snakemake asks again once validate has run
        policy.threads("export")(wildcards, missing)
    policy.dry_run = True
    assert policy.threads("export")(wildcards, missing) == 8  # a dry run shows the most


def test_a_dry_run_is_told_from_the_command_line():
    from nnunet_workflow.planning.run_location import is_dry_run

    assert is_dry_run(["snakemake", "-n"]) and is_dry_run(["snakemake", "-np", "--cores", "2"])
    assert is_dry_run(["snakemake", "--dry-run"]) and is_dry_run(["snakemake", "--dryrun"])
    assert not is_dry_run(["snakemake", "--cores", "2", "-p", "--config", "input=in"])
