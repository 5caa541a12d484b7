"""Memory estimates, time limits and sizes: from headers and gzip trailers."""

import gzip
from dataclasses import replace

from nnunet_workflow.estimates import host_memory as memory
from nnunet_workflow.estimates import timeouts
from nnunet_workflow.inputs.image_size import uncompressed_bytes


def test_uncompressed_size_comes_from_the_gzip_trailer(tmp_path):
    path = tmp_path / "x_0000.nii.gz"
    path.write_bytes(gzip.compress(b"\0" * 1_000_000))
    assert path.stat().st_size < 10_000 and uncompressed_bytes(path) == 1_000_000
    plain = tmp_path / "x_0000.nrrd"
    plain.write_bytes(b"1234")
    assert uncompressed_bytes(plain) == 4
    assert memory.validate_memory_mb([path, plain]) == memory.VALIDATE_BASE_MB + 2
    assert timeouts.validate_timeout_s([path, plain]) == 121


def test_incompressible_gzip_content_is_not_taken_for_a_wrapped_size(tmp_path):
    import os

    noise = os.urandom(3_000_000)
    path = tmp_path / "noise_0000.nii.gz"
    path.write_bytes(gzip.compress(noise))
    assert path.stat().st_size > len(noise)  # gzip made it larger
    assert uncompressed_bytes(path) == len(noise)
    wrapped = tmp_path / "big_0000.nii.gz"  # 4 GiB + 100 bytes compressed to 1 MB: the trailer holds 100
    wrapped.write_bytes(b"\0" * (1 << 20) + (100).to_bytes(4, "little"))
    assert uncompressed_bytes(wrapped) == (4 << 30) + 100


def test_estimates_grow_with_the_case_and_separate_z_is_detected(two_channel_model):
    small = memory.stage_estimates([40, 40, 40], [1.0, 1.0, 1.0], 2, 2, two_channel_model)
    large = memory.stage_estimates([300, 512, 512], [2.5, 0.7, 0.7], 2, 2, two_channel_model)
    for stage in ("preprocess", "predict", "export"):
        assert large.memory_mb[stage] > small.memory_mb[stage]
    assert not small.separate_z
    assert memory.stage_estimates([14, 80, 80], [4.0, 0.8, 0.8], 2, 2, two_channel_model).separate_z


def test_time_limits_grow_with_voxels_classes_and_folds():
    base = timeouts.stage_timeouts_s(64**3, 64**3, channels=2, classes=3, folds=1)
    assert base == {"preprocess": 304, "predict": 705, "export": 302}
    ct = timeouts.stage_timeouts_s(512 * 512 * 300, 300 * 300 * 200, channels=2, classes=3, folds=1)
    assert all(ct[key] > base[key] for key in base)
    assert timeouts.stage_timeouts_s(64**3, 64**3, 2, 3, folds=5)["predict"] > base["predict"]
    assert timeouts.stage_timeouts_s(512**3, 64**3, 2, 50, 1)["export"] > \
        timeouts.stage_timeouts_s(512**3, 64**3, 2, 3, 1)["export"]


def test_streaming_export_estimate_does_not_grow_with_classes(two_channel_model):
    ct, spacing = [300, 512, 512], [2.5, 0.7, 0.7]
    few, many = replace(two_channel_model, num_classes=3), replace(two_channel_model, num_classes=50)
    assert memory.stage_estimates(ct, spacing, 2, 2, many).memory_mb["predict"] > \
        memory.stage_estimates(ct, spacing, 2, 2, few).memory_mb["predict"]
    assert memory.stage_estimates(ct, spacing, 2, 2, many).memory_mb["export"] == \
        memory.stage_estimates(ct, spacing, 2, 2, few).memory_mb["export"]
    # nnU-Net's own export (probabilities, or a resampling the streaming export does not reproduce) does
    nnunet_export = replace(many, streaming_export=False)
    assert memory.stage_estimates(ct, spacing, 2, 2, nnunet_export).memory_mb["export"] > \
        3 * memory.stage_estimates(ct, spacing, 2, 2, many).memory_mb["export"]
    # with probabilities: streamed (streaming_probabilities), for label and region models
    streamed = memory.stage_estimates(ct, spacing, 2, 2, many, save_probabilities=True).memory_mb["export"]
    assert 3 * streamed < memory.stage_estimates(ct, spacing, 2, 2, nnunet_export,
                                                 save_probabilities=True).memory_mb["export"]
    regions = replace(many, labels={"background": 0, **{f"r{i}": list(range(i, 50)) for i in range(1, 50)}})
    streamed = memory.stage_estimates(ct, spacing, 2, 2, regions, save_probabilities=True).memory_mb["export"]
    assert 3 * streamed < memory.stage_estimates(ct, spacing, 2, 2, replace(regions, streaming_export=False),
                                                 save_probabilities=True).memory_mb["export"]
    # nnU-Net's torch resampling: a class at a time (stages/torch_resampling), whatever K
    torch_plans = replace(many, torch_resampling=True)
    assert memory.stage_estimates(ct, spacing, 2, 2, torch_plans).memory_mb["export"] == \
        memory.stage_estimates(ct, spacing, 2, 2, replace(few, torch_resampling=True)).memory_mb["export"]
    assert 3 * memory.stage_estimates(ct, spacing, 2, 2, torch_plans).memory_mb["export"] < \
        memory.stage_estimates(ct, spacing, 2, 2, nnunet_export).memory_mb["export"]


