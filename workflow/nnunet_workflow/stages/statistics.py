"""Stage `statistics`: after a case's final segmentation is written, its label statistics (voxels, volume,
intensity per channel inside each label), the notes on its output (empty labels, labels touching the border)
and its QC preview `{results}/qc/{case}.png`. It reads the segmentation and the images again, so it can be
recomputed without segmenting again: a rerun that finds a segmentation without statistics runs this stage
alone for it."""

from __future__ import annotations

import math

import numpy as np

from ..estimates import host_memory
from ..estimates.stage_needs import StageResources, statistics_mb_from_geometry
from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..inputs.dicom_series import image_files
from ..inputs.image_reading import reader_class
from ..store.failures import CaseError
from .label_statistics import label_statistics
from .output_checks import case_notes
from .qc_preview import render_preview, write_png


def _smallest_int(seg: np.ndarray) -> np.ndarray:
    """A label map (read as float32 by nnU-Net's readers) as the smallest unsigned integer type holding it."""
    top = int(seg.max()) if seg.size else 0
    return seg.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)


def _finite_or_none(row: dict) -> dict:
    """JSON has no NaN: an empty label's intensity figures become null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def statistics_case(_state, job: CaseJob) -> dict:
    """Read the case's segmentation and channels with the model's reader; return its label statistics and
    output notes, and write its preview."""
    model = job.model
    io = reader_class(model.image_reader_writer)()  # as nnU-Net's plans manager finds it
    if not job.segmentation().is_file():
        raise CaseError(f"{job.segmentation()}: the segmentation is not there (moved or deleted since it was written)")
    seg, _ = io.read_seg(str(job.segmentation()))
    seg = _smallest_int(seg[0])
    images, properties = io.read_images(image_files(job))
    if images.shape[1:] != seg.shape:
        raise CaseError(f"segmentation {job.segmentation()} has shape {list(seg.shape)} but the images "
                         f"{list(images.shape[1:])}")
    spacing = [float(s) for s in properties["spacing"]]
    rows = label_statistics(seg, images, spacing, model.labels, model.channel_names)
    preview = job.layout.preview(job.id)
    write_png(preview, render_preview(images[0], seg, spacing))
    return {"labels": [_finite_or_none(row) for row in rows], "output_notes": case_notes(rows),
            "preview": str(preview), "spacing": spacing}


def import_readers(model, _options) -> None:
    """Worker setup: import the model's nnU-Net reader, scipy and PIL once for the batch."""
    import scipy.ndimage  # noqa: F401
    from PIL import Image  # noqa: F401

    reader_class(model.image_reader_writer)


STATISTICS = Stage("statistics", handle=statistics_case, setup=import_readers,
                   outputs=lambda job: [job.layout.preview(job.id)], after_segmentation=True,
                   resources=StageResources(host_memory.VALIDATE_BASE_MB, from_geometry=statistics_mb_from_geometry))
