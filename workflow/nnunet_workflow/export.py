"""Stage `export`: logits back to the original geometry, written atomically to
`{results}/{case}{file_ending}` (and the `.npz`/`.pkl` probabilities when asked).

The segmentation alone goes through the memory-bounded `streaming_export` (bit-identical to nnU-Net's);
probabilities, and resampling functions it does not reproduce, go through nnU-Net's own export."""

from __future__ import annotations

import importlib
import os
import pickle

import numpy as np

from .atomic_files import partial_dir
from .job import CaseJob
from .model import nnunet_plans
from .records import StageRecord
from .stage import Stage
from .streaming_export import NpyChannels, export_streaming, supports


def export_case(_state, job: CaseJob) -> dict:
    """Write the segmentation (and probabilities) of one case; every final file appears by rename only."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    layout, model, save_probabilities = job.layout, job.model, job.options.save_probabilities
    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    streaming = not save_probabilities and supports(configuration_manager)
    logits_path = layout.logits(job.id, job.attempt)
    logits = NpyChannels(logits_path) if streaming else np.load(logits_path)
    with open(layout.properties(job.id, job.attempt), "rb") as handle:
        properties = pickle.load(handle)
    final = layout.segmentation(job.id, model.file_ending)
    with partial_dir(final) as temp_dir:
        truncated = os.path.join(temp_dir, "case")
        if streaming:
            export_streaming(logits, properties, configuration_manager, plans_manager, dataset_json,
                             truncated + model.file_ending)
        else:
            export_prediction_from_logits(
                logits, properties, configuration_manager, plans_manager, dataset_json, truncated, save_probabilities
            )
        if save_probabilities:
            npz, pkl = layout.probabilities(job.id)
            os.replace(truncated + ".npz", npz)
            os.replace(truncated + ".pkl", pkl)
        os.replace(truncated + model.file_ending, final)
    return {"output": str(final), "export_method": "streaming" if streaming else "nnunet"}


def import_export(_model, _options) -> None:
    """Worker setup: import nnU-Net's export (and torch) once for all the cases of a batch."""
    for module in ("nnunetv2.inference.export_prediction", "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def remove_intermediates(job: CaseJob, record: StageRecord) -> None:
    """Once a case is exported, its preprocessed array and logits are no longer needed (unless kept)."""
    if record.done and not job.options.keep_intermediates:
        for path in (job.layout.preprocessed(job.id, job.attempt), job.layout.logits(job.id, job.attempt)):
            path.unlink(missing_ok=True)


EXPORT = Stage("export", handle=export_case, needs="predict", setup=import_export,
               outputs=lambda job: [job.layout.segmentation(job.id, job.model.file_ending)],
               after=remove_intermediates)
