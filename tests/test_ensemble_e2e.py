"""Ensembles end to end against nnU-Net's commands: `nnUNetv2_predict --save_probabilities` for each member,
`nnUNetv2_ensemble`, then `nnUNetv2_apply_postprocessing`; and a member failing for one case fails that
case only, naming the member; a rerun redoes only that case's missing member."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from e2e import BIN, assert_same_image, run_nnunet_predict, run_workflow
from test_postprocessing_e2e import write_postprocessing_pkl

from nnunet_workflow.dev.synthetic_model import build_random_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def members(demo, tmp_path_factory):
    """A 3d_fullres and a 2d random-weight model of one dataset."""
    root = tmp_path_factory.mktemp("nnUNet_results") / "Dataset992_Ensemble"
    return (build_random_model(demo["model"], root, seed=31),
            build_random_model(demo["model"], root, seed=37, configuration="2d"))


@pytest.fixture(scope="module")
def nnunet_ensemble(members, two_cases, tmp_path_factory):
    """nnU-Net's route: each member predicted with --save_probabilities, then nnUNetv2_ensemble."""
    source, _ = two_cases
    root = tmp_path_factory.mktemp("nnunet_ensemble")
    folders = []
    for index, member in enumerate(members):
        folders.append(root / f"member{index}")
        run_nnunet_predict(member, source, folders[-1], "--disable_tta", "--save_probabilities")
    command = [str(BIN / "nnUNetv2_ensemble"), "-i", *map(str, folders), "-o", str(root / "ensemble"), "-np", "1"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root / "ensemble", folders


@pytest.fixture(scope="module")
def nnunet_postprocessed(members, nnunet_ensemble, tmp_path_factory):
    """nnUNetv2_apply_postprocessing on nnUNetv2_ensemble's output, with a postprocessing.pkl of nnU-Net's
    functions (the pkl, the output folder)."""
    reference, _ = nnunet_ensemble
    root = tmp_path_factory.mktemp("nnunet_postprocessed")
    pkl = write_postprocessing_pkl(root / "postprocessing.pkl")
    command = [str(BIN / "nnUNetv2_apply_postprocessing"), "-i", str(reference), "-o", str(root / "output"),
               "-pp_pkl_file", str(pkl), "-np", "1", "-plans_json", str(members[0] / "plans.json")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return pkl, root / "output"


def model_list(members) -> str:
    return "[" + ",".join(map(str, members)) + "]"


def test_a_two_member_ensemble_is_identical_to_nnunetv2_ensemble(members, two_cases, nnunet_ensemble, tmp_path):
    source, cases = two_cases
    reference, member_outputs = nnunet_ensemble
    results = tmp_path / "results"
    done = run_workflow(model_list(members), source, results, tta="false")
    assert f"m0: {members[0]} (3d_fullres, folds 0)" in done.stderr and f"m1: {members[1]} (2d, folds 0)" in done.stderr
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")
        # not trivially one member's segmentation
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(results / f"{case}.nii.gz")))
        for output in member_outputs:
            assert (sitk.GetArrayFromImage(sitk.ReadImage(str(output / f"{case}.nii.gz"))) != ours).any()
        assert not list((results / "work" / case).rglob("probabilities.npy"))  # removed after the ensemble
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    assert list(summary["status"]) == ["done"] * 2 and list(summary["stage"]) == ["ensemble"] * 2
    for column in ("m0_predict_seconds", "m1_predict_seconds", "ensemble_peak_mb"):
        assert summary[column].notna().all()
    manifests = [json.loads(p.read_text()) for p in (results / "work" / "batches").glob("*_predict.json")]
    assert sorted(m["stage"] for m in manifests) == ["m0_predict", "m1_predict"]
    assert all(m["model_loads"] == 1 for m in manifests)  # one model load per batch and member


def test_an_ensemble_then_postprocessing_is_identical_to_nnunet(members, two_cases, nnunet_ensemble,
                                                                nnunet_postprocessed, tmp_path):
    """nnU-Net gives ensembles no postprocessing step of their own; here it is the same stage as for one model,
    equal to nnUNetv2_apply_postprocessing on nnUNetv2_ensemble's output."""
    source, cases = two_cases
    reference, _ = nnunet_ensemble
    pkl, postprocessed = nnunet_postprocessed
    results = tmp_path / "results"
    run_workflow(model_list(members), source, results, tta="false", postprocessing=pkl)
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", postprocessed / f"{case}.nii.gz")
        assert_same_image(results / "before_postprocessing" / f"{case}.nii.gz", reference / f"{case}.nii.gz")


def test_a_dataset_folder_runs_what_find_best_configuration_recommends(members, two_cases, nnunet_postprocessed,
                                                                      tmp_path):
    """model=DatasetXXX_Name/ with its inference_information.json (written on another machine: its paths
    point elsewhere): the recommended ensemble, its folds and its postprocessing.pkl, found in the folder."""
    source, cases = two_cases
    pkl, postprocessed = nnunet_postprocessed
    dataset = tmp_path / "nnUNet_results" / "Dataset990_Recommended"
    for member in members:
        shutil.copytree(member, dataset / member.name)
    identifier = f"ensemble___{members[0].name}___{members[1].name}___0"
    (dataset / "ensembles" / identifier).mkdir(parents=True)
    shutil.copy(pkl, dataset / "ensembles" / identifier / "postprocessing.pkl")
    written = f"/cluster/nnUNet_results/{dataset.name}/ensembles/{identifier}"
    selected = [dict(zip(("trainer", "plans_identifier", "configuration"), m.name.split("__"))) for m in members]
    (dataset / "inference_information.json").write_text(json.dumps({
        "folds": [0], "dataset_name_or_id": dataset.name, "best_model_or_ensemble": {
            "postprocessing_file": f"{written}/postprocessing.pkl", "some_plans_file": f"{written}/plans.json",
            "selected_model_or_models": selected}}))
    results = tmp_path / "results"
    done = run_workflow(dataset, source, results, tta="false")
    assert f"as recommended by {dataset / 'inference_information.json'}:" in done.stderr
    assert f"postprocessing: {dataset / 'ensembles' / identifier / 'postprocessing.pkl'}" in done.stderr
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", postprocessed / f"{case}.nii.gz")


