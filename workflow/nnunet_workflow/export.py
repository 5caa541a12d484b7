"""Stage `export`: logits back to the original geometry with nnU-Net's own export, written atomically
to `{results}/{case}{file_ending}` (and the `.npz`/`.pkl` probabilities when asked)."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from .layout import Layout
from .model import ModelInfo, nnunet_plans
from .records import DONE, FAILED, is_done, skipped_record, stage_record
from .supervise import run_once


def export_logits(_state, model: ModelInfo, logits_path: str, properties_path: str,
                  segmentation_path: str, probabilities_paths, save_probabilities: bool) -> dict:
    """Write the segmentation (and probabilities) of one case; every final file appears by rename only."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    logits = np.load(logits_path)
    with open(properties_path, "rb") as handle:
        properties = pickle.load(handle)
    final = Path(segmentation_path)
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.", dir=final.parent) as temp_dir:
        truncated = os.path.join(temp_dir, "case")
        export_prediction_from_logits(
            logits, properties, configuration_manager, plans_manager, dataset_json, truncated, save_probabilities
        )
        if save_probabilities:
            npz, pkl = probabilities_paths
            os.replace(truncated + ".npz", npz)
            os.replace(truncated + ".pkl", pkl)
        os.replace(truncated + model.file_ending, final)
    return {"output": str(final)}


def export_case(case: str, predicted: dict, validated: dict, model: ModelInfo, layout: Layout,
                save_probabilities=False, keep_intermediates=False, log_path=None) -> dict:
    """Export one predicted case supervised; returns the export stage record."""
    if not is_done(predicted):
        return skipped_record("export", case, predicted)
    task = (
        model, str(layout.logits(case)), str(layout.properties(case)),
        str(layout.segmentation(case, model.file_ending)),
        [str(p) for p in layout.probabilities(case)], save_probabilities,
    )
    outcome = run_once(export_logits, task, validated["estimates"]["export_timeout_s"], log_path)
    if outcome.ok and not keep_intermediates:
        for path in (layout.preprocessed(case), layout.logits(case)):
            path.unlink(missing_ok=True)
    return stage_record(
        "export", case, DONE if outcome.ok else FAILED, kind=outcome.kind, message=outcome.message,
        seconds=outcome.seconds, peak_rss_mb=outcome.peak_rss_mb, **outcome.result,
    )
