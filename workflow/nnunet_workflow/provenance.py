"""Provenance of a result: what model files and options produced it, as one short key.

A finished case counts as done only while its key matches the current run's; a changed model or
prediction option makes it stale, so it is recomputed instead of mixed with new results.
"""

from __future__ import annotations

import hashlib
import json

from .model import ModelInfo

# Options that change the segmentation or the files written. `device` is left out: switching
# between CPU and GPU is not treated as a new result (nnU-Net itself is not bit-identical across them).
OPTION_KEYS = ("configuration", "folds", "checkpoint", "step_size", "tta", "save_probabilities")


def _hash_model(digest, model: ModelInfo) -> None:
    for name in ("dataset.json", "plans.json"):
        digest.update((model.folder / name).read_bytes())
    for fold in model.folds:
        stat = (model.folder / f"fold_{fold}" / model.checkpoint).stat()
        digest.update(f"{fold}:{stat.st_size}:{stat.st_mtime_ns}".encode())


def provenance_key(model: ModelInfo, config: dict) -> str:
    """Hash of dataset.json and plans.json contents, each used checkpoint's size and mtime, and the options;
    for a cascade stage, its previous stage's model files too."""
    digest = hashlib.sha256()
    _hash_model(digest, model)
    if model.previous_stage is not None:
        digest.update(f"previous stage {model.previous_stage.folder}".encode())
        _hash_model(digest, model.previous_stage)
    options = {key: config.get(key) for key in OPTION_KEYS}
    options.update(configuration=model.configuration, folds=list(model.folds))
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
