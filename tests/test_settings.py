"""Command-line config values are coerced as the schema expects."""

import yaml
from conftest import REPO

from nnunet_workflow.planning.settings import coerce_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_words_become_booleans_nulls_and_lists():
    config = {"tta": "false", "save_probabilities": "True", "folds": "0,1", "configuration": "null",
              "step_size": 0.5, "model": "null-model"}
    assert coerce_config(config, SCHEMA) == {
        "tta": False, "save_probabilities": True, "folds": ["0", "1"], "configuration": None,
        "step_size": 0.5, "model": "null-model",
    }


def test_single_fold_and_yaml_lists_stay_lists():
    assert coerce_config({"folds": 0}, SCHEMA) == {"folds": [0]}
    assert coerce_config({"folds": ["all"]}, SCHEMA) == {"folds": ["all"]}
    assert coerce_config({"folds": "[0, 2]"}, SCHEMA) == {"folds": ["0", "2"]}


def test_an_ensemble_is_a_bracketed_list_of_model_folders():
    assert coerce_config({"model": "[/m/2d, /m/3d_fullres]"}, SCHEMA) == {"model": ["/m/2d", "/m/3d_fullres"]}
    assert coerce_config({"model": "/models/a,b"}, SCHEMA) == {"model": "/models/a,b"}  # a path stays a path
