"""The GPU estimate of predict: the network counted from the plans as nnU-Net's network counts itself, the
sliding-window arrays byte for byte, the estimate's direction, and when the logits go to host memory up front."""

import copy
import json
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import DEMO_ARCHITECTURE, DEMO_PATCH

from nnunet_workflow.estimates import gpu_memory
from nnunet_workflow.estimates.available_memory import MB
from nnunet_workflow.estimates.gpu_memory import (
    GPU_ESTIMATE_KEYS,
    gpu_estimates,
    logits_on_host_up_front,
    logits_placement,
    network_feature_map_voxels,
    network_parameters,
    predict_gpu_mb,
    predict_gpu_reserved_mb,
    sliding_window_bytes,
)
from nnunet_workflow.store.records import Estimates

CONV_KWARGS = {"conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
               "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
               "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
DEMO = DEMO_ARCHITECTURE
# nnU-Net's default planner on an anisotropic CT: 6 stages, 2 convs per stage, in-plane pooling first.
FULLRES = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
           "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
                           "conv_op": "torch.nn.modules.conv.Conv3d",
                           "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                           "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
                           "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5, **CONV_KWARGS},
           "_kw_requires_import": REQUIRES_IMPORT}
FULLRES_PATCH = (40, 224, 192)
# nnUNetPlannerResEncM's 3d_fullres: 6 stages of BasicBlockD, 1 conv per decoder stage.
RESENC = {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
          "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
                          "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 6,
                          "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                          "n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [1] * 5,
                          **CONV_KWARGS},
          "_kw_requires_import": REQUIRES_IMPORT}
RESENC_PATCH = (128, 128, 128)
# A 2d configuration with BatchNorm (running statistics are buffers on the device too) and no conv bias.
FLAT = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"n_stages": 5, "features_per_stage": [32, 64, 128, 256, 512],
                        "conv_op": "torch.nn.modules.conv.Conv2d",
                        "kernel_sizes": [[3, 3]] * 5, "strides": [[1, 1], [2, 2], [2, 2], [2, 2], [2, 1]],
                        "n_conv_per_stage": [2] * 5, "n_conv_per_stage_decoder": [2] * 4,
                        **{**CONV_KWARGS, "conv_bias": False, "norm_op": "torch.nn.modules.batchnorm.BatchNorm2d",
                           "norm_op_kwargs": {"eps": 1e-05}}},
        "_kw_requires_import": REQUIRES_IMPORT}
FLAT_PATCH = (320, 256)


# Built in a process of its own: building a network runs torch's OpenMP threads, and a process that used them
# deadlocks a worker it forks later (the batches of test_predict_export fork workers that predict).
COUNT_NETWORKS = """
import json, sys
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
counts = []
for architecture, patch, channels, classes in json.load(sys.stdin):
    network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], channels, classes, allow_init=False,
                                     deep_supervision=False)
    elements = sum(p.numel() for p in network.parameters()) + sum(b.numel() for b in network.buffers())
    counts.append([int(network.compute_conv_feature_map_size(tuple(patch))), int(elements)])
print(json.dumps(counts))
"""
NETWORKS = {"demo": (DEMO, DEMO_PATCH, 2, 3), "fullres_6_stages": (FULLRES, FULLRES_PATCH, 1, 14),
            "resenc_6_stages": (RESENC, RESENC_PATCH, 1, 4), "2d_batchnorm": (FLAT, FLAT_PATCH, 3, 2),
            "resenc_4ch": (RESENC, (112, 160, 128), 4, 3)}


@pytest.fixture(scope="module")
def nnunet_counts() -> dict:
    """{network: (feature map voxels, parameters and buffers)} as nnU-Net builds and counts each network."""
    done = subprocess.run([sys.executable, "-c", COUNT_NETWORKS], input=json.dumps(list(NETWORKS.values())),
                          capture_output=True, text=True, check=True)
    return dict(zip(NETWORKS, map(tuple, json.loads(done.stdout))))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_network_is_counted_as_nnunet_builds_and_counts_it(name, nnunet_counts):
    architecture, patch, channels, classes = NETWORKS[name]
    feature_maps, elements = nnunet_counts[name]
    assert network_feature_map_voxels(architecture, patch, classes) == feature_maps
    assert network_parameters(architecture, len(patch), channels, classes) == elements


