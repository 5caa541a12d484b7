"""The preprocess stage's run_case gives nnU-Net's DefaultPreprocessor.run_case's arrays and properties: images with
a zero border and a hole in the non-zero mask (crop), CT and z-score normalization (with and without the mask),
a transposition, the joint and separate-z paths, a cascade's previous segmentation; and it leaves preprocessors
and plans it does not reproduce to nnU-Net's own run_case."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_workflow.stages.case_preprocessing import run_case, runs_in_parallel

pytestmark = pytest.mark.slow  # the demo model's plans (built once per CI run)
pytest.importorskip("nnunetv2")


def plans_of(demo, spacing, **configuration):
    """nnU-Net's plans manager, configuration manager and dataset.json of the demo model, changed."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads((demo["model"] / "plans.json").read_text())
    transpose = configuration.pop("transpose", None)
    if transpose is not None:
        plans["transpose_forward"] = transpose
        plans["transpose_backward"] = [transpose.index(i) for i in range(3)]
    plans["configurations"]["3d_fullres"].update({"spacing": list(spacing), **configuration})
    manager = PlansManager(plans)
    return manager, manager.get_configuration("3d_fullres"), json.loads((demo["model"] / "dataset.json").read_text())


def write_case(folder, shape_zyx, spacing_xyz, seed=0):
    """Two channels with a zero border (cropped away) and a zero hole inside (filled in the mask)."""
    rng = np.random.default_rng(seed)
    paths = []
    for channel in range(2):
        array = rng.normal(100 + 500 * channel, 40, size=shape_zyx).astype(np.int16)
        array[:2], array[:, :, -3:] = 0, 0
        centre = tuple(n // 2 for n in shape_zyx)
        array[centre[0] - 1:centre[0] + 2, centre[1] - 1:centre[1] + 2, centre[2] - 1:centre[2] + 2] = 0
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing_xyz)
        paths.append(str(folder / f"case_{channel:04d}.nii.gz"))
        sitk.WriteImage(image, paths[-1])
    return paths


CASES = {
    "joint_ct_and_masked_zscore": dict(shape=(24, 30, 26), spacing=(0.8, 0.8, 1.0), target=(1.3, 1.1, 1.2),
                                       normalization_schemes=["CTNormalization", "ZScoreNormalization"],
                                       use_mask_for_norm=[False, True]),
    "separate_z_transposed": dict(shape=(8, 36, 32), spacing=(0.7, 0.7, 3.5), target=(0.9, 3.5, 0.9),
                                  transpose=[1, 0, 2]),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_arrays_and_properties_equal_nnunet_run_case(demo, tmp_path, name, threads):
    settings = dict(CASES[name])
    files = write_case(tmp_path, settings.pop("shape"), settings.pop("spacing"))
    plans_manager, configuration_manager, dataset_json = plans_of(demo, settings.pop("target"), **settings)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    assert runs_in_parallel(preprocessor, configuration_manager)
    expected, _, expected_properties = preprocessor.run_case(files, None, plans_manager, configuration_manager,
                                                             dataset_json)
    data, seg, properties = run_case(preprocessor, files, None, plans_manager, configuration_manager, dataset_json,
                                     threads)
    assert seg is None and data.dtype == expected.dtype and np.array_equal(data, expected)
    assert properties["bbox_used_for_cropping"] != [[0, n] for n in properties["shape_before_cropping"]]  # cropped
    assert properties.keys() == expected_properties.keys()
    for key in properties:
        assert str(properties[key]) == str(expected_properties[key]), key


def test_a_cascades_previous_segmentation_equals_nnunet_run_case(demo, tmp_path):
    files = write_case(tmp_path, (20, 24, 22), (0.9, 0.9, 1.1), seed=3)
    seg = np.zeros((20, 24, 22), dtype=np.uint8)
    seg[5:12, 6:15, 4:14], seg[8:10, 8:10, 8:10] = 1, 2
    image = sitk.GetImageFromArray(seg)
    image.SetSpacing((0.9, 0.9, 1.1))
    seg_file = str(tmp_path / "previous.nii.gz")
    sitk.WriteImage(image, seg_file)
    plans_manager, configuration_manager, dataset_json = plans_of(demo, (1.2, 1.3, 1.0))
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    expected = preprocessor.run_case(files, seg_file, plans_manager, configuration_manager, dataset_json)
    got = run_case(preprocessor, files, seg_file, plans_manager, configuration_manager, dataset_json, 2)
    assert np.array_equal(got[0], expected[0]) and got[1].dtype == expected[1].dtype
    assert np.array_equal(got[1], expected[1]) and set(np.unique(got[1])) >= {0, 1, 2}
    assert str(got[2]) == str(expected[2])


def test_other_preprocessors_and_resampling_go_through_nnunets_run_case(demo, tmp_path, monkeypatch):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    class Custom(DefaultPreprocessor):
        def run_case_npy(self, *args, **kwargs):
            data, seg, properties = super().run_case_npy(*args, **kwargs)
            return data + 1, seg, properties

    files = write_case(tmp_path, (12, 14, 16), (1.0, 1.0, 1.0))
    plans_manager, configuration_manager, dataset_json = plans_of(demo, (1.5, 1.5, 1.5))
    custom = Custom(verbose=False)
    assert not runs_in_parallel(custom, configuration_manager)
    expected = custom.run_case(files, None, plans_manager, configuration_manager, dataset_json)[0]
    assert np.array_equal(run_case(custom, files, None, plans_manager, configuration_manager, dataset_json, 2)[0],
                          expected)
    kwargs = {**configuration_manager.configuration["resampling_fn_data_kwargs"], "order_z": 1}
    _, other, _ = plans_of(demo, (1.5, 1.5, 1.5), resampling_fn_data_kwargs=kwargs)
    assert not runs_in_parallel(DefaultPreprocessor(verbose=False), other)
