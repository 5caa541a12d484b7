"""End to end on the demo: the workflow's segmentations equal nnUNetv2_predict's, voxel for voxel."""

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from e2e import BIN, REPO, assert_same_image, run_nnunet_predict, run_workflow

from nnunet_workflow.dev.demo_report import dice_table
from nnunet_workflow.store.layout import Layout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(demo, tmp_path_factory):
    """The workflow with default options and batches of 4 (and no --resources: a derived budget)."""
    root = tmp_path_factory.mktemp("default")
    done = run_workflow(demo["model"], demo["input"], root / "results", batch_size=4)
    (root / "stderr.txt").write_text(done.stderr)
    return root


def test_every_segmentation_equals_nnunetv2_predict(demo, default_run, reference):
    references = sorted(reference.glob("*.nii.gz"))
    assert len(references) == len(demo["cases"])
    for path in references:
        assert_same_image(default_run / "results" / path.name, path)
    # the memory-bounded streaming export made them (demo_005 takes its separate-z path)
    exports = [json.loads(p.read_text()) for p in (default_run / "results" / "work").glob("*/a1/export.json")]
    assert len(exports) == len(demo["cases"])
    assert {e["export_method"] for e in exports} == {"streaming"}


def test_summary_lists_every_case_done_with_times_and_memory(demo, default_run):
    summary = pd.read_csv(default_run / "results" / "summary.tsv", sep="\t", keep_default_na=False)
    assert sorted(summary["case"]) == sorted(demo["cases"])
    assert set(summary["status"]) == {"done"} and set(summary["stage"]) == {"export"}
    for stage in ("validate", "preprocess", "predict", "export"):
        assert (summary[f"{stage}_seconds"].astype(float) > 0).all()
        assert (summary[f"{stage}_peak_mb"].astype(float) > 0).all()
    for row in summary.itertuples():
        assert Path(row.output) == default_run / "results" / f"{row.case}.nii.gz"
        assert Path(row.log).is_file()


def test_model_is_loaded_once_per_batch(demo, default_run):
    layout = Layout(default_run / "results")
    records = [json.loads(p.read_text()) for p in sorted((layout.results / "work" / "batches").glob("*.predict.json"))]
    assert sorted(len(r["cases"]) for r in records) == [len(demo["cases"]) - 4, 4]
    assert [r["model_loads"] for r in records] == [1, 1]
    logs = [layout.log("predict", r["batch"]).read_text() for r in records]
    assert [log.count("model loaded from") for log in logs] == [1, 1]


def test_every_stage_runs_one_job_and_one_worker_per_batch(demo, default_run):
    """validate, preprocess and export serve a whole batch in one job: nnU-Net is imported once per batch,
    and each case still has its own record and log."""
    layout = Layout(default_run / "results")
    for stage in ("validate", "preprocess", "export"):
        records = [json.loads(p.read_text()) for p in (layout.results / "work" / "batches").glob(f"*.{stage}.json")]
        assert sorted(len(r["cases"]) for r in records) == [len(demo["cases"]) - 4, 4]
        assert [r["worker_starts"] for r in records] == [1, 1]
        for case in demo["cases"]:
            assert layout.record(stage, case, "a1").is_file() and layout.log(stage, case, "a1").is_file()


def test_intermediates_are_removed_after_export(default_run):
    assert not list((default_run / "results" / "work").rglob("*.npy"))


def test_demo_dice_is_at_least_0_9(demo, default_run):
    table = dice_table(default_run / "results", demo["truth"])
    assert len(table) == len(demo["cases"])
    assert table["dice"].min() >= 0.9, table


def test_dry_run_of_a_finished_run_has_nothing_to_do(demo, default_run):
    done = run_workflow(demo["model"], demo["input"], default_run / "results", "-n", batch_size=4)
    assert "Nothing to be done" in done.stdout + done.stderr


def test_sample_sheet_odd_ids_and_options_match_nnunet(demo, tmp_path):
    """A sample sheet with ids holding spaces, dots and unicode; save_probabilities, tta=false and
    step_size map to nnUNetv2_predict's --save_probabilities, --disable_tta and -step_size."""
    chosen = {"subject 1": sorted(demo["cases"])[0], "sub.02": sorted(demo["cases"])[1],
              "sujet-é3": demo["anisotropic_case"]}
    reference_input = tmp_path / "reference_input"
    reference_input.mkdir()
    lines = ["case\tT1\tT2"]
    for our_id, demo_id in chosen.items():
        files = demo["case_files"][demo_id]
        lines.append("\t".join([our_id, *files]))
        for path in files:
            shutil.copy(path, reference_input)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_workflow(demo["model"], sheet, tmp_path / "results", save_probabilities="true", tta="false", step_size=0.75)
    run_nnunet_predict(demo["model"], reference_input, tmp_path / "reference", "--save_probabilities",
                       "--disable_tta", "-step_size", "0.75")
    for our_id, demo_id in chosen.items():
        assert_same_image(tmp_path / "results" / f"{our_id}.nii.gz", tmp_path / "reference" / f"{demo_id}.nii.gz")
        ours = np.load(tmp_path / "results" / f"{our_id}.npz")["probabilities"]
        reference = np.load(tmp_path / "reference" / f"{demo_id}.npz")["probabilities"]
        assert ours.dtype == reference.dtype and np.array_equal(ours, reference)
        assert (tmp_path / "results" / f"{our_id}.pkl").is_file()
    # the probabilities of the two isotropic cases were streamed (streaming_probabilities), yet are nnU-Net's
    methods = {our_id: json.loads((tmp_path / "results" / "work" / our_id / "a1" / "export.json").read_text())
               ["export_method"] for our_id in chosen}
    assert methods["subject 1"] == methods["sub.02"] == "streaming", methods


