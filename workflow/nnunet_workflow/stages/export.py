"""Stage `export`: logits back to the original geometry, written atomically to
`{results}/{case}{file_ending}` (and the `.npz`/`.pkl` probabilities when asked; a cascade's previous stage
to `{results}/{member}/`, and with postprocessing to `{results}/before_postprocessing/`), with every file the
model's writer writes beside it (Tiff3DIO's spacing `.json`).

The segmentation goes through the memory-bounded `streaming_export`, with probabilities through
`streaming_probabilities` (both bit-identical to nnU-Net's, nnU-Net's torch resampling included); what they do not
reproduce (other resampling functions; with probabilities, region models) goes through nnU-Net's own export."""

from __future__ import annotations

import importlib
import os
import pickle

import numpy as np

from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..nnunet.model import nnunet_plans
from ..store.atomic_files import atomic_path, partial_dir, publish_written
from ..store.records import StageRecord
from .streaming_export import NpyChannels, export_streaming, supports
from .streaming_probabilities import export_with_probabilities, save_member_probabilities, supports_probabilities


def export_case(_state, job: CaseJob) -> dict:
    """Write the segmentation (and probabilities) of one case; every final file appears by rename only."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    layout, model = job.layout, job.model
    save_probabilities = job.options.save_probabilities and not job.member_dir  # as asked of the final stage
    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    with open(job.properties(), "rb") as handle:
        properties = pickle.load(handle)
    if save_probabilities:
        streaming = supports_probabilities(configuration_manager, plans_manager,
                                           plans_manager.get_label_manager(dataset_json), properties)
    else:
        streaming = supports(configuration_manager)
    logits_path = job.logits()
    logits = NpyChannels(logits_path) if streaming else np.load(logits_path)
    final = job.exported()
    with partial_dir(final) as temp_dir:
        truncated = os.path.join(temp_dir, "case")
        if streaming and save_probabilities:
            export_with_probabilities(logits, properties, configuration_manager, plans_manager, dataset_json,
                                      truncated, model.file_ending, threads=job.options.threads)
        elif streaming:
            export_streaming(logits, properties, configuration_manager, plans_manager, dataset_json,
                             truncated + model.file_ending, threads=job.options.threads)
        else:
            export_prediction_from_logits(
                logits, properties, configuration_manager, plans_manager, dataset_json, truncated, save_probabilities
            )
        if save_probabilities:
            npz, pkl = layout.probabilities(job.id)
            os.replace(truncated + ".npz", npz)
            os.replace(truncated + ".pkl", pkl)
        beside = publish_written(temp_dir, final, job.id, model.file_ending)
    return {"output": str(final), "export_method": "streaming" if streaming else "nnunet",
            **({"also_written": [str(p) for p in beside]} if beside else {})}


def export_member_case(_state, job: CaseJob) -> dict:
    """An ensemble member's export: its probabilities at the original geometry as nnU-Net's own export computes
    them for --save_probabilities, saved as .npy for the ensemble to read by slab (by streaming_probabilities,
    slab by slab, where it reproduces them)."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    plans_manager, configuration_manager, dataset_json = nnunet_plans(job.model)
    with open(job.properties(), "rb") as handle:
        properties = pickle.load(handle)
    label_manager = plans_manager.get_label_manager(dataset_json)
    if supports_probabilities(configuration_manager, plans_manager, label_manager, properties):
        with atomic_path(job.member_probabilities(), suffix=".npy") as temp:
            shape = save_member_probabilities(NpyChannels(job.logits()), properties, configuration_manager,
                                              plans_manager, dataset_json, str(temp), threads=job.options.threads)
        return {"probabilities_shape": list(shape), "probabilities_dtype": "float32", "export_method": "streaming"}
    logits = np.load(job.logits())
    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, configuration_manager, label_manager, properties, return_probabilities=True)
    del logits
    with atomic_path(job.member_probabilities(), suffix=".npy") as temp:
        np.save(temp, probabilities)
    return {"probabilities_shape": list(probabilities.shape), "probabilities_dtype": str(probabilities.dtype),
            "export_method": "nnunet"}


def import_export(_model, _options) -> None:
    """Worker setup: import nnU-Net's export (and torch) once for all the cases of a batch."""
    for module in ("nnunetv2.inference.export_prediction", "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def remove_intermediates(job: CaseJob, record: StageRecord) -> None:
    """Once a case is exported, its preprocessed array and logits are no longer needed (unless kept)."""
    if record.done and not job.options.keep_intermediates:
        for path in (job.preprocessed(), job.logits()):
            path.unlink(missing_ok=True)


EXPORT = Stage("export", handle=export_case, needs="predict", setup=import_export,
               outputs=lambda job: [job.exported()],
               after=remove_intermediates)
# an ensemble member's export (named m{i}_export in the pipeline)
EXPORT_MEMBER = Stage("export", handle=export_member_case, needs="predict", setup=import_export,
                      outputs=lambda job: [job.member_probabilities()], after=remove_intermediates)
