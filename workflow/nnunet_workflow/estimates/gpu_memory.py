"""GPU memory a case needs in predict, computed from the plans' network and nnU-Net's sliding-window arrays.

Pure Python (no torch: validate's worker uses it too). The network's conv feature maps and parameters are
counted from plans.json's `architecture` as dynamic_network_architectures counts and builds them; the arrays
follow nnU-Net 2.8.1's `nnUNetPredictor` (inference/predict_from_raw_data.py). The constants marked
uncalibrated are allowances to be checked against `gpu_peak_mb` (torch.cuda.max_memory_reserved) recorded per
case by predict (benchmarks/throughput.py --device cuda prints the ratio).
"""

from __future__ import annotations

import math

from .available_memory import MB

# The network classes counted here (module path as plans.json names them); others get no estimate.
PLAIN_UNET = "PlainConvUNet"
RESIDUAL_UNET = "ResidualEncoderUNet"

# CUDA context and torch's loaded kernels (cuDNN, cuBLAS): held by the process but not in torch's reserved
# figure (`gpu_peak_mb`); nvidia-smi shows them. Typical with CUDA 12 lazy module loading. Uncalibrated.
CUDA_CONTEXT_MB = 500
# The network's weights on the device: float32 (predict_sliding_window_return_logits: network.to(device)) ...
WEIGHT_BYTES = 4
# ... and their float16 copies, which autocast caches for the whole `torch.autocast` block (it caches casts of
# leaf tensors that require grad; nnU-Net leaves requires_grad on).
AUTOCAST_WEIGHT_BYTES = 2
# Activations are float16: nnU-Net predicts under torch.autocast on cuda (predict_sliding_window_return_logits).
ACTIVATION_BYTES = 2
# Share of compute_conv_feature_map_size alive at once, batch 1, no autograd: at the full-resolution decoder
# stage the skip, the transposed conv's output, their concatenation (twice the features), a conv's output and
# its norm's output (LeakyReLU is in place): ~0.75 of the count with nnU-Net's 2 convs per stage, ~1.3 with 1
# (the demo's). Uncalibrated.
ACTIVATIONS_ALIVE = 1.0
# cuDNN's workspace (nnU-Net sets cudnn.benchmark = True on cuda, which tries algorithms with workspaces).
# Uncalibrated allowance.
CUDNN_WORKSPACE_MB = 512
# Input patches on the device at once: the producer thread's queue holds 2 (Queue(maxsize=2) in
# _internal_predict_sliding_window_return_logits), one is predicted, the producer holds the next. float32.
PATCHES_IN_FLIGHT = 4
INPUT_BYTES = 4
# Patch-sized outputs at once in _internal_maybe_mirror_and_predict: the prediction being summed, a mirrored
# prediction and its flip back (float16 under autocast); and the mirrored input (float32, torch.flip).
PATCH_OUTPUTS = 3
MIRRORED_INPUTS = 1
# The sliding-window arrays: predicted_logits and n_predictions are torch.half over the padded image, the
# gaussian is float16 over a patch (compute_gaussian's default dtype), the data keeps predict's float32.
LOGITS_BYTES = 2
COUNT_BYTES = 2
GAUSSIAN_BYTES = 2
DATA_BYTES = 4
# torch.isinf(predicted_logits) at the end of the sliding window: a bool per logit.
INF_CHECK_BYTES = 1
# The estimates validate records of a predicting stage (with the CUDA context), in Estimates.gpu_mb.
GPU_ESTIMATE_KEYS = ("logits_on_device", "logits_on_host")


def _kind(architecture: dict | None) -> str | None:
    """PLAIN_UNET or RESIDUAL_UNET when the network is one counted here (ResidualEncoderUNet with BasicBlockD
    and strided convs, nnU-Net's planners' choice), else None."""
    if not architecture or "arch_kwargs" not in architecture:
        return None
    name = architecture.get("network_class_name", "").rsplit(".", 1)[-1]
    kwargs = architecture["arch_kwargs"]
    if name == PLAIN_UNET and kwargs.get("pool", "conv") == "conv":
        return name
    if name == RESIDUAL_UNET and str(kwargs.get("block") or "BasicBlockD").endswith("BasicBlockD") \
            and kwargs.get("pool_type", "conv") == "conv":
        return name
    return None


