"""The ensemble stage by slab against nnU-Net's own `merge_files` (what nnUNetv2_ensemble runs per case), on
members' probabilities written as nnU-Net's export leaves them: identical for labels and for regions, over
many slabs, and the averaged probabilities saved as nnUNetv2_ensemble --save_npz saves them; a member that
did not finish a case names itself in the case's record."""

import json
import pickle

import numpy as np
import pytest
import SimpleITK as sitk
from stages import run_one

from nnunet_workflow.execution.job import CaseJob, RunOptions
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.nnunet.model import load_model
from nnunet_workflow.planning.pipeline import ensemble_pipeline
from nnunet_workflow.stages import ensemble
from nnunet_workflow.store.layout import Layout
from nnunet_workflow.store.records import StageRecord

LABELS = {"labels": {"background": 0, "a": 1, "b": 2}}
REGIONS = {"labels": {"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order": [1, 2]}
PLANS = {"plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2],
         "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": {"spacing": [1, 1, 1],
                                                                           "patch_size": [8, 8, 8]}}}


def member_folder(tmp_path, name, dataset):
    folder = tmp_path / name
    (folder / "fold_0").mkdir(parents=True)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights")
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                                                     **dataset}))
    (folder / "plans.json").write_text(json.dumps(PLANS))
    return folder


@pytest.mark.parametrize("dataset", [LABELS, REGIONS], ids=["labels", "regions"])
def test_the_ensemble_by_slab_equals_nnunet_merge_files(tmp_path, monkeypatch, dataset):
    from nnunetv2.ensembling.ensemble import merge_files
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    members = tuple(load_model(member_folder(tmp_path, f"nnUNetTrainer__nnUNetPlans{i}__3d_fullres", dataset))
                    for i in range(3))
    image = tmp_path / "c1_0000.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((9, 10, 11), np.int16)), str(image))
    _, properties = SimpleITKIO().read_images([str(image)])
    layout = Layout(tmp_path / "results")
    job = CaseJob(Case("c1", {0: str(image)}), "a1", members[0], layout, RunOptions(save_probabilities=True),
                  ensemble=members)
    rng = np.random.default_rng(0)
    npz_files = []
    for index in range(len(members)):
        channels = 2 if "regions_class_order" in dataset else 3  # regions, or one per label
        probabilities = rng.random((channels, 9, 10, 11), dtype=np.float32)
        member = ensemble.member_dir(index)
        layout.member_probabilities("c1", "a1", member).parent.mkdir(parents=True, exist_ok=True)
        np.save(layout.member_probabilities("c1", "a1", member), probabilities)
        with open(layout.properties("c1", "a1", member), "wb") as handle:
            pickle.dump(properties, handle)
        npz_files.append(str(tmp_path / f"member{index}.npz"))
        np.savez_compressed(npz_files[-1], probabilities=probabilities)
        (tmp_path / f"member{index}.pkl").write_bytes(pickle.dumps(properties))
    monkeypatch.setattr(ensemble, "SLAB_VOXELS", 4 * 10 * 11)  # slabs of 4, 4 and 1 planes
    stage = ensemble_pipeline([False] * len(members))[-1]
    exports = {name: StageRecord(name, "c1", "done") for name in stage.needs}
    record = run_one(stage, CaseJob(**{**job.__dict__, "upstream": exports}))
    assert record.status == "done", record.message
    plans_manager = PlansManager(str(members[0].folder / "plans.json"))
    label_manager = plans_manager.get_label_manager(json.loads((members[0].folder / "dataset.json").read_text()))
    merge_files(npz_files, str(tmp_path / "reference"), ".nii.gz", SimpleITKIO(), label_manager,
                save_probabilities=True)
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(layout.segmentation("c1", ".nii.gz"))))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "reference.nii.gz")))
    assert ours.dtype == reference.dtype and np.array_equal(ours, reference) and len(np.unique(reference)) == 3
    # save_probabilities: the average streamed into the .npz equals the one nnUNetv2_ensemble --save_npz writes
    npz, pkl = layout.probabilities("c1")
    with np.load(npz) as ours_npz, np.load(tmp_path / "reference.npz") as reference_npz:
        assert list(ours_npz) == list(reference_npz) == ["probabilities"]
        assert ours_npz["probabilities"].dtype == np.float32
        assert np.array_equal(ours_npz["probabilities"], reference_npz["probabilities"])
    assert str(pickle.loads(pkl.read_bytes())) == str(pickle.loads((tmp_path / "reference.pkl").read_bytes()))
    assert not layout.member_probabilities("c1", "a1", "m0").exists()  # removed once the ensemble is written


def test_a_member_that_did_not_finish_the_case_is_named(tmp_path):
    members = tuple(load_model(member_folder(tmp_path, f"nnUNetTrainer__nnUNetPlans{i}__3d_fullres", LABELS))
                    for i in range(2))
    stage = ensemble_pipeline([False, False])[-1]
    failed = StageRecord("m1_predict", "c1", "failed", kind="out_of_memory", message="worker ran out of memory")
    upstream = {"m0_export": StageRecord("m0_export", "c1", "done"), "m1_export": failed.skipped("m1_export")}
    job = CaseJob(Case("c1"), "a1", members[0], Layout(tmp_path / "results"), ensemble=members, upstream=upstream)
    record = run_one(stage, job)
    assert record.status == "skipped" and record.message == "not run: m1_predict failed"
