"""The run's `report.html`: one self-contained page from `summary.tsv`, `statistics.tsv` and the QC previews:
counts, failed cases first (stage, reason, log), plausibility notes and warnings, time and peak memory per
stage, label volumes over the run, and preview thumbnails (embedded; flagged cases first)."""

from __future__ import annotations

import base64
import html
import io
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..store.atomic_files import atomic_path

# Previews embedded as thumbnails (flagged cases first); the rest are linked.
MAX_EMBEDDED_PREVIEWS = 500
THUMBNAIL_HEIGHT = 120
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;
vertical-align:top}th{background:#f3f3f3}.counts span{display:inline-block;margin-right:1.5em;font-size:1.1em}
.failed{color:#b00020}.done{color:#1b5e20}.pending{color:#8a6d00}
.previews{display:flex;flex-wrap:wrap;gap:10px}.previews figure{margin:0;font-size:.8em}
.flag{outline:3px solid #e6a700}
"""


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else html.escape(str(value))


def _table(frame: pd.DataFrame, links: dict[str, str] | None = None) -> str:
    """An HTML table; `links` maps a column to the column holding each row's href for it."""
    links = links or {}
    shown = [c for c in frame.columns if c not in links.values()]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    rows = []
    for row in frame.to_dict("records"):
        cells = []
        for column in shown:
            text = _cell(row[column])
            if column in links and row.get(links[column]):
                text = f'<a href="{html.escape(str(row[links[column]]))}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _relative(path, start: Path) -> str:
    return os.path.relpath(path, start) if path else ""


def thumbnail_png(path) -> bytes:
    """A preview scaled to THUMBNAIL_HEIGHT pixels high, as PNG bytes."""
    from PIL import Image

    with Image.open(path) as image:
        width = max(1, round(image.width * THUMBNAIL_HEIGHT / image.height))
        small = image.convert("RGB").resize((width, THUMBNAIL_HEIGHT), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_thumbnails(summary: pd.DataFrame, folder) -> dict[str, Path]:
    """{case: thumbnail} of every case with a preview, written into `folder` (for `snakemake --report`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for case, preview in zip(summary["case"], summary["preview"]):
        if preview and Path(preview).is_file():
            written[str(case)] = folder / f"{case}.png"
            written[str(case)].write_bytes(thumbnail_png(preview))
    return written


def _stage_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for column in [c for c in summary.columns if c.endswith("_seconds")]:
        stage = column.removesuffix("_seconds")
        seconds = pd.to_numeric(summary[column], errors="coerce").dropna()
        peaks = pd.to_numeric(summary.get(f"{stage}_peak_mb"), errors="coerce").dropna()
        if seconds.empty:
            continue
        rows.append({"stage": stage, "cases": len(seconds), "median s": round(seconds.median(), 1),
                     "max s": round(seconds.max(), 1), "total s": round(seconds.sum(), 1),
                     "median peak MB": round(peaks.median()) if len(peaks) else None,
                     "max peak MB": round(peaks.max()) if len(peaks) else None})
    return pd.DataFrame(rows)


def _volume_table(statistics: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, group in statistics.groupby("label", sort=False):
        present = group[group["voxels"] > 0]["volume_ml"]
        rows.append({"label": label, "cases": len(group), "empty in": int((group["voxels"] == 0).sum()),
                     "median ml": round(present.median(), 3) if len(present) else None,
                     "min ml": round(present.min(), 3) if len(present) else None,
                     "max ml": round(present.max(), 3) if len(present) else None})
    return pd.DataFrame(rows)


def _previews(summary: pd.DataFrame, start: Path, thumbnails: dict[str, Path]) -> str:
    shown = summary[summary["preview"].astype(str) != ""]
    flagged = shown["plausibility"].astype(str) != ""
    shown = pd.concat([shown[flagged], shown[~flagged]])
    figures = []
    for index, row in enumerate(shown.to_dict("records")):
        name, path = html.escape(str(row["case"])), str(row["preview"])
        css = ' class="flag"' if row["plausibility"] else ""
        link = html.escape(_relative(path, start))
        thumbnail = thumbnails.get(str(row["case"]))
        if index < MAX_EMBEDDED_PREVIEWS and thumbnail is not None:
            data = base64.b64encode(thumbnail.read_bytes()).decode()
            image = f'<img{css} alt="preview of {name}" src="data:image/png;base64,{data}">'
        else:
            image = "(not embedded)"
        figures.append(f'<figure><a href="{link}">{image}</a><figcaption>{name}</figcaption></figure>')
    return (f'<div class="previews">{"".join(figures)}</div>' if figures
            else "<p>No previews: statistics are off, or no case is segmented yet.</p>")


def render_report(summary: pd.DataFrame, statistics: pd.DataFrame | None, results: Path,
                  thumbnails: dict[str, Path]) -> str:
    """The report's HTML for a results folder (links relative to it), with the cases' preview thumbnails."""
    summary = summary.fillna("")
    summary["log"] = [_relative(p, results) for p in summary["log"]]
    counts = summary["status"].value_counts()
    parts = [f"<h1>nnU-Net workflow report: {html.escape(results.name)}</h1>",
             f"<p>{html.escape(str(results.resolve()))}, written {datetime.now():%Y-%m-%d %H:%M}</p>",
             '<p class="counts">' + "".join(f'<span class="{s}">{counts.get(s, 0)} {s}</span>'
                                           for s in ("done", "failed", "pending")) + "</p>"]
    failed = summary[summary["status"] == "failed"]
    parts.append(f"<h2>Failed cases ({len(failed)})</h2>")
    parts.append(_table(failed[["case", "stage", "kind", "message", "log"]], {"case": "log"}) if len(failed)
                 else "<p>None.</p>")
    noted = summary[(summary["plausibility"] != "") | (summary["warnings"] != "")]
    parts.append(f"<h2>Plausibility notes and warnings ({len(noted)})</h2>")
    parts.append(_table(noted[["case", "status", "plausibility", "warnings"]]) if len(noted) else "<p>None.</p>")
    parts.append("<h2>Time and peak memory per stage</h2>" + _table(_stage_table(summary)))
    if statistics is not None and len(statistics):
        parts.append("<h2>Label volumes over the run</h2>" + _table(_volume_table(statistics)))
        parts.append("<p>Per case and label: statistics.tsv.</p>")
    parts.append("<h2>Previews</h2>" + _previews(summary, results, thumbnails))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nnU-Net workflow report</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def write_report(summary_path, statistics_path, report_path, thumbnails_dir) -> None:
    """Write the previews' thumbnails into `thumbnails_dir` and `report.html` (atomically) beside the summary
    it is made from."""
    summary = pd.read_csv(summary_path, sep="\t", keep_default_na=False, dtype={"case": str})
    statistics = pd.read_csv(statistics_path, sep="\t") if statistics_path and Path(statistics_path).is_file() else None
    thumbnails = write_thumbnails(summary, thumbnails_dir)
    page = render_report(summary, statistics, Path(report_path).parent, thumbnails)
    with atomic_path(report_path, suffix=".html") as temp:
        temp.write_text(page, encoding="utf-8")
