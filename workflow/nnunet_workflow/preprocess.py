"""Stage `preprocess`: nnU-Net's own preprocessor on one case; stores the network input and the properties
export needs to restore the original geometry."""

from __future__ import annotations

import importlib
import pickle

import numpy as np

from .batch import run_batch
from .job import CaseJob
from .model import ModelInfo, nnunet_plans
from .records import atomic_path, is_done
from .supervise import run_once


def preprocess_files(_state, files: list[str], model: ModelInfo, data_path: str, properties_path: str) -> dict:
    """Run nnU-Net's preprocessor exactly as nnUNetv2_predict does and save its outputs atomically."""
    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case(files, None, plans_manager, configuration_manager, dataset_json)
    data = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(data_path, suffix=".npy") as temp:
        np.save(temp, data)
    with atomic_path(properties_path) as temp, open(temp, "wb") as handle:
        pickle.dump(properties, handle)
    return {"shape": list(data.shape)}


def preprocess_task(job: CaseJob, validated: dict) -> tuple[tuple, float] | dict:
    """The supervised task that preprocesses a validated case and its timeout, or the skipped record."""
    if not is_done(validated):
        return job.skipped("preprocess", validated)
    paths = job.layout.preprocessed(job.case, job.attempt), job.layout.properties(job.case, job.attempt)
    return (validated["files"], job.model, *map(str, paths)), validated["estimates"]["preprocess_timeout_s"]


def preprocess_case(job: CaseJob, validated: dict) -> dict:
    """Preprocess one validated case in its own supervised worker; returns the preprocess stage record."""
    prepared = preprocess_task(job, validated)
    if isinstance(prepared, dict):
        return prepared
    task, timeout = prepared
    return job.record("preprocess", run_once(preprocess_files, task, timeout, job.log_path, job.fault,
                                             job.reserved_mb))


def import_preprocessing() -> None:
    """Worker setup: import nnU-Net's preprocessing once for all the cases of a batch."""
    for module in ("nnunetv2.preprocessing.preprocessors.default_preprocessor",
                   "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def preprocess_batch(jobs: dict[str, CaseJob], validated: dict[str, dict], log_path=None, reserved_mb=None) -> dict:
    """Preprocess the validated cases of a batch in one worker; returns the batch record."""
    return run_batch("preprocess", jobs, lambda case, job: preprocess_task(job, validated[case]), preprocess_files,
                     setup=import_preprocessing, log_path=log_path, reserved_mb=reserved_mb)
