"""Reading a trained-model folder: configuration from the folder name, folds as nnU-Net finds them,
channels, classes and regions, inherited configurations, and a sentence for every unusable folder."""

import json

import pytest

from nnunet_workflow.nnunet.model import ModelError, count_classes, load_model

DATASET = {"channel_names": {"1": "T2", "0": "T1"}, "labels": {"background": 0, "tumour": 1, "oedema": 2},
           "file_ending": ".nii.gz"}
PLANS = {"transpose_forward": [2, 0, 1], "image_reader_writer": "NibabelIO", "configurations": {
    "3d_fullres": {"spacing": [1, 0.5, 0.5], "patch_size": [64, 96, 96],
                   "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                   "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0}},
    "3d_custom": {"inherits_from": "3d_fullres", "spacing": [2, 1, 1]},
    "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
    "3d_lowres": {"inherits_from": "3d_fullres", "spacing": [2, 1, 1], "next_stage": "3d_cascade_fullres"},
    "2d": {"spacing": [0.5, 0.5], "patch_size": [256, 256],
           "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
           "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 3, "order_z": 0}}}}


def model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_fullres", folds=("0", "1"), dataset=None):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps(dataset or DATASET))
    (folder / "plans.json").write_text(json.dumps(PLANS))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"weights")
    return folder


def test_a_model_folder_tells_its_configuration_folds_channels_and_geometry(tmp_path):
    folder = model_folder(tmp_path, folds=("1", "0", "all", "10"))
    model = load_model(folder)
    assert model.configuration == "3d_fullres" and model.dimensions == 3
    assert model.folds == ("0", "1", "10")  # as nnU-Net's auto-detection: fold_all only when asked for
    assert load_model(folder, folds=["all"]).folds == ("all",)
    assert load_model(folder, folds=[0, "all"]).folds == ("0", "all")
    assert model.channel_names == ("T1", "T2") and model.num_channels == 2 and model.num_classes == 3
    assert model.image_reader_writer == "NibabelIO" and model.transpose_forward == (2, 0, 1)
    assert model.target_spacing == (1.0, 0.5, 0.5) and model.streaming_export


def test_given_folds_configuration_and_inheritance(tmp_path):
    folder = model_folder(tmp_path)
    assert load_model(folder, folds=[1]).folds == ("1",)
    custom = load_model(folder, configuration="3d_custom")
    assert custom.target_spacing == (2.0, 1.0, 1.0) and custom.patch_size == (64, 96, 96)  # the rest inherited
    flat = load_model(folder, configuration="2d")
    assert flat.dimensions == 2 and not flat.streaming_export  # order-3 resampling: nnU-Net's own export


def test_the_configurations_network_is_read_for_the_gpu_estimate(tmp_path):
    folder = model_folder(tmp_path)
    assert load_model(folder).architecture is None  # plans without it: no GPU estimate
    plans = json.loads((folder / "plans.json").read_text())
    network = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
               "arch_kwargs": {"n_stages": 2}, "_kw_requires_import": []}
    plans["configurations"]["3d_fullres"]["architecture"] = network
    (folder / "plans.json").write_text(json.dumps(plans))
    assert load_model(folder).architecture == network
    assert load_model(folder, configuration="3d_custom").architecture == network  # inherited


