"""Stage `export`: logits back to the original geometry, written atomically to
`{results}/{case}{file_ending}` (and the `.npz`/`.pkl` probabilities when asked).

The segmentation alone goes through the memory-bounded `streaming_export` (bit-identical to nnU-Net's);
probabilities, and resampling functions it does not reproduce, go through nnU-Net's own export."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from .job import CaseJob
from .model import ModelInfo, nnunet_plans
from .records import is_done
from .streaming_export import NpyChannels, export_streaming, supports
from .supervise import run_once


def export_logits(_state, model: ModelInfo, logits_path: str, properties_path: str,
                  segmentation_path: str, probabilities_paths, save_probabilities: bool) -> dict:
    """Write the segmentation (and probabilities) of one case; every final file appears by rename only."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    streaming = not save_probabilities and supports(configuration_manager)
    logits = NpyChannels(logits_path) if streaming else np.load(logits_path)
    with open(properties_path, "rb") as handle:
        properties = pickle.load(handle)
    final = Path(segmentation_path)
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.", dir=final.parent) as temp_dir:
        truncated = os.path.join(temp_dir, "case")
        if streaming:
            export_streaming(logits, properties, configuration_manager, plans_manager, dataset_json,
                             truncated + model.file_ending)
        else:
            export_prediction_from_logits(
                logits, properties, configuration_manager, plans_manager, dataset_json, truncated, save_probabilities
            )
        if save_probabilities:
            npz, pkl = probabilities_paths
            os.replace(truncated + ".npz", npz)
            os.replace(truncated + ".pkl", pkl)
        os.replace(truncated + model.file_ending, final)
    return {"output": str(final), "export_method": "streaming" if streaming else "nnunet"}


def export_case(job: CaseJob, predicted: dict, validated: dict, save_probabilities=False,
                keep_intermediates=False) -> dict:
    """Export one predicted case supervised; returns the export stage record."""
    if not is_done(predicted):
        return job.skipped("export", predicted)
    layout, case, attempt = job.layout, job.case, job.attempt
    task = (
        job.model, str(layout.logits(case, attempt)), str(layout.properties(case, attempt)),
        str(layout.segmentation(case, job.model.file_ending)),
        [str(p) for p in layout.probabilities(case)], save_probabilities,
    )
    timeout = validated["estimates"]["export_timeout_s"]
    outcome = run_once(export_logits, task, timeout, job.log_path, job.fault, job.reserved_mb)
    if outcome.ok and not keep_intermediates:
        for path in (layout.preprocessed(case, attempt), layout.logits(case, attempt)):
            path.unlink(missing_ok=True)
    return job.record("export", outcome)
