"""Failures are data: a bad case and a killed batch mate do not stop the others; a rerun redoes only
them; a SIGKILL of the whole run is recovered by running the same command again."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from e2e import BIN, REPO, assert_same_image, four_cases_and_a_bad_one, run_workflow

pytestmark = pytest.mark.slow


def read_summary(results):
    return {row["case"]: row for row in pd.read_csv(results / "summary.tsv", sep="\t",
                                                    keep_default_na=False).to_dict("records")}


def descendants(pid: int) -> set[int]:
    """The processes below `pid` now (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def snapshot(paths):
    """Bytes and mtime of files: what a rerun must not touch."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def four_and_a_bad_one(demo, tmp_path_factory):
    """Input: the four smallest demo cases (one predict batch) and a case missing its second channel."""
    source = tmp_path_factory.mktemp("input")
    cases, victim = four_cases_and_a_bad_one(demo, source)
    return source, cases, victim


@pytest.fixture(scope="module")
def failed_run(demo, four_and_a_bad_one, tmp_path_factory):
    source, cases, victim = four_and_a_bad_one
    results = tmp_path_factory.mktemp("failing") / "results"
    run_workflow(demo["model"], source, results, batch_size=4, faults=f'{{"{victim}": "predict:kill"}}')
    return results


def test_invalid_case_and_killed_batch_mate_do_not_stop_the_others(demo, reference, four_and_a_bad_one, failed_run):
    _, cases, victim = four_and_a_bad_one
    rows = read_summary(failed_run)
    assert sorted(rows) == sorted(cases + ["bad"])
    bad = rows["bad"]
    assert (bad["status"], bad["stage"], bad["kind"]) == ("failed", "validate", "invalid_input")
    assert bad["message"] == "model expects 2 channels (T1, T2); found 1 file: bad_0000.nii.gz (missing channel 0001)"
    assert "Traceback" not in bad["message"] and "Traceback" in open(bad["log"]).read()
    killed = rows[victim]
    assert (killed["status"], killed["stage"], killed["kind"]) == ("failed", "predict", "killed")
    assert "SIGKILL" in killed["message"] and float(killed["predict_peak_mb"]) > 0
    for case in cases:
        if case != victim:
            assert rows[case]["status"] == "done"
            assert_same_image(failed_run / f"{case}.nii.gz", reference / f"{case}.nii.gz")
    assert not (failed_run / f"{victim}.nii.gz").exists() and not (failed_run / "bad.nii.gz").exists()
    batch = pd.read_json(failed_run / "work" / "batches" / f"{killed['batch']}.predict.json", typ="series")
    assert len(batch["cases"]) == 4 and batch["model_loads"] == 2  # the worker was restarted once


def test_rerun_recomputes_only_the_failed_cases(demo, reference, four_and_a_bad_one, failed_run):
    source, cases, victim = four_and_a_bad_one
    finished = [c for c in cases if c != victim]
    untouched = [failed_run / f"{c}.nii.gz" for c in finished]
    untouched += [p for c in finished for p in (failed_run / "work" / c).rglob("*") if p.is_file()]
    before = snapshot(untouched)
    everything = snapshot(p for p in failed_run.rglob("*") if p.is_file())
    run_workflow(demo["model"], source, failed_run, "-n", batch_size=4)
    assert snapshot(p for p in failed_run.rglob("*") if p.is_file()) == everything  # a dry run writes nothing
    run_workflow(demo["model"], source, failed_run, batch_size=4)
    assert snapshot(untouched) == before
    assert all(sorted(p.name for p in (failed_run / "work" / c).iterdir()) == ["a1"] for c in finished)
    rows = read_summary(failed_run)
    assert (rows[victim]["status"], rows[victim]["attempt"]) == ("done", "a2")
    assert_same_image(failed_run / f"{victim}.nii.gz", reference / f"{victim}.nii.gz")
    assert (rows["bad"]["status"], rows["bad"]["stage"], rows["bad"]["attempt"]) == ("failed", "validate", "a2")
    first = pd.read_json(failed_run / "work" / victim / "a1" / "predict.json", typ="series")
    retry = pd.read_json(failed_run / "work" / victim / "a2" / "predict.json", typ="series")
    assert retry["reserved_mb"] >= 1.5 * max(first["reserved_mb"], first["peak_rss_mb"]) - 1
    done_victim = snapshot([failed_run / f"{victim}.nii.gz"])
    run_workflow(demo["model"], source, failed_run, batch_size=4)  # only the still-invalid case runs again
    assert snapshot(untouched) == before and snapshot([failed_run / f"{victim}.nii.gz"]) == done_victim
    assert read_summary(failed_run)["bad"]["attempt"] == "a3"


def test_sigkill_of_the_whole_run_then_the_same_command_finishes(demo, reference, tmp_path):
    """The last case's export hangs (a test fault), so the kill lands while that batch is midway."""
    results = tmp_path / "results"
    last = demo["cases"][-1]
    command = [str(BIN / "snakemake"), "--cores", "2", "--config", f"model={demo['model']}",
               f"input={demo['input']}", f"results={results}", f'faults={{"{last}": "export:stall"}}']
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    stalled = results / "logs" / "export" / f"{last}.a1.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None and (
            not stalled.exists() or "injecting fault 'stall'" not in stalled.read_text()):
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before the stalled export"
    processes = descendants(run.pid)  # Snakemake's job processes and their stage workers
    assert processes, "the run has no job running"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in processes):
        time.sleep(0.2)
    assert not [p for p in processes if alive(p)], "processes of the killed run live on"
    finished_before = [results / f"{c}.nii.gz" for c in demo["cases"] if (results / f"{c}.nii.gz").exists()]
    assert len(finished_before) < len(demo["cases"]) and not (results / f"{last}.nii.gz").exists()
    predicted = [results / "work" / last / "a1" / f"{stage}.json" for stage in ("preprocess", "predict")]
    kept = snapshot(finished_before + predicted)
    run_workflow(demo["model"], demo["input"], results)
    # outputs finished before the kill are not rewritten; the stalled case is not predicted again
    assert snapshot(finished_before + predicted) == kept
    for case in demo["cases"]:
        assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")
    assert sorted(p.name for p in results.iterdir()) == sorted(
        [f"{c}.nii.gz" for c in demo["cases"]]
        + ["dataset.json", "logs", "plans.json", "predict_from_raw_data_args.json", "progress.txt", "provenance",
           "qc", "report", "report.html", "statistics.tsv", "summary.tsv", "work"])
    assert not list(results.rglob(".*.part*"))
    assert {row["status"] for row in read_summary(results).values()} == {"done"}