def test_a_member_failing_for_a_case_fails_that_case_only_naming_the_member(members, two_cases, nnunet_ensemble,
                                                                          tmp_path):
    source, cases = two_cases
    reference, _ = nnunet_ensemble
    failing, other = cases
    results = tmp_path / "results"
    run_workflow(model_list(members), source, results, "--keep-going", check=False, tta="false",
                 faults=f'{{"{failing}": "m1_predict:kill"}}')
    summary = pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False).set_index("case")
    assert summary.loc[failing, "status"] == "failed" and summary.loc[failing, "stage"] == "m1_predict"
    assert summary.loc[failing, "kind"] == "killed"
    assert summary.loc[other, "status"] == "done" and not (results / f"{failing}.nii.gz").exists()
    ensemble_record = json.loads((results / "work" / failing / "a1" / "ensemble.json").read_text())
    assert ensemble_record["status"] == "skipped" and ensemble_record["message"] == "not run: m1_predict failed"
    first_batches = set((results / "work" / "batches").glob("*.json"))
    run_workflow(model_list(members), source, results, tta="false")
    summary = pd.read_csv(results / "summary.tsv", sep="\t").set_index("case")
    assert summary.loc[failing, "attempt"] == "a2" and summary.loc[other, "attempt"] == "a1"
    assert_same_image(results / f"{failing}.nii.gz", reference / f"{failing}.nii.gz")
    # the rerun redid only what was missing: member 0's stages are carried over from a1, member 1's ran
    attempt = results / "work" / failing / "a2"
    for stage in ("m0_preprocess", "m0_predict", "m0_export"):
        assert json.loads((attempt / f"{stage}.json").read_text())["carried_from"] == "a1"
    for stage in ("m1_preprocess", "m1_predict", "m1_export", "ensemble"):
        record = json.loads((attempt / f"{stage}.json").read_text())
        assert record["status"] == "done" and "carried_from" not in record
    rerun = {json.loads(p.read_text())["stage"]: json.loads(p.read_text())
             for p in set((results / "work" / "batches").glob("*.json")) - first_batches}
    assert rerun["m0_predict"]["model_loads"] == 0 and rerun["m1_predict"]["model_loads"] == 1


def test_an_ensemble_with_a_cascade_member_saves_probabilities_as_nnunet(demo, two_cases, tmp_path):
    """What find_best_configuration may recommend: 3d_lowres + 3d_cascade_fullres. The cascade member runs
    its previous stage first (the 3d_lowres beside it); with save_probabilities the averaged probabilities
    equal nnUNetv2_ensemble --save_npz's, after nnUNetv2_predict --save_probabilities of 3d_lowres, then of
    the cascade on those segmentations."""
    from test_model_kinds_e2e import CASCADE

    source, cases = two_cases
    root = tmp_path / "nnUNet_results" / "Dataset994_CascadeEnsemble"
    lowres = build_random_model(demo["model"], root, seed=13, configuration="3d_lowres", configurations=CASCADE)
    cascade = build_random_model(demo["model"], root, seed=17, configuration="3d_cascade_fullres",
                                 configurations=CASCADE)
    reference = tmp_path / "nnunet"
    run_nnunet_predict(lowres, source, reference / "lowres", "--disable_tta", "--save_probabilities")
    run_nnunet_predict(cascade, source, reference / "cascade", "--disable_tta", "--save_probabilities",
                       "-prev_stage_predictions", str(reference / "lowres"))
    command = [str(BIN / "nnUNetv2_ensemble"), "-i", str(reference / "lowres"), str(reference / "cascade"),
               "-o", str(reference / "ensemble"), "-np", "1", "--save_npz"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    results = tmp_path / "results"
    done = run_workflow(model_list((lowres, cascade)), source, results, tta="false", save_probabilities="true")
    assert f"m1: {cascade} (3d_cascade_fullres, folds 0), after its previous stage 3d_lowres ({lowres}" in done.stderr
    for case in cases:
        assert_same_image(results / f"{case}.nii.gz", reference / "ensemble" / f"{case}.nii.gz")
        # the cascade member's previous stage, as nnUNetv2_predict -c 3d_lowres
        assert_same_image(results / "m1" / "3d_lowres" / f"{case}.nii.gz", reference / "lowres" / f"{case}.nii.gz")
        with np.load(results / f"{case}.npz") as ours, np.load(reference / "ensemble" / f"{case}.npz") as theirs:
            assert np.array_equal(ours["probabilities"], theirs["probabilities"])
        assert (results / f"{case}.pkl").exists()
        preprocessed = json.loads((results / "work" / case / "a1" / "m1_preprocess.json").read_text())
        assert preprocessed["shape"][0] == 2 + 2  # T1, T2 and the previous stage's two foreground labels
    summary = pd.read_csv(results / "summary.tsv", sep="\t")
    assert list(summary["status"]) == ["done", "done"] and list(summary["stage"]) == ["ensemble"] * 2
    assert summary["m1_prev_predict_seconds"].notna().all() and "m0_prev_predict_seconds" not in summary
