"""report.html: built from a summary, statistics and previews, then opened in a real headless browser
(Debian's chromium): the failed cases with their reasons are on the rendered page, and the previews show."""

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nnunet_workflow.results.report import THUMBNAIL_HEIGHT, write_report
from nnunet_workflow.stages.qc_preview import PALETTE, render_preview, write_png
from nnunet_workflow.store.layout import Layout

CHROMIUM = shutil.which("chromium")


def results_folder(tmp_path) -> Layout:
    layout = Layout(tmp_path / "results")
    rows = []
    for index in range(3):
        case = f"case_{index}"
        seg = np.zeros((8, 40, 40), dtype=np.uint8)
        seg[2:6, 5:35, 5:35] = 1
        write_png(layout.preview(case), render_preview(np.full(seg.shape, 50.0, np.float32), seg, (1, 1, 1)))
        rows.append({"case": case, "status": "done", "stage": "export", "kind": "", "message": "",
                     "log": str(layout.log("export", case, "a1")), "warnings": "",
                     "plausibility": "input: channel 0000 (T1): 0.00% of its voxels ..." if index == 2 else "",
                     "preview": str(layout.preview(case)), "export_seconds": 2.0 + index, "export_peak_mb": 500})
    rows.append({"case": "broken_7", "status": "failed", "stage": "validate", "kind": "invalid_input",
                 "message": "model expects 2 channels (T1, T2); found 1 file: broken_7_0000.nii.gz",
                 "log": str(layout.log("validate", "broken_7", "a1")), "warnings": "", "plausibility": "",
                 "preview": "", "export_seconds": None, "export_peak_mb": None})
    pd.DataFrame(rows).to_csv(layout.summary(), sep="\t", index=False)
    pd.DataFrame([{"case": r["case"], "label": "sphere", "value": 1, "voxels": 3600, "volume_ml": 3.6, "border": ""}
                  for r in rows[:3]]).to_csv(layout.statistics(), sep="\t", index=False)
    return layout


def test_the_report_embeds_thumbnails_and_lists_failed_cases_first(tmp_path):
    layout = results_folder(tmp_path)
    write_report(layout.summary(), layout.statistics(), layout.report(), layout.thumbnails())
    page = layout.report().read_text()
    assert page.index("broken_7") < page.index("Time and peak memory")
    assert "found 1 file: broken_7_0000.nii.gz" in page
    assert page.count("data:image/png;base64,") == 3
    # the flagged case's preview comes first
    assert page.index('alt="preview of case_2"') < page.index('alt="preview of case_0"')
    assert sorted(p.name for p in layout.thumbnails().iterdir()) == ["case_0.png", "case_1.png", "case_2.png"]
    assert Image.open(layout.thumbnails() / "case_0.png").height == THUMBNAIL_HEIGHT


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_the_report_renders_in_a_headless_browser(tmp_path):
    layout = results_folder(tmp_path)
    write_report(layout.summary(), layout.statistics(), layout.report(), layout.thumbnails())
    shutil.rmtree(layout.thumbnails())  # self-contained: the page needs nothing beside it
    url = layout.report().resolve().as_uri()
    browser = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "broken_7" in dom.stdout and "model expects 2 channels (T1, T2)" in dom.stdout
    shot = tmp_path / "shot.png"
    done = subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,1600", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(float)
    # the label colour blended over the grey of the image: the previews were drawn
    expected = 0.55 * np.clip((50.0 - 50.0) / 1, 0, 1) * 255 + 0.45 * PALETTE[0]
    assert np.count_nonzero(np.all(np.abs(pixels - expected) < 3, axis=1)) > 500
