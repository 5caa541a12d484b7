"""Deterministic synthetic two-channel 3D dataset (a sphere and a box on noise) for the demo:
nnU-Net v2 raw-format training data, demo test cases with ground truth, and a Dice helper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

GENERATOR_VERSION = "2"
DEMO_DATASET_ID = 999
CHANNEL_NAMES = {"0": "T1", "1": "T2"}
LABELS = {"background": 0, "sphere": 1, "box": 2}
FOREGROUND_LABELS = {name: value for name, value in LABELS.items() if value != 0}
FILE_ENDING = ".nii.gz"
N_TRAINING_CASES = 20

TRAINING_SEED = 20240
DEMO_SEED = 77031

# Mean intensity per channel (T1, T2) of background, sphere and box: the sphere is bright in T1,
# the box is bright in T2, so the two channels carry different contrasts. T2 lies on another intensity
# scale (3x its contrast + 1000, noise too; no T1 value is a T2 value), as scanners' raw values may, so
# swapped channels are visible against the training data's intensities (dataset_fingerprint.json); after
# nnU-Net's per-image z-score it is the same image as on T1's scale.
_INTENSITIES = {
    "background": (100.0, 1300.0),
    "sphere": (400.0, 1510.0),
    "box": (180.0, 2200.0),
}
_NOISE_SIGMA = (20.0, 60.0)
_SPHERE_RADIUS_MM = (7.0, 11.0)
_BOX_HALF_SIZE_MM = (5.0, 9.0)
_MARGIN_MM = 2.0


@dataclass(frozen=True)
class CaseGeometry:
    """Image grid of one case, in SimpleITK (x, y, z) order."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# Demo test cases: varied sizes, spacings, origins, one rotated direction and exactly one strongly
