"""Input plausibility against a model's dataset_fingerprint.json: a channel without the training foreground's
intensities, swapped channels, a spacing outside the training range; matching input gets no note."""

import json

import numpy as np

from nnunet_workflow.inputs.input_plausibility import (
    TrainingReference,
    channel_figures,
    intensity_notes,
    load_reference,
    spacing_notes,
    swapped_pairs,
)

# two channels on different scales: T1's foreground 130-500, T2's 1000-2800
REFERENCE = TrainingReference(((130.0, 400.0, 500.0), (1000.0, 1500.0, 2800.0)), ((0.9, 1.1), (0.9, 1.1), (0.9, 1.1)))
NAMES = ("T1", "T2")


def image(background, foreground, shape=(20, 20, 20)):
    rng = np.random.default_rng(0)
    array = rng.normal(background, 10, shape).astype(np.float32)
    array[5:10, 5:10, 5:10] = rng.normal(foreground, 10, (5, 5, 5))
    return array


def test_the_reference_is_read_from_the_fingerprint_in_channel_order(tmp_path):
    channel = {"percentile_00_5": 1, "median": 2, "percentile_99_5": 3, "mean": 2, "std": 1, "min": 0, "max": 4}
    fingerprint = {"foreground_intensity_properties_per_channel": {"1": {**channel, "median": 20}, "0": channel},
                   "spacings": [[3.0, 0.8, 0.8], [2.5, 0.7, 0.9]], "shapes_after_crop": [[1, 2, 3]]}
    (tmp_path / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    reference = load_reference(tmp_path)
    assert reference.intensities == ((1.0, 2.0, 3.0), (1.0, 20.0, 3.0))
    assert reference.spacing_range == ((2.5, 3.0), (0.7, 0.8), (0.8, 0.9))
    assert load_reference(tmp_path / "elsewhere") is None


def test_matching_channels_get_no_note():
    figures = [channel_figures(image(100, 400), REFERENCE), channel_figures(image(1300, 2200), REFERENCE)]
    assert figures[0]["in_range"][0] > 0.01 and figures[0]["in_range"][1] == 0
    assert intensity_notes(figures, REFERENCE, NAMES) == []


def test_swapped_channels_are_named_with_their_shares():
    figures = [channel_figures(image(1300, 2200), REFERENCE), channel_figures(image(100, 400), REFERENCE)]
    assert swapped_pairs(figures) == [(0, 1)]
    [note] = intensity_notes(figures, REFERENCE, NAMES)
    assert note.startswith("channel 0000 (T1) and channel 0001 (T2) look swapped: 100.0% of channel 0000 (T1)'s "
                           "voxels lie in T2's training foreground range (1000 to 2800) and 0.0% in its own")


def test_a_channel_on_another_intensity_scale_is_named_with_the_figures():
    figures = [channel_figures(image(1000, 4000), REFERENCE), channel_figures(image(1300, 2200), REFERENCE)]
    [note] = intensity_notes(figures, REFERENCE, NAMES)
    assert note.startswith("channel 0000 (T1): 0.00% of its voxels lie in the training foreground's intensity range "
                           "130 to 500 (p0.5 to p99.5, median 400, dataset_fingerprint.json); this image spans ")


def test_a_spacing_beyond_the_training_range_by_more_than_the_factor_is_noted():
    assert spacing_notes([1.0, 2.3, 0.5], REFERENCE) == [
        "spacing [1.0, 2.3, 0.5] mm is outside the training cases' range [0.9-1.1, 0.9-1.1, 0.9-1.1] by more "
        "than a factor 2 on axis 1"]
    assert spacing_notes([2.2, 0.45, 1.0], REFERENCE) == []
    assert spacing_notes([1.0, 1.0], REFERENCE) == []
