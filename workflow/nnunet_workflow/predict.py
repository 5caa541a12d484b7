"""Stage `predict`: one supervised worker loads the model once and predicts every case of a batch.

If the worker dies on a case, that case is recorded as failed, a fresh worker is started and the
batch goes on with the next case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batch import run_batch
from .job import CaseJob
from .model import ModelInfo
from .records import atomic_path, is_done


@dataclass(frozen=True)
class PredictOptions:
    """The prediction options of nnUNetv2_predict that change the logits."""

    step_size: float = 0.5
    tta: bool = True
    device: str = "auto"
    threads: int = 1


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


def load_predictor(model: ModelInfo, options: PredictOptions):
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


def predict_one(predictor, case: str, data_path: str, logits_path: str) -> dict:
    """Predict the logits of one preprocessed case and save them (float16, as nnU-Net hands them to export)."""
    import torch

    print(f"predicting {case}", flush=True)
    data = torch.from_numpy(np.load(data_path)).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    logits = predictor.predict_logits_from_preprocessed_data(data).cpu().detach().numpy()
    with atomic_path(logits_path, suffix=".npy") as temp:
        np.save(temp, logits)
    return {"logits_shape": list(logits.shape), "logits_dtype": str(logits.dtype)}


def predict_batch(batch: str, jobs: dict[str, CaseJob], preprocessed: dict[str, dict], options: PredictOptions,
                  timeouts: dict[str, float], log_path=None, reserved_mb=None) -> dict:
    """Predict every preprocessed case of a batch with one model load; returns the batch record.

    `jobs`, `preprocessed` and `timeouts` map each case id to its job, preprocess record and seconds.
    """
    model = next(iter(jobs.values())).model

    def prepare(case: str, job: CaseJob):
        if not is_done(preprocessed[case]):
            return job.skipped("predict", preprocessed[case])
        paths = job.layout.preprocessed(case, job.attempt), job.layout.logits(case, job.attempt)
        return (case, *map(str, paths)), timeouts[case]

    record = run_batch("predict", jobs, prepare, predict_one, setup=lambda: load_predictor(model, options),
                       log_path=log_path, reserved_mb=reserved_mb, batch=batch)
    record["model_loads"] = record["worker_starts"]
    return record
