"""The recommended setup in one key: `model` may be a dataset's results folder (`DatasetXXX_Name/`) holding the
`inference_information.json` that nnUNetv2_find_best_configuration writes; the run then uses what it
recommends: the best configuration or ensemble (its members' folders beside it), its folds and its
postprocessing.pkl. Keys given in the config (`folds`, `postprocessing`) take precedence."""

from __future__ import annotations

import json
from pathlib import Path

from .model import ModelError

INFORMATION_FILE = "inference_information.json"


def is_dataset_folder(path) -> bool:
    return (Path(path) / INFORMATION_FILE).is_file()


def rebased(path: str, dataset_folder: Path) -> Path:
    """A path written on the machine that ran find_best_configuration (absolute, under its nnUNet_results),
    found under this dataset folder when it is not where it was written."""
    written = Path(path)
    if written.is_file():
        return written
    parts = written.parts
    if dataset_folder.name in parts:
        return dataset_folder.joinpath(*parts[len(parts) - parts[::-1].index(dataset_folder.name):])
    return written


def recommended_setup(dataset_folder, find_postprocessing: bool = True) -> dict:
    """{"model": [folders], "folds": [...], "postprocessing": path or None} from inference_information.json
    (the postprocessing file looked for only when `find_postprocessing`)."""
    dataset_folder = Path(dataset_folder).resolve()
    path = dataset_folder / INFORMATION_FILE
    try:
        information = json.loads(path.read_text())
        best = information["best_model_or_ensemble"]
        selected = best["selected_model_or_models"]
        folders = [dataset_folder / f"{m['trainer']}__{m['plans_identifier']}__{m['configuration']}"
                   for m in selected]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelError(f"{path} is not an inference_information.json of nnUNetv2_find_best_configuration "
                         f"({type(error).__name__}: {error})") from None
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise ModelError(f"{path} recommends {', '.join(f.name for f in folders)}, but {', '.join(missing)} "
                         "does not exist")
    postprocessing = None
    if find_postprocessing and best.get("postprocessing_file"):
        found = rebased(best["postprocessing_file"], dataset_folder)
        if not found.is_file():
            raise ModelError(f"{path} names the postprocessing file {best['postprocessing_file']}, which is not "
                             f"there nor at {found}; give postprocessing=PATH")
        postprocessing = str(found)
    return {"model": [str(f) for f in folders], "folds": [str(f) for f in information.get("folds") or []] or None,
            "postprocessing": postprocessing}


def apply_recommended(config: dict) -> dict:
    """The config with a dataset folder's recommendation in place of `model` (in place; returned). Given keys
    stay; without a dataset folder, nothing changes. Returns what was taken from the file (or {})."""
    model = config.get("model")
    folder = model[0] if isinstance(model, list) and len(model) == 1 else model
    if isinstance(folder, list) or not folder or not is_dataset_folder(folder):
        return {}
    setup = recommended_setup(folder, find_postprocessing=config.get("postprocessing") is None)
    config["model"] = setup["model"] if len(setup["model"]) > 1 else setup["model"][0]
    taken = {"model": setup["model"]}
    for key in ("folds", "postprocessing"):
        if config.get(key) is None and setup[key] is not None:
            config[key] = taken[key] = setup[key]
    return {"source": str(Path(folder).resolve() / INFORMATION_FILE), **taken}