def test_region_models_count_one_output_per_region():
    regions = {"background": 0, "whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3}
    assert count_classes(regions) == 3
    assert count_classes({"background": 0, "a": 1, "b": 2, "ignore": 3}) == 3


@pytest.mark.parametrize("change, message", [
    (lambda f: f.with_name("missing"), "model folder {folder} does not exist"),
    (lambda f: (f / "plans.json").unlink() or f, "model folder {folder} has no plans.json"),
    (lambda f: (f / "dataset.json").write_text("{oops") and None, "{folder}/dataset.json is not valid JSON"),
])
def test_unusable_folders_are_refused_with_a_sentence(tmp_path, change, message):
    folder = change(model_folder(tmp_path)) or tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    with pytest.raises(ModelError) as refused:
        load_model(folder)
    assert str(refused.value).startswith(message.format(folder=folder))


def test_configuration_and_folds_that_are_not_there_are_named(tmp_path):
    folder = model_folder(tmp_path, name="my_model")
    with pytest.raises(ModelError, match="cannot tell the configuration from the model folder name 'my_model'"):
        load_model(folder)
    with pytest.raises(ModelError, match="configuration '3d_other' is not in .*plans.json"):
        load_model(folder, configuration="3d_other")
    with pytest.raises(ModelError, match="has no checkpoint_final.pth for fold\\(s\\) 4"):
        load_model(folder, folds=[0, 4], configuration="3d_fullres")
    with pytest.raises(ModelError, match="has no checkpoint_best.pth for fold\\(s\\) any"):
        load_model(folder, checkpoint="checkpoint_best.pth", configuration="3d_fullres")
    only_all = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__2d", folds=("all",))
    with pytest.raises(ModelError, match="has no fold_N folder with checkpoint_final.pth, only fold_all.*folds: all"):
        load_model(only_all)
    assert load_model(only_all, folds=["all"]).folds == ("all",)


def test_a_cascade_stage_finds_its_previous_stage_beside_it_or_where_given(tmp_path):
    cascade = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_cascade_fullres")
    with pytest.raises(ModelError, match="'3d_cascade_fullres' is a cascade stage: each case needs the segmentation "
                                         "of its previous stage '3d_lowres' first, but there is no "
                                         "nnUNetTrainer__nnUNetPlans__3d_lowres beside it in .*previous_stage_model="):
        load_model(cascade)
    lowres = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_lowres", folds=("0", "1", "2"))
    model = load_model(cascade)
    assert model.configuration == "3d_cascade_fullres" and model.folds == ("0", "1")
    assert model.previous_stage.folder == lowres and model.previous_stage.configuration == "3d_lowres"
    assert model.previous_stage.folds == ("0", "1", "2")  # its own, as nnU-Net's auto-detection finds them
    assert model.previous_stage.target_spacing == (2.0, 1.0, 1.0)
    assert model.num_input_channels == 2 + 2  # T1, T2 and the previous stage's two foreground labels, one-hot
    assert load_model(cascade, folds=[1]).previous_stage.folds == ("1",)  # folds given: the same for both

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = lowres.rename(elsewhere / "lowres_model")
    with pytest.raises(ModelError, match="no nnUNetTrainer__nnUNetPlans__3d_lowres beside it"):
        load_model(cascade)
    assert load_model(cascade, previous_stage_model=moved).previous_stage.folder == moved
    with pytest.raises(ModelError, match=f"{tmp_path / 'nowhere'} \\(previous_stage_model\\) does not exist"):
        load_model(cascade, previous_stage_model=tmp_path / "nowhere")
    fullres = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_fullres")
    with pytest.raises(ModelError, match="is configuration '3d_fullres', but '3d_cascade_fullres' needs its previous "
                                         "stage '3d_lowres'"):
        load_model(cascade, previous_stage_model=fullres)


def test_an_ensemble_takes_members_of_one_dataset_and_refuses_what_it_cannot_average(tmp_path):
    from nnunet_workflow.nnunet.model import describe_run, load_members
    from nnunet_workflow.planning.pipeline import stages_for

    fullres = model_folder(tmp_path)
    flat = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__2d")
    members = load_members([fullres, flat])
    assert [m.configuration for m in members] == ["3d_fullres", "2d"]
    assert load_members(str(fullres))[0].folder == fullres
    assert describe_run(members, "pp.pkl") == [
        "ensemble of 2 members, probabilities averaged as nnUNetv2_ensemble:",
        f"  m0: {fullres} (3d_fullres, folds 0, 1)", f"  m1: {flat} (2d, folds 0, 1)", "postprocessing: pp.pkl"]
    other = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_custom",
                         dataset={**DATASET, "labels": {"background": 0, "tumour": 1}})
    with pytest.raises(ModelError, match="differ in labels"):
        load_members([fullres, other])
    with pytest.raises(ModelError, match="must be different model folders"):
        load_members([fullres, fullres])
    with pytest.raises(ModelError, match="leave them out for an ensemble"):
        load_members([fullres, flat], configuration="2d")
    cascade = model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_cascade_fullres")
    with pytest.raises(ModelError, match=r"ensemble member m1 \(.*3d_cascade_fullres\): configuration "
                                         r"'3d_cascade_fullres' is a cascade stage.* "
                                         r"no nnUNetTrainer__nnUNetPlans__3d_lowres beside it"):
        load_members([fullres, cascade])
    model_folder(tmp_path, name="nnUNetTrainer__nnUNetPlans__3d_lowres")
    # a cascade member runs its previous stage (the folder beside it) first, through m1_prev_ copies
    with_cascade = load_members([fullres, cascade])
    assert with_cascade[1].previous_stage.folder == tmp_path / "nnUNetTrainer__nnUNetPlans__3d_lowres"
    stages = stages_for(with_cascade)
    assert tuple(stages) == ("validate", "m0_preprocess", "m0_predict", "m0_export", "m1_prev_preprocess",
                             "m1_prev_predict", "m1_prev_export", "m1_preprocess", "m1_predict", "m1_export",
                             "ensemble")
    assert stages["m1_preprocess"].needs == "m1_prev_export" and stages["ensemble"].needs == ("m0_export",
                                                                                              "m1_export")
    assert stages["m1_prev_predict"].previous and stages["m1_prev_predict"].member == 1
    assert stages["m1_prev_export"].handle is stages_for(cascade_model := with_cascade[1])["prev_export"].handle
    assert stages["m1_export"].handle is not stages_for(cascade_model)["export"].handle  # probabilities