def model(two_channel_model, architecture=DEMO, patch=DEMO_PATCH, **changes):
    return replace(two_channel_model, architecture=architecture, patch_size=patch, **changes)


def test_the_sliding_window_arrays_are_those_nnunet_allocates(two_channel_model):
    # a case smaller than the patch along z is padded to it: (3 classes + count) float16, 2 channels float32
    arrays = sliding_window_bytes((40, 100, 90), DEMO_PATCH, channels=2, classes=3)
    voxels = 56 * 100 * 90
    assert arrays == {"data": 4 * 2 * voxels, "predicted_logits": 2 * 3 * voxels, "n_predictions": 2 * voxels,
                      "gaussian": 2 * 56 ** 3, "inf_check": 3 * voxels}
    # a 2d configuration keeps the slices' axis and pads the plane
    flat = sliding_window_bytes((7, 100, 300), FLAT_PATCH, channels=1, classes=2)
    assert flat["predicted_logits"] == 2 * 2 * 7 * 320 * 300 and flat["gaussian"] == 2 * 320 * 256


def test_the_estimate_grows_with_the_case_and_the_classes_and_is_smaller_with_the_logits_on_the_host(
        two_channel_model):
    demo = model(two_channel_model)
    small, large = predict_gpu_reserved_mb(demo, (60, 60, 60)), predict_gpu_reserved_mb(demo, (300, 300, 300))
    assert small < large
    more_classes = model(two_channel_model, num_classes=20, labels={f"c{i}": i for i in range(20)})
    assert predict_gpu_reserved_mb(more_classes, (300, 300, 300)) > large
    host = predict_gpu_reserved_mb(demo, (300, 300, 300), logits_on_device=False)
    assert host < large and host == predict_gpu_reserved_mb(demo, (60, 60, 60), logits_on_device=False)
    # the difference is at least the logits, counts and data on the device
    arrays = sliding_window_bytes((300, 300, 300), DEMO_PATCH, 2, 3)
    assert (large - host) * MB >= arrays["predicted_logits"] + arrays["n_predictions"] + arrays["data"] - MB
    assert predict_gpu_mb(demo, (300, 300, 300)) == large + gpu_memory.CUDA_CONTEXT_MB


def test_the_patch_work_counts_weights_activations_and_workspace(two_channel_model):
    resenc = model(two_channel_model, RESENC, RESENC_PATCH, channel_names=("CT",))
    parameters = network_parameters(RESENC, 3, 1, 3)
    activations = 2 * network_feature_map_voxels(RESENC, RESENC_PATCH, 3)
    host = predict_gpu_reserved_mb(resenc, RESENC_PATCH, logits_on_device=False)
    assert host * MB >= 6 * parameters + activations + gpu_memory.CUDNN_WORKSPACE_MB * MB


def test_no_estimate_for_networks_not_counted(two_channel_model):
    assert predict_gpu_mb(two_channel_model, (100, 100, 100)) is None  # plans without `architecture`
    assert gpu_estimates(two_channel_model, (100, 100, 100)) == {}
    other = copy.deepcopy(RESENC)
    other["arch_kwargs"]["block"] = "dynamic_network_architectures.building_blocks.residual.BottleneckD"
    assert gpu_estimates(model(two_channel_model, other, RESENC_PATCH), (100, 100, 100)) == {}
    primus = {"network_class_name": "dynamic_network_architectures.architectures.primus.Primus", "arch_kwargs": {}}
    assert gpu_estimates(model(two_channel_model, primus), (100, 100, 100)) == {}


def test_validate_records_both_estimates_apart_from_host_memory(two_channel_model):
    estimates = gpu_estimates(model(two_channel_model), (100, 100, 100))
    assert set(estimates) == {"predict"} and set(estimates["predict"]) == set(GPU_ESTIMATE_KEYS)
    assert estimates["predict"]["logits_on_host"] < estimates["predict"]["logits_on_device"]
    recorded = Estimates(memory_mb={"predict": 1, "m0_prev_predict": 1, "export": 1},
                         gpu_mb={"predict": estimates["predict"], "m1_predict": estimates["predict"]})
    assert Estimates.from_json(recorded.to_json()) == recorded
    assert set(recorded.memory_mb) == {"predict", "m0_prev_predict", "export"}


