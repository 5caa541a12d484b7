"""nnU-Net's `DefaultPreprocessor.run_case` for inference, step by step with nnU-Net's own functions (reader,
transposition, crop to the non-zero mask, normalization, the segmentation's resampling), but:
- the image is resampled on threads with less memory (image_resampling, bit-identical);
- the image is not copied before its transposition (nnU-Net copies it to protect the caller's array:
  here nothing else holds it);
- without a previous stage's segmentation, the crop's non-zero mask is not resampled: nnU-Net resamples it
  and the inference never reads it (its normalization uses it before resampling, as here).
A preprocessor class that overrides `run_case` or `run_case_npy`, or plans whose image resampling is not
nnU-Net's default, go through the preprocessor's own `run_case`. `tests/test_case_preprocessing.py` proves
the arrays and properties identical.
"""

from __future__ import annotations

import numpy as np

from ..nnunet.model import supports_data_configuration
from .image_resampling import resample_image


def runs_in_parallel(preprocessor, configuration_manager) -> bool:
    """Whether this preprocessor's run_case is nnU-Net's default one and its image resampling one this module
    reproduces."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    kind = type(preprocessor)
    return (isinstance(preprocessor, DefaultPreprocessor)
            and kind.run_case is DefaultPreprocessor.run_case
            and kind.run_case_npy is DefaultPreprocessor.run_case_npy
            and supports_data_configuration(configuration_manager.configuration))


def run_case(preprocessor, image_files, seg_file, plans_manager, configuration_manager, dataset_json: dict,
             threads: int = 1):
    """(data, seg, properties) as `preprocessor.run_case` gives them; seg is None without `seg_file`."""
    if not runs_in_parallel(preprocessor, configuration_manager):
        data, seg, properties = preprocessor.run_case(image_files, seg_file, plans_manager, configuration_manager,
                                                      dataset_json)
        return data, (seg if seg_file is not None else None), properties
    from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    reader = plans_manager.image_reader_writer_class()
    data, properties = reader.read_images(image_files)
    data = np.asarray(data, dtype=np.float32)
    seg = None if seg_file is None else reader.read_seg(seg_file)[0]
    if seg is not None and data.shape[1:] != seg.shape[1:]:
        raise ValueError(f"{seg_file}: shape {seg.shape[1:]} differs from the image's {data.shape[1:]}")
    axes = [0, *[i + 1 for i in plans_manager.transpose_forward]]
    data = data.transpose(axes)
    seg = None if seg is None else seg.transpose(axes)
    original_spacing = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    properties["shape_before_cropping"] = data.shape[1:]
    data, mask, bbox = crop_to_nonzero(data, seg)
    properties["bbox_used_for_cropping"] = bbox
    properties["shape_after_cropping_and_before_resampling"] = data.shape[1:]
    target_spacing = configuration_manager.spacing
    if len(target_spacing) < len(data.shape[1:]):  # 2d: the first axis keeps its spacing
        target_spacing = [original_spacing[0]] + target_spacing
    new_shape = compute_new_shape(data.shape[1:], original_spacing, target_spacing)
    data = preprocessor._normalize(data, mask, configuration_manager,
                                   plans_manager.foreground_intensity_properties_per_channel)
    data = resample_image(data, new_shape, original_spacing, target_spacing,
                          dict(configuration_manager.configuration.get("resampling_fn_data_kwargs") or {}), threads)
    if seg is None:
        return data, None, properties
    seg = configuration_manager.resampling_fn_seg(mask, new_shape, original_spacing, target_spacing)
    label_manager = plans_manager.get_label_manager(dataset_json)
    collect = label_manager.foreground_regions if label_manager.has_regions else label_manager.foreground_labels
    if label_manager.has_ignore_label:
        collect.append([-1] + label_manager.all_labels)
    properties["class_locations"] = preprocessor._sample_foreground_locations(seg, collect,
                                                                              verbose=preprocessor.verbose)
    seg = preprocessor.modify_seg_fn(seg, plans_manager, dataset_json, configuration_manager)
    return data, seg.astype(np.int16 if np.max(seg) > 127 else np.int8), properties
