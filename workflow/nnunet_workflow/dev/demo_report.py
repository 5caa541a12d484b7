"""Report of a demo run: Dice of each segmentation against the synthetic ground truth, and where things are."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .demo_data import FILE_ENDING, dice_per_label

MINIMUM_DICE = 0.9


def dice_table(results, truth) -> pd.DataFrame:
    """One row per ground-truth case with a segmentation in `results`: Dice per label and their minimum."""
    rows = []
    for truth_path in sorted(Path(truth).glob(f"*{FILE_ENDING}")):
        case = truth_path.name[: -len(FILE_ENDING)]
        segmentation = Path(results) / truth_path.name
        if segmentation.is_file():
            scores = dice_per_label(segmentation, truth_path)
            rows.append({"case": case, **scores, "dice": min(scores.values())})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, required=True, help="results folder of the demo run")
    parser.add_argument("--truth", type=Path, required=True, help="folder of ground-truth label images")
    args = parser.parse_args(argv)
    table = dice_table(args.results, args.truth)
    print("\nDice against the synthetic ground truth:")
    print(table.to_string(index=False, float_format="{:.3f}".format))
    print(f"\nSegmentations: {args.results.resolve()}/<case>{FILE_ENDING}")
    print(f"Summary table: {(args.results / 'summary.tsv').resolve()}")
    if table.empty or table["dice"].min() < MINIMUM_DICE:
        print(f"Demo Dice below {MINIMUM_DICE}: the demo model or run is broken.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
