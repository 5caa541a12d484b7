"""Unit tests of the synthetic demo data generator (no training)."""

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.dev import demo_data


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def demo_cases(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("demo")
    cases = demo_data.write_demo_cases(root / "images", root / "labels")
    return root / "images", root / "labels", cases


def test_synthesize_case_is_deterministic():
    geometry = demo_data.DEMO_CASES["demo_002"]
    first = demo_data.synthesize_case(geometry, np.random.default_rng(5))
    second = demo_data.synthesize_case(geometry, np.random.default_rng(5))
    other = demo_data.synthesize_case(geometry, np.random.default_rng(6))
    for a, b in zip(first[0] + [first[1]], second[0] + [second[1]]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


def test_demo_cases_are_written_identically(tmp_path, demo_cases):
    images, labels, cases = demo_cases
    again = demo_data.write_demo_cases(tmp_path / "images", tmp_path / "labels")
    assert again == cases
    for folder, copy in ((images, tmp_path / "images"), (labels, tmp_path / "labels")):
        for path in sorted(folder.iterdir()):
            np.testing.assert_array_equal(_read(path), _read(copy / path.name))
            assert path.read_bytes() == (copy / path.name).read_bytes()


def test_demo_cases_have_all_channels_and_labels(demo_cases):
    images, labels, cases = demo_cases
    assert len(cases) == len(set(cases)) >= 5
    for case in cases:
        truth = sitk.ReadImage(str(labels / f"{case}.nii.gz"))
        assert set(np.unique(sitk.GetArrayFromImage(truth))) == set(demo_data.LABELS.values())
        for channel in range(len(demo_data.CHANNEL_NAMES)):
            image = sitk.ReadImage(str(images / f"{case}_{channel:04d}.nii.gz"))
            assert image.GetSize() == truth.GetSize() == demo_data.DEMO_CASES[case].size
            assert image.GetSpacing() == pytest.approx(truth.GetSpacing())
            assert image.GetOrigin() == pytest.approx(truth.GetOrigin())
            assert image.GetDirection() == pytest.approx(truth.GetDirection())
    assert sorted(p.name for p in images.iterdir()) == sorted(
        f"{case}_{channel:04d}.nii.gz" for case in cases for channel in range(2)
    )


def test_exactly_one_demo_case_is_strongly_anisotropic(demo_cases):
    images, _, cases = demo_cases
    ratios = {}
    for case in cases:
        spacing = sitk.ReadImage(str(images / f"{case}_0000.nii.gz")).GetSpacing()
        ratios[case] = max(spacing) / min(spacing)
    assert sum(ratio > 3 for ratio in ratios.values()) == 1


def test_channels_have_their_own_contrast(demo_cases):
    images, labels, _ = demo_cases
    truth = _read(labels / "demo_003.nii.gz")
    t1, t2 = (_read(images / f"demo_003_{c:04d}.nii.gz") for c in (0, 1))
    sphere, box = truth == demo_data.LABELS["sphere"], truth == demo_data.LABELS["box"]
    assert t1[sphere].mean() > t1[box].mean()
    assert t2[box].mean() > t2[sphere].mean()


def test_training_dataset_layout(tmp_path):
    dataset = demo_data.write_training_dataset(tmp_path, dataset_id=7, n_cases=3)
    assert dataset == tmp_path / "Dataset007_Demo"
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "T1", "1": "T2"}
    assert info["labels"] == {"background": 0, "sphere": 1, "box": 2}
    assert info["numTraining"] == 3 and info["file_ending"] == ".nii.gz"
    labels = sorted(p.name for p in (dataset / "labelsTr").iterdir())
    assert len(labels) == 3
    for name in labels:
        case = name.removesuffix(".nii.gz")
        assert {(dataset / "imagesTr" / f"{case}_{c:04d}.nii.gz").is_file() for c in (0, 1)} == {True}
        assert set(np.unique(_read(dataset / "labelsTr" / name))) == {0, 1, 2}


def test_dice_per_label_on_known_pair(tmp_path):
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    truth[0, 0, :2] = 1  # two sphere voxels
    truth[3, 3, 3] = 2  # one box voxel
    pred = np.zeros_like(truth)
    pred[0, 0, :3] = 1  # both sphere voxels plus one extra: dice 2*2/(3+2)
    for array, name in ((truth, "truth"), (pred, "pred")):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / f"{name}.nii.gz"))
    scores = demo_data.dice_per_label(tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz",
                                      {"sphere": 1, "box": 2, "absent": 5})
    assert scores == pytest.approx({"sphere": 0.8, "box": 0.0, "absent": 1.0})


def test_dice_per_label_rejects_mismatched_grids(tmp_path):
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkUInt8), str(tmp_path / "a.nii.gz"))
    sitk.WriteImage(sitk.Image(4, 4, 5, sitk.sitkUInt8), str(tmp_path / "b.nii.gz"))
    with pytest.raises(ValueError):
        demo_data.dice_per_label(tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
