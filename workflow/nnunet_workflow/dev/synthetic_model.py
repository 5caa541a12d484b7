"""Models and images for the benchmarks: an nnU-Net v2 model folder with random weights and any number
of classes and target spacing, made from the demo model's real nnU-Net plans, and large synthetic
CT-like images. Memory and time do not depend on what a network has learned, only on its shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

CONFIGURATION = "3d_fullres"
TRAINER = "nnUNetTrainer"


def torch_resampling_configuration(parent: str = CONFIGURATION) -> dict:
    """A configuration as nnU-Net's nnUNetPlanner_torchres plans it: `parent`'s, with every resampling (image,
    segmentation, probabilities) by nnU-Net's torch function; for `configurations` below, under a name of its own."""
    kwargs = {"is_seg": False, "force_separate_z": False, "memefficient_seg_resampling": False}
    function = "resample_torch_fornnunet"
    return {"inherits_from": parent, "data_identifier": f"nnUNetPlans_torchres_{parent}",
            "resampling_fn_data": function, "resampling_fn_data_kwargs": kwargs,
            "resampling_fn_seg": function, "resampling_fn_seg_kwargs": {**kwargs, "is_seg": True},
            "resampling_fn_probabilities": function, "resampling_fn_probabilities_kwargs": kwargs}


def build_random_model(template: Path, destination: Path, num_classes: int = 3, target_spacing=None, seed: int = 0,
                       folds=("0",), configuration: str = CONFIGURATION, dataset_changes: dict | None = None,
                       configurations: dict | None = None, plans_changes: dict | None = None) -> Path:
    """Write a trained-model folder `TRAINER__nnUNetPlans__CONFIGURATION` (dataset.json, plans.json,
    fold_F/checkpoint_final.pth for each fold, each with its own random weights) beside nothing else.

    `template` is a real model folder whose plans are kept but for: the target spacing of `configuration`
    (z, y, x; kept when None), the axis transposition (none), and `configurations` added or replaced by
    name (e.g. a 3d_lowres; a cascade stage's network takes its one-hot input channels too), and
    `plans_changes` at the top level (e.g. the image_reader_writer). The labels
    become background + num_classes-1 classes, unless `dataset_changes` replaces them (e.g. regions with
    their `regions_class_order`). Returns the folder.
    """
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    template, destination = Path(template), Path(destination)
    folder = destination / f"{TRAINER}__nnUNetPlans__{configuration}"
    if all((folder / f"fold_{fold}" / "checkpoint_final.pth").is_file() for fold in folds):
        return folder
    scratch = destination / f".{folder.name}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    dataset = json.loads((template / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, **{f"class_{i}": i for i in range(1, num_classes)}}
    dataset.update(dataset_changes or {})
    plans = json.loads((template / "plans.json").read_text())
    plans["configurations"].update(configurations or {})
    plans.update(plans_changes or {})
    if target_spacing is not None:
        plans["configurations"][configuration]["spacing"] = [float(s) for s in target_spacing]
    # no axis transposition: target_spacing is then in the images' array order (z, y, x)
    plans["transpose_forward"] = plans["transpose_backward"] = [0, 1, 2]
    (scratch / "dataset.json").write_text(json.dumps(dataset, indent=2))
    (scratch / "plans.json").write_text(json.dumps(plans, indent=2))

    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    for index, fold in enumerate(folds):
        torch.manual_seed(seed + index)
        network = nnUNetTrainer.build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset),
            plans_manager.get_label_manager(dataset).num_segmentation_heads, enable_deep_supervision=False)
        (scratch / f"fold_{fold}").mkdir()
        torch.save({"network_weights": network.state_dict(), "trainer_name": TRAINER,
                    "init_args": {"configuration": configuration},
                    "inference_allowed_mirroring_axes": tuple(range(len(configuration_manager.patch_size)))},
                   scratch / f"fold_{fold}" / "checkpoint_final.pth")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    return folder


def write_image_case(folder: Path, case: str, size_xyz, spacing_xyz, channels: int, file_ending=".nii.gz",
                     seed: int = 0) -> list[Path]:
    """Write one int16 case of the given (x, y, z) size and spacing, nonzero everywhere (so nnU-Net's
    crop to nonzero keeps the whole volume: the worst case for memory), with a few bright blobs."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape_zyx = tuple(int(n) for n in reversed(size_xyz))
    paths = []
    grids = np.ogrid[tuple(slice(0, n) for n in shape_zyx)]
    for channel in range(channels):
        volume = rng.integers(50, 150, size=shape_zyx, dtype=np.int16)
        for _ in range(3):
            centre = [rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)) for n in shape_zyx]
            radius = max(2, min(shape_zyx) // 6)
            inside = sum(((g - c) / radius) ** 2 for g, c in zip(grids, centre)) <= 1
            volume[inside] += np.int16(600 + 200 * channel)
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing([float(s) for s in spacing_xyz])
        path = folder / f"{case}_{channel:04d}{file_ending}"
        sitk.WriteImage(image, str(path), useCompression=True)
        paths.append(path)
    return paths