def test_the_derived_budget_is_printed_and_bounds_every_reservation(demo, default_run):
    """Without --resources mem_mb=, the run prints the budget it derived; that budget is the largest job
    of its plan, and no case's reservation in any stage exceeds it."""
    budget = re.search(r"mem_mb budget: (\d+) MB", (default_run / "stderr.txt").read_text())
    assert budget, "no derived budget printed"
    plan = json.loads((default_run / "results" / "work" / "plan.json").read_text())
    assert plan["max_job_mem_mb"] == int(budget[1])
    records = (default_run / "results" / "work").glob("*/a1/*.json")
    reserved = [json.loads(path.read_text())["reserved_mb"] for path in records]
    assert len(reserved) == 5 * len(demo["cases"]) and all(0 < r <= int(budget[1]) for r in reserved)


def test_dry_run_writes_nothing(demo, tmp_path):
    results = tmp_path / "results"
    done = run_workflow(demo["model"], demo["input"], results, "-n")
    assert "validate" in done.stdout and not results.exists()
    assert "mem_mb budget" in done.stderr  # derived, as no --resources mem_mb= was given
    given = run_workflow(demo["model"], demo["input"], results, "-n", "--resources", "mem_mb=5000")
    assert "mem_mb budget" not in given.stderr and not results.exists()


def test_lint_and_format_are_clean(demo, tmp_path):
    lint = run_workflow(demo["model"], demo["input"], tmp_path / "results", "--lint", check=False)
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_a_sample_sheet_naming_a_missing_file_fails_that_case_only(demo, reference, tmp_path):
    sheet = tmp_path / "samples.tsv"
    case = demo["cases"][0]
    images = {channel: demo["input"] / f"{case}_{channel:04d}.nii.gz" for channel in (0, 1)}
    sheet.write_text(f"case\tT1\tT2\nok\t{images[0]}\t{images[1]}\n"
                     f"ghost\t{tmp_path / 'gone_0000.nii.gz'}\t{images[1]}\n")
    run_workflow(demo["model"], sheet, tmp_path / "results")
    rows = pd.read_csv(tmp_path / "results" / "summary.tsv", sep="\t", keep_default_na=False).set_index("case")
    assert (rows.loc["ghost", "status"], rows.loc["ghost", "stage"], rows.loc["ghost", "kind"]) == \
        ("failed", "validate", "invalid_input")
    assert rows.loc["ghost", "message"] == f"{tmp_path / 'gone_0000.nii.gz'}: file does not exist"
    assert rows.loc["ok", "status"] == "done"
    assert_same_image(tmp_path / "results" / "ok.nii.gz", reference / f"{case}.nii.gz")
    assert not (tmp_path / "results" / "ghost.nii.gz").exists()