# anisotropic case (z spacing 5x the in-plane spacing, so nnU-Net resamples it with separate z).
DEMO_CASES: dict[str, CaseGeometry] = {
    "demo_001": CaseGeometry((40, 40, 40), (1.0, 1.0, 1.0)),
    "demo_002": CaseGeometry((64, 56, 48), (1.0, 1.0, 1.0), origin=(-30.5, 12.0, 100.0)),
    "demo_003": CaseGeometry((96, 80, 64), (0.9, 0.9, 1.1), origin=(10.0, -20.0, 5.0)),
    "demo_004": CaseGeometry(
        (48, 48, 40), (1.25, 1.25, 1.25), origin=(100.0, 50.0, -20.0),
        direction=(0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    ),
    "demo_005": CaseGeometry((80, 80, 14), (0.8, 0.8, 4.0), origin=(-25.6, -25.6, -28.0)),
    "demo_006": CaseGeometry((56, 64, 72), (1.1, 0.95, 1.0), origin=(0.0, 0.0, 200.0)),
}


def _voxel_centres_mm(geometry: CaseGeometry) -> np.ndarray:
    """Physical voxel-centre coordinates relative to the grid corner, shape (z, y, x, 3) in (x, y, z) order."""
    axes = [np.arange(n) * s for n, s in zip(geometry.size, geometry.spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    return np.stack([x, y, z], axis=-1).transpose(2, 1, 0, 3)


def _place_objects(rng: np.random.Generator, extent: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Draw a sphere (centre, radius) and a box (centre, half sizes) that fit inside extent and do not touch."""
    for _ in range(10000):
        radius = rng.uniform(*_SPHERE_RADIUS_MM)
        half = rng.uniform(*_BOX_HALF_SIZE_MM, size=3)
        sphere_lo, box_lo = radius + _MARGIN_MM, half + _MARGIN_MM
        if np.any(extent - 2 * sphere_lo <= 0) or np.any(extent - 2 * box_lo <= 0):
            continue
        sphere_c = rng.uniform(sphere_lo, extent - sphere_lo)
        box_c = rng.uniform(box_lo, extent - box_lo)
        gap = np.linalg.norm(np.maximum(np.abs(sphere_c - box_c) - half, 0.0))
        if gap > radius + _MARGIN_MM:
            return sphere_c, radius, box_c, half
    raise ValueError(f"cannot fit a sphere and a box into an extent of {extent} mm")


def synthesize_case(geometry: CaseGeometry, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Return ([T1, T2] float32 arrays, uint8 label array), all in numpy (z, y, x) order."""
    points = _voxel_centres_mm(geometry)
    extent = (np.array(geometry.size) - 1) * np.array(geometry.spacing)
    sphere_c, radius, box_c, half = _place_objects(rng, extent)
    label = np.zeros(points.shape[:3], dtype=np.uint8)
    label[np.linalg.norm(points - sphere_c, axis=-1) <= radius] = LABELS["sphere"]
    label[np.all(np.abs(points - box_c) <= half, axis=-1)] = LABELS["box"]
    gain = rng.uniform(0.8, 1.2)
    channels = []
    for channel in range(len(CHANNEL_NAMES)):
        means = np.array([_INTENSITIES[name][channel] for name in LABELS], dtype=np.float32)
        noise = rng.normal(0.0, _NOISE_SIGMA[channel], size=label.shape).astype(np.float32)
        channels.append((gain * means[label] + noise).astype(np.float32))
    return channels, label


def _to_image(array: np.ndarray, geometry: CaseGeometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def write_case(case_id: str, geometry: CaseGeometry, seed: int | list[int], images_dir: Path, label_path: Path) -> None:
    """Synthesize one case and write {case_id}_{XXXX}.nii.gz images plus its label file."""
    channels, label = synthesize_case(geometry, np.random.default_rng(seed))
    images_dir.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    for index, array in enumerate(channels):
        sitk.WriteImage(_to_image(array, geometry), str(images_dir / f"{case_id}_{index:04d}{FILE_ENDING}"))
    sitk.WriteImage(_to_image(label, geometry), str(label_path))


def training_geometry(rng: np.random.Generator, large: bool) -> CaseGeometry:
    """A grid at about 1 mm with a little spacing jitter: roughly 48^3, or 60 to 80 voxels a side if large.

    Large cases vary the fraction of foreground voxels, which the per-image z-score normalization depends on.
    """
    low, high = (60, 81) if large else (44, 53)
    size = tuple(int(n) for n in rng.integers(low, high, size=3))
    spacing = tuple(float(s) for s in np.round(rng.uniform(0.9, 1.1, size=3), 2))
    return CaseGeometry(size, spacing)


def write_training_dataset(
    raw_root: Path, dataset_id: int = DEMO_DATASET_ID, name: str = "Demo", n_cases: int = N_TRAINING_CASES
) -> Path:
    """Write Dataset{ID:03d}_{name} in nnU-Net raw format under raw_root and return its folder."""
    dataset_dir = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    for index in range(n_cases):
        seed = [TRAINING_SEED, index]
        geometry = training_geometry(np.random.default_rng(seed), large=index % 4 == 3)
        case_id = f"train_{index:03d}"
        label_path = dataset_dir / "labelsTr" / f"{case_id}{FILE_ENDING}"
        write_case(case_id, geometry, seed + [1], dataset_dir / "imagesTr", label_path)
    dataset_json = {
        "channel_names": CHANNEL_NAMES,
        "labels": LABELS,
        "numTraining": n_cases,
        "file_ending": FILE_ENDING,
        "name": name,
        "description": f"Synthetic sphere (bright in T1) and box (bright in T2), generator v{GENERATOR_VERSION}",
    }
    (dataset_dir / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return dataset_dir


def write_demo_cases(images_dir: Path, labels_dir: Path) -> list[str]:
    """Write the demo test cases (images in nnU-Net naming, ground truth as {case}.nii.gz); return case ids."""
    for index, (case_id, geometry) in enumerate(DEMO_CASES.items()):
        label_path = Path(labels_dir) / f"{case_id}{FILE_ENDING}"
        write_case(case_id, geometry, [DEMO_SEED, index], Path(images_dir), label_path)
    return list(DEMO_CASES)


def dice_per_label(
    pred_path: Path, truth_path: Path, labels: Mapping[str, int] = FOREGROUND_LABELS
) -> dict[str, float]:
    """Dice of each named label between two label images on the same grid (1.0 when both are empty)."""
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_path)))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_path)))
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: {pred_path} {pred.shape} vs {truth_path} {truth.shape}")
    scores = {}
    for name, value in labels.items():
        p, t = pred == value, truth == value
        total = int(p.sum()) + int(t.sum())
        scores[name] = 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total
    return scores
