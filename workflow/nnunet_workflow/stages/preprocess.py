"""Stage `preprocess`: nnU-Net's own preprocessor on one case; stores the network input and the properties
export needs to restore the original geometry. For a cascade stage, the previous stage's segmentation of
the case is preprocessed with it and appended as one-hot channels, as nnUNetv2_predict does."""

from __future__ import annotations

import importlib
import pickle

import numpy as np

from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..inputs.dicom_series import image_files
from ..nnunet.model import nnunet_plans
from ..store.atomic_files import atomic_path
from ..store.layout import previous_stage_dir
from .case_preprocessing import run_case


def previous_segmentation(job: CaseJob):
    """The previous stage's segmentation of the case, for a cascade stage (else None); an ensemble member's
    is in its member's folder."""
    previous = job.model.previous_stage
    return None if previous is None else job.layout.segmentation(
        job.id, previous.file_ending, previous_stage_dir(job.member_dir, previous.configuration))


def preprocess_case(_state, job: CaseJob) -> dict:
    """Run nnU-Net's preprocessing exactly as nnUNetv2_predict does (its image resampling on the job's threads:
    case_preprocessing) and save its outputs atomically."""
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

    plans_manager, configuration_manager, dataset_json = nnunet_plans(job.model)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    seg_file = previous_segmentation(job)
    data, seg, properties = run_case(preprocessor, image_files(job), None if seg_file is None else str(seg_file),
                                     plans_manager, configuration_manager, dataset_json, job.options.threads)
    if seg_file is not None:  # as nnU-Net's preprocess_fromfiles_save_to_queue
        labels = plans_manager.get_label_manager(dataset_json).foreground_labels
        data = np.vstack((data, convert_labelmap_to_one_hot(seg[0], labels, data.dtype)))
    del seg
    data = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(job.preprocessed(), suffix=".npy") as temp:
        np.save(temp, data)
    with atomic_path(job.properties()) as temp, open(temp, "wb") as handle:
        pickle.dump(properties, handle)
    return {"shape": list(data.shape), **({"previous_stage_segmentation": str(seg_file)} if seg_file else {})}


def import_preprocessing(_model, _options) -> None:
    """Worker setup: import nnU-Net's preprocessing once for all the cases of a batch."""
    for module in ("nnunetv2.preprocessing.preprocessors.default_preprocessor",
                   "nnunetv2.utilities.plans_handling.plans_handler",
                   "nnunetv2.utilities.label_handling.label_handling"):
        importlib.import_module(module)


def preprocessed_files(job: CaseJob) -> list:
    return [job.preprocessed(), job.properties()]


PREPROCESS = Stage("preprocess", handle=preprocess_case, needs="validate", setup=import_preprocessing,
                   outputs=preprocessed_files)
