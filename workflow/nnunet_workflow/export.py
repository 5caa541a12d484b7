"""Stage `export`: logits back to the original geometry, written atomically to
`{results}/{case}{file_ending}` (and the `.npz`/`.pkl` probabilities when asked).

The segmentation alone goes through the memory-bounded `streaming_export` (bit-identical to nnU-Net's);
probabilities, and resampling functions it does not reproduce, go through nnU-Net's own export."""

from __future__ import annotations

import importlib
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from .batch import run_batch
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
    # named like atomic_path's temporary files, so a run killed meanwhile has it removed at the next start
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.part.", dir=final.parent) as temp_dir:
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


def export_task(job: CaseJob, predicted: dict, validated: dict, save_probabilities=False) -> tuple[tuple, float] | dict:
    """The supervised task that exports a predicted case and its timeout, or the skipped record."""
    if not is_done(predicted):
        return job.skipped("export", predicted)
    layout, case, attempt = job.layout, job.case, job.attempt
    task = (
        job.model, str(layout.logits(case, attempt)), str(layout.properties(case, attempt)),
        str(layout.segmentation(case, job.model.file_ending)),
        [str(p) for p in layout.probabilities(case)], save_probabilities,
    )
    return task, validated["estimates"]["export_timeout_s"]


def remove_intermediates(job: CaseJob, outcome) -> None:
    """Once a case is exported, its preprocessed array and logits are no longer needed."""
    if outcome.ok:
        for path in (job.layout.preprocessed(job.case, job.attempt), job.layout.logits(job.case, job.attempt)):
            path.unlink(missing_ok=True)


def export_case(job: CaseJob, predicted: dict, validated: dict, save_probabilities=False,
                keep_intermediates=False) -> dict:
    """Export one predicted case in its own supervised worker; returns the export stage record."""
    prepared = export_task(job, predicted, validated, save_probabilities)
    if isinstance(prepared, dict):
        return prepared
    task, timeout = prepared
    outcome = run_once(export_logits, task, timeout, job.log_path, job.fault, job.reserved_mb)
    if not keep_intermediates:
        remove_intermediates(job, outcome)
    return job.record("export", outcome)


def import_export() -> None:
    """Worker setup: import nnU-Net's export (and torch) once for all the cases of a batch."""
    for module in ("nnunetv2.inference.export_prediction", "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def export_batch(jobs: dict[str, CaseJob], predicted: dict[str, dict], validated: dict[str, dict],
                 save_probabilities=False, keep_intermediates=False, log_path=None, reserved_mb=None) -> dict:
    """Export the predicted cases of a batch in one worker; returns the batch record."""
    return run_batch(
        "export", jobs, lambda case, job: export_task(job, predicted[case], validated[case], save_probabilities),
        export_logits, setup=import_export, log_path=log_path, reserved_mb=reserved_mb,
        after=None if keep_intermediates else lambda case, job, outcome: remove_intermediates(job, outcome))
