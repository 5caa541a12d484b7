"""Stage `preprocess`: nnU-Net's own preprocessor on one case; stores the network input and the properties
export needs to restore the original geometry."""

from __future__ import annotations

import pickle

import numpy as np

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


def preprocess_case(job: CaseJob, validated: dict) -> dict:
    """Preprocess a validated case supervised; returns the preprocess stage record."""
    if not is_done(validated):
        return job.skipped("preprocess", validated)
    paths = job.layout.preprocessed(job.case, job.attempt), job.layout.properties(job.case, job.attempt)
    task = (validated["files"], job.model, *map(str, paths))
    timeout = validated["estimates"]["preprocess_timeout_s"]
    return job.record("preprocess", run_once(preprocess_files, task, timeout, job.log_path, job.fault, job.reserved_mb))