def test_nnunet_postprocessing_runs_on_the_results_folder_as_on_nnunet_output(demo, default_run, reference, tmp_path):
    """The results folder holds what nnUNetv2_predict leaves beside its segmentations (dataset.json,
    plans.json, predict_from_raw_data_args.json), so nnUNetv2_apply_postprocessing works on it; a
    postprocessing.pkl made of nnU-Net's own function gives the same files on both folders."""
    import pickle

    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    pkl = tmp_path / "postprocessing.pkl"
    functions = [remove_all_but_largest_component_from_segmentation]
    pkl.write_bytes(pickle.dumps((functions, [{"labels_or_regions": [1, 2]}])))
    for name, folder in (("ours", default_run / "results"), ("reference", reference)):
        command = [str(BIN / "nnUNetv2_apply_postprocessing"), "-i", str(folder), "-o", str(tmp_path / name),
                   "-pp_pkl_file", str(pkl), "-np", "1"]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "ours").glob("*.nii.gz"))
    assert written == [f"{c}.nii.gz" for c in sorted(demo["cases"])]
    for case in demo["cases"]:
        assert_same_image(tmp_path / "ours" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
    arguments = json.loads((default_run / "results" / "predict_from_raw_data_args.json").read_text())
    assert arguments["output_folder_or_list_of_truncated_output_files"] == str(default_run / "results")


def test_nan_voxels_the_reader_hides_are_warned_about_and_the_case_matches_nnunet(demo, tmp_path):
    """NaN voxels in a NIfTI channel: SimpleITK (the demo plans' reader) reads them as 0, as nnU-Net will;
    validate counts them from the raw data and warns, and the segmentation equals nnUNetv2_predict's."""
    import nibabel

    case = sorted(demo["case_files"], key=lambda c: sum(os.path.getsize(p) for p in demo["case_files"][c]))[0]
    source = tmp_path / "input"
    source.mkdir()
    first, second = demo["case_files"][case]
    shutil.copy(second, source)
    original = nibabel.load(first)
    data = np.asanyarray(original.dataobj).astype(np.float32)
    data[:2, :3, :4] = np.nan
    header = original.header.copy()
    header.set_data_dtype(np.float32)
    nibabel.save(nibabel.Nifti1Image(data, original.affine, header), str(source / os.path.basename(first)))
    run_workflow(demo["model"], source, tmp_path / "results")
    run_nnunet_predict(demo["model"], source, tmp_path / "reference")
    assert_same_image(tmp_path / "results" / f"{case}.nii.gz", tmp_path / "reference" / f"{case}.nii.gz")
    row = pd.read_csv(tmp_path / "results" / "summary.tsv", sep="\t", keep_default_na=False).iloc[0]
    assert row["status"] == "done"
    assert f"{os.path.basename(first)}: 24 voxels are NaN or infinite in the file" in row["warnings"]


def test_a_changed_input_file_recomputes_that_case_only(demo, reference, tmp_path):
    """A case's provenance includes its input files (size and mtime): after one channel file of one case is
    replaced, a rerun recomputes that case in a new attempt and touches nothing of the other; the summary
    names each output's provenance file, which lists the sha256 of the checkpoint the run used."""
    sizes = {case: sum(os.path.getsize(f) for f in files) for case, files in demo["case_files"].items()}
    changed, kept = sorted(sizes, key=sizes.get)[:2]
    source = tmp_path / "input"
    source.mkdir()
    for case in (changed, kept):
        for path in demo["case_files"][case]:
            shutil.copy(path, source)
    results = tmp_path / "results"
    run_workflow(demo["model"], source, results)
    kept_mtime = (results / f"{kept}.nii.gz").stat().st_mtime_ns
    # a corrected scan written over the old one (here with the same voxels, so the result can be compared
    # with nnU-Net's; its mtime is new)
    replaced = source / f"{changed}_0001.nii.gz"
    replaced.write_bytes(replaced.read_bytes())
    os.utime(replaced, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns + 10**9))
    run_workflow(demo["model"], source, results)
    summary = pd.read_csv(results / "summary.tsv", sep="\t").set_index("case")
    assert summary.loc[changed, "attempt"] == "a2" and summary.loc[kept, "attempt"] == "a1"
    assert (summary["status"] == "done").all()
    assert (results / f"{kept}.nii.gz").stat().st_mtime_ns == kept_mtime
    assert_same_image(results / f"{changed}.nii.gz", reference / f"{changed}.nii.gz")
    provenance = json.loads(Path(summary.loc[changed, "provenance"]).read_text())
    assert summary.loc[changed, "provenance"] == summary.loc[kept, "provenance"]  # the same model and options
    checkpoint = demo["model"] / "fold_0" / "checkpoint_final.pth"
    assert provenance["files_sha256"][str(checkpoint)] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_statistics_previews_and_report_of_every_case(demo, default_run):
    results = default_run / "results"
    statistics = pd.read_csv(results / "statistics.tsv", sep="\t")
    assert sorted(statistics["case"].unique()) == sorted(demo["cases"])
    assert set(statistics["label"]) == {"sphere", "box"} and (statistics["voxels"] > 0).all()
    summary = pd.read_csv(results / "summary.tsv", sep="\t", keep_default_na=False)
    assert set(summary["statistics"]) == {"done"}
    assert all((results / "qc" / f"{case}.png").is_file() for case in demo["cases"])
    page = (results / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(demo["cases"])
    progress = (results / "progress.txt").read_text()
    assert f"{len(demo['cases'])} of {len(demo['cases'])} cases through: {len(demo['cases'])} done" in progress


def test_snakemake_report_holds_the_summary_statistics_and_previews(demo, default_run, tmp_path):
    import zipfile

    archive = tmp_path / "report.zip"
    run_workflow(demo["model"], demo["input"], default_run / "results", "--report", archive, batch_size=4)
    names = zipfile.ZipFile(archive).namelist()
    for name in ("summary.tsv", "statistics.tsv", "report.html", *(f"{case}.png" for case in demo["cases"])):
        assert any(n.endswith(name) for n in names), name
