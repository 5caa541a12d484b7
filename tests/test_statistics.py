"""Stage statistics on files: the segmentation and channels read with the model's reader, rows equal to a
direct count (volume from the file's spacing), the output notes and the preview on disk."""

import json
from dataclasses import replace

import numpy as np
import SimpleITK as sitk
from stages import run_one

from nnunet_workflow.execution.job import CaseJob
from nnunet_workflow.inputs.cases import Case
from nnunet_workflow.stages.statistics import STATISTICS
from nnunet_workflow.store.layout import Layout


def write(array, path, spacing=(0.8, 0.7, 2.5)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return str(path)


def test_statistics_of_a_written_case_equal_a_direct_count(tmp_path, two_channel_model):
    model = replace(two_channel_model, folder=tmp_path / "model")
    model.folder.mkdir()
    (model.folder / "plans.json").write_text(json.dumps({"image_reader_writer": "SimpleITKIO"}))
    layout = Layout(tmp_path / "results")
    rng = np.random.default_rng(1)
    seg = np.zeros((12, 20, 24), dtype=np.uint8)
    seg[3:6, 4:9, 5:12] = 1
    seg[0:2, 10:14, 10:14] = 2  # on the first plane: at the border
    channels = [rng.normal(100, 5, seg.shape).astype(np.float32) + 300 * (seg == 1), rng.normal(0, 1, seg.shape)]
    files = {i: write(array, tmp_path / f"case_{i:04d}.nii.gz") for i, array in enumerate(channels)}
    layout.results.mkdir()
    write(seg, layout.segmentation("case", ".nii.gz"))
    job = CaseJob(Case("case", files), "a1", model, layout)
    record = run_one(STATISTICS, job)
    assert record.done, record.message
    rows = {row["label"]: row for row in record.details["labels"]}
    sphere = seg == 1
    assert rows["sphere"]["voxels"] == int(sphere.sum())
    assert np.isclose(rows["sphere"]["volume_ml"], sphere.sum() * 0.8 * 0.7 * 2.5 / 1000)
    read = sitk.GetArrayFromImage(sitk.ReadImage(files[0])).astype(np.float64)[sphere]
    assert np.isclose(rows["sphere"]["T1_mean"], read.mean())
    assert np.isclose(rows["sphere"]["T2_p95"], np.percentile(
        sitk.GetArrayFromImage(sitk.ReadImage(files[1])).astype(np.float64)[sphere], 95))
    assert record.details["output_notes"] == ["label box touches the image border (axis 0 start): it may be cut off"]
    assert layout.preview("case").is_file()
    # a segmentation that is not there fails the case's statistics, naming the file
    layout.segmentation("case", ".nii.gz").unlink()
    failed = run_one(STATISTICS, replace(job, attempt="a2"))
    assert not failed.done and "case.nii.gz" in failed.message
