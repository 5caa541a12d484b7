"""Stage `predict`: one supervised worker loads the model once and predicts every case of a batch.

If the worker dies on a case, that case is recorded as failed, a fresh worker is started (loading the
model again) and the batch goes on with the next case.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..estimates import host_memory
from ..estimates.available_memory import MB
from ..estimates.gpu_memory import logits_placement
from ..estimates.stage_needs import StageResources
from ..execution.job import CaseJob, RunOptions
from ..execution.stage import Stage
from ..nnunet.model import ModelInfo
from ..nnunet.model_checks import check_checkpoint, fold_checkpoints
from ..store.atomic_files import atomic_path
from ..store.failures import error_kind, error_message
from .disk_sliding_window import predict_logits_to_file
from .streaming_export import NpyChannels


def resolve_device(name: str):
    """A torch.device for 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; 'auto' prefers CUDA, then MPS, then CPU."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device here")
    return device


def load_predictor(model: ModelInfo, options: RunOptions):
    """nnU-Net's predictor with the model's weights, set up as nnUNetv2_predict sets it up."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    device = resolve_device(options.device)
    if device.type == "cpu":
        torch.set_num_threads(options.threads)
    else:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    predictor = nnUNetPredictor(
        tile_step_size=options.step_size,
        use_gaussian=True,
        use_mirroring=options.tta,
        perform_everything_on_device=True,
        device=device,
        verbose=False,
        allow_tqdm=False,
    )
    for path in fold_checkpoints(model):  # checked at the start of the run; again as nnU-Net loads them now
        check_checkpoint(path, options.trust_model_code)
    predictor.initialize_from_trained_model_folder(str(model.folder), model.folds, model.checkpoint)
    print(f"model loaded from {model.folder} (folds {', '.join(model.folds)}) on {device}", flush=True)
    return predictor


def predict_with_logits_on_host(predictor, data) -> np.ndarray:
    """The logits, predicted with the sliding window's arrays in host memory (nnU-Net's
    perform_everything_on_device=False: only the network and its patches on the GPU; same results, slower)."""
    predictor.perform_everything_on_device = False
    try:
        return predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy()
    finally:
        predictor.perform_everything_on_device = True


def predict_on_host_after_gpu_oom(predictor, data) -> tuple[np.ndarray, list[str]]:
    """The logits, and a warning when the case ran out of GPU memory with everything on the device and was
    predicted again with the logits kept in host memory (nnU-Net's perform_everything_on_device=False: the
    same results, slower). nnU-Net itself falls back so inside its sliding window; this catches the rest."""
    try:
        return predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy(), []
    except Exception as error:  # noqa: BLE001 - only a GPU out-of-memory error is retried
        if error_kind(error) != "gpu_out_of_memory" or not predictor.perform_everything_on_device:
            raise
        reason = error_message(error)
    from nnunetv2.utilities.helpers import empty_cache

    empty_cache(predictor.device)
    print(f"out of GPU memory ({reason}); predicting again with the logits in host memory", flush=True)
    return predict_with_logits_on_host(predictor, data), [
        f"predict ran out of GPU memory ({reason}); predicted again with the logits kept in host memory "
        "(perform_everything_on_device=False, same results)"]


def gpu_peaks(device) -> dict:
    """The case's peak on the GPU since the last reset: what torch's caching allocator held (`gpu_peak_mb`, close
    to what nvidia-smi shows less the CUDA context) and what its tensors used (`gpu_peak_allocated_mb`)."""
    import torch

    return {"gpu_peak_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1),
            "gpu_peak_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


def device_memory_mb(device) -> tuple[float, float]:
    """What torch can get on a CUDA device: its free memory, and what torch's caching allocator already holds."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free / MB, torch.cuda.memory_reserved(device) / MB


def sums_on_disk(predictor, job: CaseJob) -> bool:
    """Whether this case's sliding window keeps its sums on disk (`out_of_core`; see
    host_memory.predict_sums_on_disk), from the preprocessed array's shape."""
    shape = NpyChannels(job.preprocessed()).shape
    return host_memory.predict_sums_on_disk(job.options.out_of_core, job.model.num_classes, math.prod(shape[1:]),
                                            predictor.device.type == "cpu")


def predict_case(predictor, job: CaseJob) -> dict:
    """Predict the logits of one preprocessed case and save them (float16, as nnU-Net hands them to export). On a
    GPU, a case estimated not to fit with its logits on the device keeps them in host memory from the start; one
    that runs out of GPU memory all the same is predicted again so. With large logits (or `out_of_core: always`)
    the sliding window's sums are kept in the logits file itself (stages/disk_sliding_window)."""
    import torch

    print(f"predicting {job.id}", flush=True)
    on_gpu = predictor.device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(predictor.device)
    if sums_on_disk(predictor, job):
        with atomic_path(job.logits(), suffix=".npy") as temp:
            shape, dtype = predict_logits_to_file(predictor, job.preprocessed(), temp)
        return _predicted(predictor, shape, dtype, True, [], sums_on_disk=True,
                          **(gpu_peaks(predictor.device) if on_gpu else {}))
    data = np.load(job.preprocessed())
    on_host, estimate, warnings = False, None, []
    if on_gpu:
        on_host, estimate, warnings = logits_placement(job.model, data.shape, *device_memory_mb(predictor.device))
    data = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    if on_host:
        print(warnings[0], flush=True)
        logits = predict_with_logits_on_host(predictor, data)
    else:
        logits, retried = predict_on_host_after_gpu_oom(predictor, data)
        warnings, on_host = retried, bool(retried)
    gpu = {**gpu_peaks(predictor.device), "gpu_estimate_mb": estimate} if on_gpu else {}
    with atomic_path(job.logits(), suffix=".npy") as temp:
        np.save(temp, logits)
    return _predicted(predictor, logits.shape, logits.dtype, on_host, warnings, **gpu)


def _predicted(predictor, shape, dtype, on_host: bool, warnings: list, **more) -> dict:
    """The predict record's details of a case whose logits were saved."""
    return {"logits_shape": list(shape), "logits_dtype": str(dtype), "device": str(predictor.device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "logits_on_host": on_host,
            "warnings": warnings, **more}


PREDICT = Stage("predict", handle=predict_case, needs="preprocess", setup=load_predictor,
                outputs=lambda job: [job.logits()], loads_model=True,
                resources=StageResources(host_memory.PREDICT_BASE_MB, setup_s=600))