def test_a_cascade_stage_reserves_for_the_previous_stage_segmentation_and_its_one_hot_channels(two_channel_model):
    """Its network takes the previous stage's foreground labels as extra input channels (predict) and its
    preprocess reads and resamples that segmentation; validate estimates the previous stage's stages too,
    at the previous stage's own (coarser) spacing."""
    from nnunet_workflow.estimates.case_estimates import case_estimates

    ct, spacing = [300, 512, 512], [2.5, 0.7, 0.7]
    lowres = replace(two_channel_model, configuration="3d_lowres", target_spacing=(3.0, 1.5, 1.5))
    cascade = replace(two_channel_model, configuration="3d_cascade_fullres", previous_stage=lowres)
    assert cascade.num_input_channels == 4
    alone, staged = (memory.stage_estimates(ct, spacing, 2, 2, m) for m in (two_channel_model, cascade))
    alone, staged = alone.memory_mb, staged.memory_mb
    assert staged["predict"] > alone["predict"] and staged["preprocess"] > alone["preprocess"]
    assert staged["export"] == alone["export"]
    estimates = case_estimates(ct, spacing, 2, 2, cascade, False)
    previous = memory.stage_estimates(ct, spacing, 2, 2, lowres)
    for stage in ("preprocess", "predict", "export"):
        assert estimates.memory_mb[f"prev_{stage}"] == previous.memory_mb[stage]
        assert estimates.timeout_s[f"prev_{stage}"] > 0
    assert estimates.voxels_resampled["prev_predict"] < estimates.voxels_resampled["predict"]


def test_the_statistics_estimate_is_the_runs_own_and_only_when_statistics_run(two_channel_model):
    """Statistics run once per case after the segmentation: one estimate at the top, none for a cascade's previous
    stage, and none when they are off (a case is never refused for a stage that does not run)."""
    from nnunet_workflow.estimates.case_estimates import case_estimates

    ct, spacing = [300, 512, 512], [2.5, 0.7, 0.7]
    cascade = replace(two_channel_model, configuration="3d_cascade_fullres",
                      previous_stage=replace(two_channel_model, configuration="3d_lowres"))
    on = case_estimates(ct, spacing, 2, 2, cascade, False, statistics=True)
    assert on.memory_mb["statistics"] == memory.statistics_mb(300 * 512 * 512, 2) and on.timeout_s["statistics"] > 300
    assert not [stage for stage in (*on.memory_mb, *on.timeout_s) if stage.endswith("statistics")
                and stage != "statistics"]
    off = case_estimates(ct, spacing, 2, 2, cascade, False)
    assert not [stage for stage in (*off.memory_mb, *off.timeout_s) if "statistics" in stage]


def test_predicts_gpu_estimates_follow_cascade_and_ensemble_copies(two_channel_model):
    """Validate records predict's GPU memory (with the logits on the device and in host memory) for the model and
    each copy of predict: a cascade's previous stage at its own spacing, each ensemble member; a cascade stage's
    network takes the one-hot channels too. A model whose network is not counted gets none."""
    from conftest import DEMO_ARCHITECTURE, DEMO_PATCH

    from nnunet_workflow.estimates.case_estimates import case_estimates

    ct, spacing = [300, 512, 512], [2.5, 0.7, 0.7]
    counted = replace(two_channel_model, architecture=DEMO_ARCHITECTURE, patch_size=DEMO_PATCH)
    alone = memory.stage_estimates(ct, spacing, 2, 2, counted)
    assert alone.gpu_mb["predict"]["logits_on_host"] < alone.gpu_mb["predict"]["logits_on_device"]
    assert "predict" not in memory.stage_estimates(ct, spacing, 2, 2, two_channel_model).gpu_mb
    lowres = replace(counted, configuration="3d_lowres", target_spacing=(3.0, 1.5, 1.5))
    cascade = replace(counted, configuration="3d_cascade_fullres", previous_stage=lowres)
    staged = case_estimates(ct, spacing, 2, 2, cascade, False)
    on_device = alone.gpu_mb["predict"]["logits_on_device"]
    assert staged.gpu_mb["predict"]["logits_on_device"] > on_device  # two one-hot channels more
    assert staged.gpu_mb["prev_predict"]["logits_on_device"] < on_device  # the coarser grid
    assert "logits_on_host" in staged.gpu_mb["prev_predict"]
    member = replace(counted, folder=two_channel_model.folder.parent / "other")
    ensemble = case_estimates(ct, spacing, 2, 2, counted, False, ensemble=(counted, member))
    assert ensemble.gpu_mb["m0_predict"] == ensemble.gpu_mb["m1_predict"] == alone.gpu_mb["predict"]
