"""Output plausibility: notes on a segmentation that deserve a look. Per case from its label statistics (an
empty label, a label touching the image border, so possibly cut off); over the run, a label whose volume is
far from the other cases' (a robust z-score on the median and the median absolute deviation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

# A volume whose robust z-score (0.6745 (v - median) / MAD) exceeds this is noted (Iglewicz and Hoaglin's 3.5).
ROBUST_Z_LIMIT = 3.5
# Fewer cases with a label than this give no volume outliers (no stable median or MAD: on the 6 demo cases, a
# sphere of 4.8 ml among spheres of 2.3-3.0 ml scored +4.1).
MIN_CASES_FOR_OUTLIERS = 10


def case_notes(rows: Iterable[Mapping]) -> list[str]:
    """Notes on one case from its label statistics rows (label_statistics.label_statistics)."""
    notes = []
    for row in rows:
        if not row["voxels"]:
            notes.append(f"label {row['label']} is empty")
        elif row["border"]:
            notes.append(f"label {row['label']} touches the image border ({row['border']}): it may be cut off")
    return notes


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores of values; zeros where the median absolute deviation is 0."""
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    if mad == 0:
        return np.zeros_like(values, dtype=float)
    return 0.6745 * (values - median) / mad


def volume_outliers(volumes: Mapping[str, Mapping[str, float]]) -> dict[str, list[str]]:
    """{case: notes} for label volumes far from the run's: `volumes` is {label: {case: volume_ml}} over the
    cases where the label is not empty."""
    notes: dict[str, list[str]] = {}
    for label, by_case in volumes.items():
        if len(by_case) < MIN_CASES_FOR_OUTLIERS:
            continue
        cases = list(by_case)
        values = np.array([by_case[c] for c in cases], dtype=float)
        median = float(np.median(values))
        for case, value, z in zip(cases, values, robust_z(values)):
            if abs(z) > ROBUST_Z_LIMIT:
                notes.setdefault(case, []).append(
                    f"label {label} volume {value:.3g} ml is far from the run's median {median:.3g} ml "
                    f"(robust z {z:+.1f}, over {len(cases)} cases)")
    return notes
