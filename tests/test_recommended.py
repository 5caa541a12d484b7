"""A dataset folder's inference_information.json (nnUNetv2_find_best_configuration's) resolved into the run's
models, folds and postprocessing: paths written on another machine found in the folder, given keys kept,
a recommendation that cannot be followed refused with a sentence."""

import json

import pytest

from nnunet_workflow.nnunet.model import ModelError
from nnunet_workflow.nnunet.recommended import apply_recommended

TRAINER, PLANS = "nnUNetTrainer", "nnUNetPlans"


def dataset_folder(tmp_path, configurations, postprocessing="ensembles/e1/postprocessing.pkl", write_pkl=True):
    dataset = tmp_path / "Dataset123_Liver"
    for configuration in configurations:
        (dataset / f"{TRAINER}__{PLANS}__{configuration}").mkdir(parents=True)
    if write_pkl:
        (dataset / postprocessing).parent.mkdir(parents=True, exist_ok=True)
        (dataset / postprocessing).write_bytes(b"pkl")
    (dataset / "inference_information.json").write_text(json.dumps({"folds": [0, 1], "best_model_or_ensemble": {
        "postprocessing_file": f"/train/nnUNet_results/{dataset.name}/{postprocessing}",
        "selected_model_or_models": [{"trainer": TRAINER, "plans_identifier": PLANS, "configuration": c}
                                     for c in configurations]}}))
    return dataset


def test_an_ensemble_recommendation_becomes_the_members_folds_and_postprocessing(tmp_path):
    dataset = dataset_folder(tmp_path, ["2d", "3d_fullres"])
    config = {"model": str(dataset), "folds": None, "postprocessing": None}
    taken = apply_recommended(config)
    folders = [str(dataset / f"{TRAINER}__{PLANS}__{c}") for c in ("2d", "3d_fullres")]
    assert config == {"model": folders,
                      "folds": ["0", "1"], "postprocessing": str(dataset / "ensembles/e1/postprocessing.pkl")}
    assert taken["source"] == str(dataset / "inference_information.json")
    assert apply_recommended(config) == {} and config["folds"] == ["0", "1"]  # resolved once: nothing more to do


def test_given_keys_win_and_a_single_configuration_is_one_model(tmp_path):
    dataset = dataset_folder(tmp_path, ["3d_fullres"], "nnUNetTrainer__nnUNetPlans__3d_fullres/"
                             "crossval_results_folds_0_1/postprocessing.pkl")
    config = {"model": [str(dataset)], "folds": ["all"], "postprocessing": "/mine.pkl"}
    apply_recommended(config)
    assert config == {"model": str(dataset / f"{TRAINER}__{PLANS}__3d_fullres"), "folds": ["all"],
                      "postprocessing": "/mine.pkl"}
    assert apply_recommended({"model": str(dataset / f"{TRAINER}__{PLANS}__3d_fullres")}) == {}  # a model folder


def test_a_recommendation_that_cannot_be_followed_is_refused(tmp_path):
    dataset = dataset_folder(tmp_path, ["2d"], write_pkl=False)
    with pytest.raises(ModelError, match="names the postprocessing file /train/.*, which is not there nor at "
                                         ".*Dataset123_Liver/ensembles/e1/postprocessing.pkl; give postprocessing="):
        apply_recommended({"model": str(dataset)})
    assert apply_recommended({"model": str(dataset), "postprocessing": "/given.pkl"})  # not needed then
    (dataset / f"{TRAINER}__{PLANS}__2d").rmdir()
    with pytest.raises(ModelError, match="recommends nnUNetTrainer__nnUNetPlans__2d, but .* does not exist"):
        apply_recommended({"model": str(dataset), "postprocessing": "/given.pkl"})
    (dataset / "inference_information.json").write_text("{}")
    with pytest.raises(ModelError, match="is not an inference_information.json"):
        apply_recommended({"model": str(dataset)})
