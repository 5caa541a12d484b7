"""Stage preprocess: stores exactly what nnU-Net's own preprocessor produces; skips invalid cases."""

import pickle

import numpy as np
import pytest
from stages import demo_job, run_one, validated_and_preprocessed

from nnunet_workflow.nnunet.model import nnunet_plans
from nnunet_workflow.stages.preprocess import PREPROCESS
from nnunet_workflow.store.records import StageRecord

pytestmark = pytest.mark.slow


def reference_preprocessing(model, files):
    plans_manager, configuration_manager, dataset_json = nnunet_plans(model)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    return preprocessor.run_case(files, None, plans_manager, configuration_manager, dataset_json)


@pytest.mark.parametrize("which", ["first", "anisotropic"])
def test_stored_data_and_properties_equal_nnunet_preprocessing(demo, tmp_path, which):
    case = sorted(demo["cases"])[0] if which == "first" else demo["anisotropic_case"]
    model, layout, validated, preprocessed = validated_and_preprocessed(demo, tmp_path, [case])
    assert preprocessed[case].status == "done", preprocessed[case]
    data, _, properties = reference_preprocessing(model, demo["case_files"][case])
    stored = np.load(layout.preprocessed(case, "a1"))
    assert stored.dtype == np.float32 and np.array_equal(stored, data)
    with open(layout.properties(case, "a1"), "rb") as handle:
        stored_properties = pickle.load(handle)
    assert stored_properties.keys() == properties.keys()
    assert stored_properties["bbox_used_for_cropping"] == properties["bbox_used_for_cropping"]
    assert list(stored_properties["spacing"]) == list(properties["spacing"])
    assert preprocessed[case].peak_rss_mb > 0 and validated[case].estimates.separate_z == (which == "anisotropic")


def test_case_that_failed_validation_is_skipped_without_output(demo, tmp_path):
    _, layout, _, _ = validated_and_preprocessed(demo, tmp_path, [])
    failed = StageRecord("validate", "x", "failed", kind="invalid_input", message="missing channel")
    record = run_one(PREPROCESS, demo_job(demo, layout, "x", validate=failed))
    assert (record.status, record.message) == ("skipped", "not run: validate failed")
    assert not layout.preprocessed("x", "a1").exists()