@pytest.mark.parametrize("estimate, host, free, reserved, up_front", [
    (10_000, 2_000, 8_000, 0, True),  # does not fit, host logits do
    (10_000, 2_000, 8_000, 2_500, False),  # fits with what torch already holds
    (10_000, 9_000, 8_000, 0, False),  # neither fits: left to nnU-Net's and predict's own fallbacks
    (6_000, 2_000, 8_000, 0, False),  # fits
])
def test_logits_go_to_host_memory_up_front_only_when_that_makes_the_case_fit(estimate, host, free, reserved, up_front):
    assert logits_on_host_up_front(estimate, host, free, reserved) is up_front


def test_predict_places_the_logits_from_the_preprocessed_datas_shape_and_says_why(two_channel_model):
    demo = model(two_channel_model)
    shape = (2, 300, 300, 300)  # channels first, as predict loads it
    on_device = predict_gpu_reserved_mb(demo, shape[1:], True, 2)
    host = predict_gpu_reserved_mb(demo, shape[1:], False, 2)
    assert logits_placement(demo, shape, free_mb=on_device + 100, reserved_mb=0) == (False, on_device, [])
    on_host, estimate, warnings = logits_placement(demo, shape, free_mb=host + 50, reserved_mb=50)
    assert on_host and estimate == host
    assert f"estimated {on_device} MB on the GPU with the logits there" in warnings[0]
    assert f"estimated {host} MB on the GPU)" in warnings[0] and "perform_everything_on_device=False" in warnings[0]
    assert logits_placement(two_channel_model, shape, free_mb=1, reserved_mb=0) == (False, None, [])


class FakeGpuPredictor:
    """nnU-Net's predictor as predict_case uses it, on a 'cuda' device: logits of zeros, and where they were kept."""

    def __init__(self, classes, out_of_memory_on_device=False):
        from types import SimpleNamespace

        self.device, self.classes = SimpleNamespace(type="cuda"), classes
        self.perform_everything_on_device, self.placements = True, []
        self.out_of_memory_on_device = out_of_memory_on_device

    def predict_logits_from_preprocessed_data(self, data):
        import torch

        self.placements.append(self.perform_everything_on_device)
        if self.perform_everything_on_device and self.out_of_memory_on_device:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return torch.zeros((self.classes, *data.shape[1:]), dtype=torch.float16)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread in this test: an OpenMP team started in the test process would deadlock the workers
    that later tests (test_predict_export's batches) fork from it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# the case's estimate: 579 MB with the logits on the device, 535 without
@pytest.mark.parametrize("free_mb, on_host, out_of_memory", [(100_000, False, False), (560, True, False),
                                                           (100_000, True, True)])
def test_predict_keeps_the_logits_on_the_host_up_front_and_records_its_estimate(two_channel_model, tmp_path,
                                                                                monkeypatch, free_mb, on_host,
                                                                                out_of_memory, one_torch_thread):
    """Estimated to fit: on the device; not: on the host up front; estimated to fit but out of GPU memory all the
    same: on the host after the retry, the estimate recorded being the one it was placed by."""
    import numpy as np
    import torch

    from nnunet_workflow.stages import predict

    demo = model(two_channel_model)
    np.save(tmp_path / "data.npy", np.zeros((2, 60, 200, 200), dtype=np.float32))
    from nnunet_workflow.execution.job import RunOptions

    job = type("Job", (), {"id": "c1", "model": demo, "preprocessed": lambda self: tmp_path / "data.npy",
                           "logits": lambda self: tmp_path / "logits.npy", "options": RunOptions()})()
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: None)
    monkeypatch.setattr(predict, "device_memory_mb", lambda device: (free_mb, 0))
    monkeypatch.setattr(predict, "gpu_peaks", lambda device: {"gpu_peak_mb": 123.0})
    predictor = FakeGpuPredictor(demo.num_classes, out_of_memory)
    details = predict.predict_case(predictor, job)
    assert predictor.placements == ([True, False] if out_of_memory else [not on_host])
    assert predictor.perform_everything_on_device  # as it was
    assert details["logits_on_host"] is on_host and details["gpu_peak_mb"] == 123.0
    placed_by = predict_gpu_reserved_mb(demo, (60, 200, 200), not on_host or out_of_memory, 2)
    assert details["gpu_estimate_mb"] == placed_by
    assert len(details["warnings"]) == on_host
    if on_host:
        assert ("ran out of GPU memory" in details["warnings"][0]) is out_of_memory
    assert np.load(tmp_path / "logits.npy").shape == (3, 60, 200, 200)
