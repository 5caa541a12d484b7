"""QC previews: the three fullest planes of the segmentation at the physical aspect, labels coloured over a
robust window of the first channel, written as a PNG."""

import numpy as np
from PIL import Image

from nnunet_workflow.stages.qc_preview import (
    GAP_PIXELS,
    PALETTE,
    PLANE_PIXELS,
    fullest_planes,
    render_preview,
    write_png,
)


def test_each_plane_is_the_fullest_and_shows_the_labels_colour(tmp_path):
    channel = np.zeros((20, 30, 40), dtype=np.float32)
    channel[:, :, 20:] = 100.0
    seg = np.zeros(channel.shape, dtype=np.uint8)
    seg[4:7, 10:13, 30:33] = 2
    seg[15, 0, 0] = 1  # a single voxel elsewhere: not where the planes go
    assert fullest_planes(seg) == (4, 10, 30)
    rgb = render_preview(channel, seg, (2.0, 1.0, 1.0))
    # the longest physical side (40 mm along axis 2, and axis 0's 20 x 2 mm) is PLANE_PIXELS long
    assert rgb.dtype == np.uint8 and rgb.shape[0] == PLANE_PIXELS
    axial_width = PLANE_PIXELS  # the axial plane is 30 x 40 mm: rows 192, cols 256
    axial = rgb[:192, :axial_width]
    colour = PALETTE[1]
    labelled = np.all(np.abs(axial.astype(float) - (0.55 * 255 + 0.45 * colour)) < 2, axis=-1) | np.all(
        np.abs(axial.astype(float) - 0.45 * colour) < 2, axis=-1)
    assert labelled.sum() > 0
    assert rgb.shape[1] == 3 * PLANE_PIXELS - 64 + 2 * GAP_PIXELS  # sagittal: 30 x 40 mm drawn 192 wide
    write_png(tmp_path / "qc" / "case.png", rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "qc" / "case.png")), rgb)


def test_an_empty_segmentation_is_drawn_through_the_middle_and_a_2d_case_as_one_plane():
    seg = np.zeros((1, 10, 12), dtype=np.uint8)
    assert fullest_planes(seg) == (0, 5, 6)
    rgb = render_preview(np.arange(120, dtype=np.float32).reshape(seg.shape), seg, (999.0, 1.0, 1.0))
    assert rgb.shape == (round(10 * PLANE_PIXELS / 12), PLANE_PIXELS, 3)
