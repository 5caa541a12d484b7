"""Stage `predict`: one supervised worker loads the model once and predicts every case of a batch.

If the worker dies on a case, that case is recorded as failed, a fresh worker is started (loading the
model again) and the batch goes on with the next case.
"""

from __future__ import annotations

import numpy as np

from .atomic_files import atomic_path
from .job import CaseJob, RunOptions
from .model import ModelInfo
from .stage import Stage


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
    predictor.initialize_from_trained_model_folder(str(model.folder), model.folds, model.checkpoint)
    print(f"model loaded from {model.folder} (folds {', '.join(model.folds)}) on {device}", flush=True)
    return predictor


def predict_case(predictor, job: CaseJob) -> dict:
    """Predict the logits of one preprocessed case and save them (float16, as nnU-Net hands them to export)."""
    import torch

    print(f"predicting {job.id}", flush=True)
    data = np.load(job.preprocessed())
    data = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    logits = predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy()
    with atomic_path(job.logits(), suffix=".npy") as temp:
        np.save(temp, logits)
    return {"logits_shape": list(logits.shape), "logits_dtype": str(logits.dtype)}


PREDICT = Stage("predict", handle=predict_case, needs="preprocess", setup=load_predictor,
                outputs=lambda job: [job.logits()], loads_model=True)
