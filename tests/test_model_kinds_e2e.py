"""Model kinds end to end against the nnU-Net CLI, on random-weight models built from the demo's real
plans (identity needs no training): nnU-Net's fold rules and the averaging of several folds; the 2d
and 3d_lowres configurations; plans of nnU-Net's torch-resampling planner (with probabilities); a
region-based model (overlapping regions, `regions_class_order`); the cascade (3d_lowres, then
3d_cascade_fullres on its segmentations)."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from e2e import BIN, assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.synthetic_model import build_random_model, torch_resampling_configuration

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def three_fold_model(demo, tmp_path_factory):
    """A random-weight model with fold_0, fold_1 and fold_all, each with its own weights, in an
    nnUNet_results layout (so nnUNetv2_predict finds it by dataset, trainer, plans and configuration)."""
    root = tmp_path_factory.mktemp("nnUNet_results") / "Dataset998_Folds"
    return build_random_model(demo["model"], root, num_classes=3, target_spacing=(1.0, 1.0, 1.0), seed=7,
                              folds=("0", "1", "all"))


@pytest.mark.parametrize("folds, nnunet_folds", [(None, ["0", "1"]), ("all", ["all"])])
def test_folds_follow_nnunet_and_several_are_averaged_as_nnunet_does(three_fold_model, two_cases, tmp_path,
                                                                      folds, nnunet_folds):
    """Without `folds`, nnU-Net's auto-detection: fold_0 and fold_1 averaged, fold_all left out; with
    `folds=all`, fold_all alone. Each identical to nnUNetv2_predict -f with the same folds."""
    source, cases = two_cases
    options = {"tta": "false"} if folds is None else {"tta": "false", "folds": folds}
    run_workflow(three_fold_model, source, tmp_path / "results", **options)
    run_nnunet_predict(three_fold_model, source, tmp_path / "reference", "--disable_tta", folds=nnunet_folds)
    for case in cases:
        assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
    manifest = json.loads(next((tmp_path / "results" / "work" / "batches").glob("*.predict.json")).read_text())
    log = (tmp_path / "results" / "logs" / "predict" / f"{manifest['batch']}.log").read_text()
    assert f"(folds {', '.join(nnunet_folds)})" in log


# A 3d_lowres as nnU-Net's planner makes one: the full-resolution configuration at a coarser spacing
# (here 2 mm, about half the demo's resolution), inheriting the rest.
LOWRES = {"inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_lowres", "spacing": [2.0, 2.0, 2.0]}


KINDS = {
    "2d": {"configuration": "2d"},
    "3d_lowres": {"configuration": "3d_lowres", "configurations": {"3d_lowres": LOWRES}},
    # BraTS-style overlapping regions: "whole" covers both objects, "box" one of them, painted in that order
    # (with probabilities)
    "regions": {"dataset_changes": {"labels": {"background": 0, "whole": [1, 2], "box": 2},
                                    "regions_class_order": [1, 2]}},
    # read and written with nibabel instead of SimpleITK (validate reads through it too)
    "nibabel": {"plans_changes": {"image_reader_writer": "NibabelIO"}},
    # resampled by torch (nnU-Net's own preprocessing; the export by classes), with probabilities
    "torchres": {"configuration": "3d_fullres_torchres", "target_spacing": (1.3, 1.2, 1.1),
                 "configurations": {"3d_fullres_torchres": torch_resampling_configuration()}},
}


@pytest.mark.parametrize("kind", KINDS)
def test_model_kind_is_identical_to_nnunetv2_predict(demo, two_cases, tmp_path, kind):
    model = build_random_model(demo["model"], tmp_path / "nnUNet_results" / "Dataset997_Kinds", seed=11,
                               **KINDS[kind])
    source, cases = two_cases
    probabilities = ["--save_probabilities"] if kind in ("torchres", "regions") else []
    run_workflow(model, source, tmp_path / "results", tta="false",
                 **({"save_probabilities": "true"} if probabilities else {}))
    run_nnunet_predict(model, source, tmp_path / "reference", "--disable_tta", *probabilities)
    for case in cases:
        assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
        if probabilities:
            ours = np.load(tmp_path / "results" / f"{case}.npz")["probabilities"]
            assert np.array_equal(ours, np.load(tmp_path / "reference" / f"{case}.npz")["probabilities"])
    exports = [json.loads(p.read_text()) for p in (tmp_path / "results" / "work").glob("*/a1/export.json")]
    assert len(exports) == len(cases) and all(e["status"] == "done" for e in exports)
    if kind == "torchres":  # the logits resampled by classes, the probabilities streamed
        assert {e["export_method"] for e in exports} == {"streaming"}
    if kind == "regions":  # the streamed probabilities' region path ran, and painted both regions
        assert {e["export_method"] for e in exports} == {"streaming"}
        labels = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "results" / f"{cases[0]}.nii.gz"))))
        assert set(labels) <= {0, 1, 2} and len(labels) > 1


# A cascade as nnU-Net's planner makes one: 3d_lowres names its next stage, 3d_cascade_fullres its previous.
CASCADE = {"3d_lowres": {**LOWRES, "next_stage": "3d_cascade_fullres"},
           "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres",
                                  "data_identifier": "nnUNetPlans_3d_cascade_fullres"}}


def test_the_cascade_runs_its_previous_stage_first_and_is_identical_to_nnunetv2_predict(demo, two_cases, tmp_path):
    """The workflow given only the cascade's folder equals nnUNetv2_predict -c 3d_lowres, then
    -c 3d_cascade_fullres -prev_stage_predictions on those, for both stages' segmentations."""
    root = tmp_path / "nnUNet_results" / "Dataset995_Cascade"
    lowres = build_random_model(demo["model"], root, seed=13, configuration="3d_lowres", configurations=CASCADE)
    cascade = build_random_model(demo["model"], root, seed=17, configuration="3d_cascade_fullres",
                                 configurations=CASCADE)
    source, cases = two_cases
    results = tmp_path / "results"
    run_workflow(cascade, source, results, tta="false")
    run_nnunet_predict(lowres, source, tmp_path / "reference_lowres", "--disable_tta")
    run_nnunet_predict(cascade, source, tmp_path / "reference", "--disable_tta", "-prev_stage_predictions",
                       str(tmp_path / "reference_lowres"))
    for case in cases:
        assert_same_image(results / "3d_lowres" / f"{case}.nii.gz", tmp_path / "reference_lowres" / f"{case}.nii.gz")
        assert_same_image(results / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
        previous = sitk.GetArrayFromImage(sitk.ReadImage(str(results / "3d_lowres" / f"{case}.nii.gz")))
        assert len(np.unique(previous)) > 1  # the one-hot input channels were not all empty
        preprocessed = json.loads((results / "work" / case / "a1" / "preprocess.json").read_text())
        assert preprocessed["shape"][0] == 2 + 2  # T1, T2, and one channel per foreground label
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    assert list(summary["status"]) == ["done", "done"]
    assert summary["prev_predict_seconds"].notna().all() and summary["predict_seconds"].notna().all()
    arguments = json.loads((results / "predict_from_raw_data_args.json").read_text())
    assert arguments["folder_with_segs_from_prev_stage"] == str((results / "3d_lowres").resolve())


def test_a_cascade_without_its_previous_stage_is_refused_before_any_job(demo, tmp_path):
    cascade = build_random_model(demo["model"], tmp_path / "nnUNet_results" / "Dataset995_Cascade", seed=17,
                                 configuration="3d_cascade_fullres", configurations=CASCADE)
    done = run_workflow(cascade, demo["input"], tmp_path / "results", check=False)
    assert done.returncode != 0
    assert "'3d_cascade_fullres' is a cascade stage: each case needs the segmentation of its previous stage " \
           "'3d_lowres' first, but there is no nnUNetTrainer__nnUNetPlans__3d_lowres beside it" in done.stderr
    assert "previous_stage_model=PATH" in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_model_folder_not_named_after_its_configuration_runs_as_its_checkpoint_says(demo, two_cases, tmp_path):
    """Renamed, the folder no longer tells the configuration; the checkpoint's init_args do, as for
    nnUNetv2_predict_from_modelfolder, which is the reference here."""
    built = build_random_model(demo["model"], tmp_path / "built", seed=5, configuration="2d")
    model = built.rename(tmp_path / "my_model")
    source, cases = two_cases
    run_workflow(model, source, tmp_path / "results", tta="false")
    command = [str(BIN / "nnUNetv2_predict_from_modelfolder"), "-i", str(source), "-o", str(tmp_path / "reference"),
               "-m", str(model), "-f", "0", "-device", "cpu", "--disable_tta", "--disable_progress_bar"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for case in cases:
        assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
    arguments = json.loads((tmp_path / "results" / "predict_from_raw_data_args.json").read_text())
    assert arguments["workflow_options"]["configuration"] == "2d"


def test_rgb_png_through_a_natural_image_model_is_identical_to_nnunetv2_predict(demo, tmp_path):
    """NaturalImage2DIO: one RGB PNG per case gives the model's three channels (R, G, B); 2d configuration."""
    from PIL import Image

    source = tmp_path / "input"
    source.mkdir()
    rng = np.random.default_rng(3)
    for index in range(2):
        pixels = rng.integers(0, 60, size=(40, 48, 3), dtype=np.uint8)
        pixels[10:25, 12 + index:30, :] += 150  # a bright square
        Image.fromarray(pixels).save(source / f"photo{index}_0000.png")
    plans = json.loads((demo["model"] / "plans.json").read_text())
    intensities = plans["foreground_intensity_properties_per_channel"]
    flat = {**plans["configurations"]["2d"], "normalization_schemes": ["ZScoreNormalization"] * 3,
            "use_mask_for_norm": [False] * 3}
    model = build_random_model(demo["model"], tmp_path / "nnUNet_results" / "Dataset996_Photos", seed=2,
                               configuration="2d", configurations={"2d": flat},
                               plans_changes={"image_reader_writer": "NaturalImage2DIO",
                                              "foreground_intensity_properties_per_channel": {
                                                  str(c): intensities["0"] for c in range(3)}},
                               dataset_changes={"channel_names": {"0": "R", "1": "G", "2": "B"},
                                                "file_ending": ".png"})
    run_workflow(model, source, tmp_path / "results", tta="false")
    run_nnunet_predict(model, source, tmp_path / "reference", "--disable_tta")
    for index in range(2):
        ours = np.asarray(Image.open(tmp_path / "results" / f"photo{index}.png"))
        reference = np.asarray(Image.open(tmp_path / "reference" / f"photo{index}.png"))
        assert ours.shape == reference.shape == (40, 48) and np.array_equal(ours, reference)
        assert len(np.unique(reference)) > 1  # not a trivial all-background comparison
    validated = json.loads((tmp_path / "results" / "work" / "photo0" / "a1" / "validate.json").read_text())
    assert validated["geometry"]["channels"] == 3


def test_a_tiff_model_reads_and_writes_the_spacing_sidecar_as_nnunetv2_predict(demo, two_cases, tmp_path):
    """Tiff3DIO: spacing from CASE.json beside CASE_0000.tif; nnUNetv2_predict writes CASE.tif and CASE.json,
    and so does the workflow, into results."""
    import tifffile

    source, cases = two_cases
    tiffs = tmp_path / "input"
    tiffs.mkdir()
    for case in cases:
        for channel in (0, 1):
            image = sitk.ReadImage(str(source / f"{case}_{channel:04d}.nii.gz"))
            tifffile.imwrite(tiffs / f"{case}_{channel:04d}.tif", sitk.GetArrayFromImage(image))
        (tiffs / f"{case}.json").write_text(json.dumps({"spacing": list(image.GetSpacing())[::-1]}))
    model = build_random_model(demo["model"], tmp_path / "nnUNet_results" / "Dataset994_Tiff", seed=23,
                               plans_changes={"image_reader_writer": "Tiff3DIO"},
                               dataset_changes={"file_ending": ".tif"})
    run_workflow(model, tiffs, tmp_path / "results", tta="false")
    run_nnunet_predict(model, tiffs, tmp_path / "reference", "--disable_tta")
    for case in cases:
        ours, reference = (tifffile.imread(tmp_path / folder / f"{case}.tif") for folder in ("results", "reference"))
        assert ours.dtype == reference.dtype and np.array_equal(ours, reference)
        assert len(np.unique(reference)) > 1
        sidecars = [json.loads((tmp_path / folder / f"{case}.json").read_text()) for folder in ("results", "reference")]
        assert sidecars[0] == sidecars[1] == json.loads((tiffs / f"{case}.json").read_text())
    export = json.loads((tmp_path / "results" / "work" / cases[0] / "a1" / "export.json").read_text())
    assert export["also_written"] == [str(tmp_path / "results" / f"{cases[0]}.json")]
