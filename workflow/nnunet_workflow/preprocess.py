"""Stage `preprocess`: nnU-Net's own preprocessor on one case; stores the network input and the properties
export needs to restore the original geometry."""

from __future__ import annotations

import importlib
import pickle

import numpy as np

from .atomic_files import atomic_path
from .job import CaseJob
from .model import nnunet_plans
from .stage import Stage


def preprocess_case(_state, job: CaseJob) -> dict:
    """Run nnU-Net's preprocessor exactly as nnUNetv2_predict does and save its outputs atomically."""
    plans_manager, configuration_manager, dataset_json = nnunet_plans(job.model)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case(job.case.files(), None, plans_manager, configuration_manager,
                                                dataset_json)
    data = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(job.layout.preprocessed(job.id, job.attempt), suffix=".npy") as temp:
        np.save(temp, data)
    with atomic_path(job.layout.properties(job.id, job.attempt)) as temp, open(temp, "wb") as handle:
        pickle.dump(properties, handle)
    return {"shape": list(data.shape)}


def import_preprocessing(_model, _options) -> None:
    """Worker setup: import nnU-Net's preprocessing once for all the cases of a batch."""
    for module in ("nnunetv2.preprocessing.preprocessors.default_preprocessor",
                   "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def preprocessed_files(job: CaseJob) -> list:
    return [job.layout.preprocessed(job.id, job.attempt), job.layout.properties(job.id, job.attempt)]


PREPROCESS = Stage("preprocess", handle=preprocess_case, needs="validate", setup=import_preprocessing,
                   outputs=preprocessed_files)