def supported(architecture: dict | None) -> bool:
    return _kind(architecture) is not None


def _per_stage(value, count: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def _per_axis(value, dims: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * dims


def _after(size, stride) -> list[int]:
    return [i // j for i, j in zip(size, stride)]


class _Plans:
    """The architecture kwargs, per stage and per axis, as the network's constructors expand them."""

    def __init__(self, architecture: dict, dims: int):
        kwargs = architecture["arch_kwargs"]
        self.kind = _kind(architecture)
        n = self.stages = int(kwargs["n_stages"])
        self.features = [int(f) for f in _per_stage(kwargs["features_per_stage"], n)]
        self.strides = [_per_axis(s, dims) for s in _per_stage(kwargs["strides"], n)]
        self.kernels = [_per_axis(k, dims) for k in _per_stage(kwargs["kernel_sizes"], n)]
        self.decoder_convs = [int(c) for c in _per_stage(kwargs["n_conv_per_stage_decoder"], n - 1)]
        per_stage = kwargs["n_conv_per_stage"] if self.kind == PLAIN_UNET else kwargs["n_blocks_per_stage"]
        self.encoder_convs = [int(c) for c in _per_stage(per_stage, n)]
        self.stem = int(kwargs.get("stem_channels") or self.features[0])
        self.conv_bias = bool(kwargs.get("conv_bias", False))
        self.norm_op = kwargs.get("norm_op")
        self.norm_kwargs = kwargs.get("norm_op_kwargs") or {}


def network_feature_map_voxels(architecture: dict, patch_size, num_classes: int) -> int:
    """The element count of every conv's output for one patch, as the network's compute_conv_feature_map_size
    counts it (PlainConvUNet, ResidualEncoderUNet; encoder, decoder without deep supervision, as nnU-Net
    predicts), from plans.json's `architecture` without building the network."""
    plans = _Plans(architecture, len(patch_size))
    size, total = list(patch_size), 0
    if plans.kind == RESIDUAL_UNET:
        total += plans.stem * math.prod(size)  # ResidualEncoder's stem: one conv, stride 1
    channels = plans.stem
    for s in range(plans.stages):
        inner = _after(size, plans.strides[s])
        feature_map = plans.features[s] * math.prod(inner)
        if plans.kind == PLAIN_UNET:  # StackedConvBlocks: every conv at the strided size
            total += plans.encoder_convs[s] * feature_map
        else:  # StackedResidualBlocks of BasicBlockD: conv1, conv2, and the first block's skip where it changes
            changes = channels != plans.features[s] or inner != size
            total += 2 * plans.encoder_convs[s] * feature_map + (feature_map if changes else 0)
        channels, size = plans.features[s], inner
    # UNetDecoder, lowest resolution first: each stage's convs, its transposed conv, the last stage's seg layer
    skip_sizes, size = [], list(patch_size)
    for s in range(plans.stages - 1):
        size = _after(size, plans.strides[s])
        skip_sizes.append(size)
    for d in range(plans.stages - 1):
        voxels = math.prod(skip_sizes[-(d + 1)])
        total += (plans.decoder_convs[d] + 1) * plans.features[-(d + 2)] * voxels
        if d == plans.stages - 2:
            total += num_classes * voxels
    return int(total)


def _norm_tensors(plans: _Plans, channels: int) -> int:
    """Parameters and buffers of a norm layer: affine weight and bias; running mean and variance and the
    batch counter where tracked (torch's defaults: InstanceNorm neither, BatchNorm both)."""
    if not plans.norm_op:
        return 0
    batch = "BatchNorm" in str(plans.norm_op)
    affine = plans.norm_kwargs.get("affine", batch)
    tracked = plans.norm_kwargs.get("track_running_stats", batch)
    return (2 * channels if affine else 0) + (2 * channels + 1 if tracked else 0)


def _conv_block(plans: _Plans, inputs: int, outputs: int, kernel, bias: bool | None = None) -> int:
    """ConvDropoutNormReLU: a conv and its norm."""
    bias = plans.conv_bias if bias is None else bias
    return inputs * outputs * math.prod(kernel) + (outputs if bias else 0) + _norm_tensors(plans, outputs)


def network_parameters(architecture: dict, dims: int, input_channels: int, num_classes: int) -> int:
    """The elements of the network's parameters and buffers (what network.to(device) moves), counted from
    plans.json's `architecture` as PlainConvUNet and ResidualEncoderUNet build their layers."""
    plans = _Plans(architecture, dims)
    total, channels = 0, input_channels
    if plans.kind == RESIDUAL_UNET:
        total += _conv_block(plans, channels, plans.stem, plans.kernels[0])
        channels = plans.stem
    for s in range(plans.stages):
        features, kernel = plans.features[s], plans.kernels[s]
        for _ in range(plans.encoder_convs[s]):
            if plans.kind == PLAIN_UNET:
                total += _conv_block(plans, channels, features, kernel)
            else:  # BasicBlockD: conv1, conv2, and a 1x1 projection (no bias) where the channels change
                total += _conv_block(plans, channels, features, kernel) + _conv_block(plans, features, features, kernel)
                if channels != features:
                    total += _conv_block(plans, channels, features, [1] * dims, bias=False)
            channels = features
    for d in range(1, plans.stages):
        below, skip = plans.features[-d], plans.features[-(d + 1)]
        total += below * skip * math.prod(plans.strides[-d]) + (skip if plans.conv_bias else 0)  # transposed conv
        total += _conv_block(plans, 2 * skip, skip, plans.kernels[-(d + 1)])
        total += (plans.decoder_convs[d - 1] - 1) * _conv_block(plans, skip, skip, plans.kernels[-(d + 1)])
        total += skip * num_classes + num_classes  # seg layer (1x1, bias), built for every stage
    return int(total)


def padded_shape(shape_resampled, patch_size) -> list[int]:
    """The image nnU-Net slides over: pad_nd_image pads the last axes up to the patch (never crops); a 2d
    configuration's first axis is kept."""
    shape = [int(s) for s in shape_resampled]
    lead = len(shape) - len(patch_size)
    return shape[:lead] + [max(s, p) for s, p in zip(shape[lead:], patch_size)]


def sliding_window_bytes(shape_resampled, patch_size, channels: int, classes: int) -> dict:
    """The arrays _internal_predict_sliding_window_return_logits allocates on its results device, in bytes."""
    voxels = math.prod(padded_shape(shape_resampled, patch_size))
    return {"data": DATA_BYTES * channels * voxels,  # data.to(results_device)
            "predicted_logits": LOGITS_BYTES * classes * voxels,
            "n_predictions": COUNT_BYTES * voxels,
            "gaussian": GAUSSIAN_BYTES * math.prod(patch_size),
            "inf_check": INF_CHECK_BYTES * classes * voxels}


def weight_elements(model, channels: int) -> int:
    """The network's parameters and buffers for a model taking this many input channels."""
    return network_parameters(model.architecture, len(model.patch_size), channels, model.num_classes)


def patch_bytes(model, channels: int) -> int:
    """What predicting one patch holds on the device wherever the logits are: weights and their autocast
    copies, the patches in flight, the patch's outputs, its activations and cuDNN's workspace."""
    architecture, patch, classes = model.architecture, model.patch_size, model.num_classes
    patch_voxels = math.prod(patch)
    weights = (WEIGHT_BYTES + AUTOCAST_WEIGHT_BYTES) * weight_elements(model, channels)
    inputs = (PATCHES_IN_FLIGHT + MIRRORED_INPUTS) * INPUT_BYTES * channels * patch_voxels
    outputs = PATCH_OUTPUTS * ACTIVATION_BYTES * classes * patch_voxels
    activations = ACTIVATIONS_ALIVE * ACTIVATION_BYTES * network_feature_map_voxels(architecture, patch, classes)
    return math.ceil(weights + inputs + outputs + activations) + CUDNN_WORKSPACE_MB * MB


def predict_gpu_reserved_mb(model, shape_resampled, logits_on_device: bool = True,
                            channels: int | None = None) -> int | None:
    """torch's reserved peak (comparable to `gpu_peak_mb`) of predicting a case of this shape on the network's
    grid (channels first excluded; `channels` defaults to the network's input channels). With the logits on
    the device, the larger of: the sliding window (patch work, data, logits, counts, gaussian, then the inf
    check while the patch work stays cached) and its end (empty_cache and autocast's exit leave the weights,
    the cached gaussian, the logits and, where padding is cut off, their contiguous copy for .to('cpu')).
    None for a network not counted here."""
    if not supported(model.architecture):
        return None
    channels = model.num_input_channels if channels is None else channels
    peak = patch_bytes(model, channels)
    if logits_on_device:
        arrays = sliding_window_bytes(shape_resampled, model.patch_size, channels, model.num_classes)
        window = peak + sum(arrays.values())
        cropped = LOGITS_BYTES * model.num_classes * math.prod(shape_resampled)
        padded = list(padded_shape(shape_resampled, model.patch_size)) != [int(s) for s in shape_resampled]
        end = WEIGHT_BYTES * weight_elements(model, channels) + arrays["predicted_logits"] + arrays["gaussian"] \
            + (cropped if padded else 0)
        peak = max(window, end)
    return math.ceil(peak / MB)


def predict_gpu_mb(model, shape_resampled, logits_on_device: bool = True, channels: int | None = None) -> int | None:
    """The GPU memory predict needs for a case: torch's reserved peak plus the CUDA context (nvidia-smi's view)."""
    reserved = predict_gpu_reserved_mb(model, shape_resampled, logits_on_device, channels)
    return None if reserved is None else reserved + CUDA_CONTEXT_MB


def gpu_estimates(model, shape_resampled) -> dict:
    """Validate's GPU estimates of a case's predict, {"predict": {"logits_on_device": MB, "logits_on_host": MB}};
    none for a network not counted here."""
    on_device = predict_gpu_mb(model, shape_resampled)
    if on_device is None:
        return {}
    on_host = predict_gpu_mb(model, shape_resampled, logits_on_device=False)
    return {"predict": dict(zip(GPU_ESTIMATE_KEYS, (on_device, on_host)))}


def logits_on_host_up_front(estimate_mb: int, host_logits_estimate_mb: int, free_mb: float,
                            reserved_mb: float) -> bool:
    """Predict with the logits in host memory from the start: the case's reserved estimate with them on the
    device exceeds what torch can get (the device's free memory plus what its allocator already holds), and
    the estimate with them in host memory fits."""
    available = free_mb + reserved_mb
    return estimate_mb > available and host_logits_estimate_mb <= available


def logits_placement(model, data_shape, free_mb: float, reserved_mb: float) -> tuple[bool, int | None, list[str]]:
    """For a case's preprocessed data (channels first) on a CUDA device with this much free and already reserved
    by torch: whether to keep its logits in host memory from the start, the reserved estimate of the way it
    runs (None for a network not counted here), and the warning saying so."""
    shape, channels = list(data_shape[1:]), int(data_shape[0])
    on_device = predict_gpu_reserved_mb(model, shape, True, channels)
    if on_device is None:
        return False, None, []
    host = predict_gpu_reserved_mb(model, shape, False, channels)
    if not logits_on_host_up_front(on_device, host, free_mb, reserved_mb):
        return False, on_device, []
    available = free_mb + reserved_mb
    return True, host, [f"estimated {on_device} MB on the GPU with the logits there, more than the {available:.0f} MB "
                        "torch can get (free, and already reserved by it); predicted with the logits kept in host "
                        "memory from the start (perform_everything_on_device=False, same results; estimated "
                        f"{host} MB on the GPU)"]
