"""Faults of the machine and hostile model files, end to end: a corrupted or code-carrying model is refused
before any job (and its code never runs), one case's failed bookkeeping leaves its batch mates and the summary,
a full disk fails cases as no_space and the rerun after space is freed finishes them, and of runs started
together on one results folder exactly one proceeds."""

import os
import pickle
import shutil
import subprocess

import pytest
import torch
from e2e import assert_same_image, run_workflow
from test_failures_e2e import read_summary
from test_model_checks import Payload

from nnunet_workflow.dev.runner import REPO, snakemake_command

pytestmark = pytest.mark.slow


def model_copy(demo, tmp_path):
    """A copy of the demo model folder, in a dataset folder as nnU-Net lays it out."""
    copy = tmp_path / "models" / demo["model"].parent.name / demo["model"].name
    shutil.copytree(demo["model"], copy)
    return copy


def smallest_cases(demo, folder, count):
    """The `count` smallest demo cases copied into `folder`; their ids."""
    folder.mkdir()
    files = demo["case_files"]
    cases = sorted(files, key=lambda c: sum(os.path.getsize(p) for p in files[c]))[:count]
    for case in cases:
        for path in files[case]:
            shutil.copy(path, folder)
    return sorted(cases)


def refused(done) -> str:
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_a_truncated_checkpoint_is_refused_before_any_job(demo, two_cases, tmp_path):
    model = model_copy(demo, tmp_path)
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    output = refused(run_workflow(model, two_cases[0], tmp_path / "results", check=False))
    assert f"{checkpoint} is not a readable torch checkpoint (BadZipFile" in output
    assert "truncated or corrupted" in output
    assert not (tmp_path / "results" / "work").exists()  # nothing was validated, preprocessed or predicted


def test_a_model_carrying_code_is_refused_and_its_code_never_runs(demo, two_cases, tmp_path):
    model = model_copy(demo, tmp_path)
    marker = tmp_path / "payload_ran"
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    content = torch.load(checkpoint, weights_only=False)
    content["logging"]["note"] = Payload(marker)
    torch.save(content, checkpoint)
    output = refused(run_workflow(model, two_cases[0], tmp_path / "results", check=False))
    assert f"{checkpoint} references code outside what nnU-Net's trainers write (posix.system)" in output
    assert "trust_model_code: true" in output
    assert not marker.exists() and not (tmp_path / "results" / "work").exists()
    # a postprocessing.pkl carrying code, beside the demo's clean model
    pkl = tmp_path / "postprocessing.pkl"
    pkl.write_bytes(pickle.dumps(([Payload(marker)], [{}])))
    output = refused(run_workflow(demo["model"], two_cases[0], tmp_path / "results", check=False,
                                  postprocessing=pkl))
    assert f"{pkl} references code other than nnU-Net's postprocessing functions (posix.system)" in output
    assert not marker.exists()


def test_a_dataset_json_without_channel_names_is_named(demo, two_cases, tmp_path):
    model = model_copy(demo, tmp_path)
    dataset = (model / "dataset.json").read_text()
    (model / "dataset.json").write_text(dataset.replace('"channel_names"', '"channels"'))
    output = refused(run_workflow(model, two_cases[0], tmp_path / "results", check=False))
    assert f"{model / 'dataset.json'} has no 'channel_names', which must be the input channels by index" in output
    assert "TypeError" not in output


def test_one_cases_failed_bookkeeping_leaves_its_batch_mates_and_the_summary(demo, reference, tmp_path):
    first, second, third = smallest_cases(demo, tmp_path / "input", 3)
    results = tmp_path / "results"
    faults = f'{{"{first}": "validate:log_path", "{second}": "preprocess:record_write"}}'
    run_workflow(demo["model"], tmp_path / "input", results, batch_size=3, faults=faults)
    rows = read_summary(results)
    assert (rows[first]["status"], rows[first]["stage"], rows[first]["kind"]) == ("failed", "validate", "error")
    assert rows[first]["message"].startswith("the workflow could not keep this case's files: OSError: [Errno 36]")
    assert (rows[second]["status"], rows[second]["stage"], rows[second]["kind"]) == ("failed", "preprocess", "error")
    assert "File name too long (injected fault)" in rows[second]["message"]
    assert rows[third]["status"] == "done"
    assert_same_image(results / f"{third}.nii.gz", reference / f"{third}.nii.gz")
    assert not (results / f"{first}.nii.gz").exists() and not (results / f"{second}.nii.gz").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (a real filesystem that fills up), remountable bigger; unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_cases_as_no_space_and_the_rerun_finishes_them(demo, reference, two_cases, small_disk):
    source, cases = two_cases
    results = small_disk / "results"
    run_workflow(demo["model"], source, results)
    rows = read_summary(results)
    for case in cases:
        row = rows[case]
        assert (row["status"], row["stage"], row["kind"]) == ("failed", "preprocess", "no_space")
        assert row["message"].startswith(f"not enough space on the filesystem of {results} (")
        assert "MB free there now): preprocess writes about " in row["message"]
        assert row["message"].endswith("MB for this case; free space there (or give another results=) and run again")
        attempt = results / "work" / case / "a1"
        files = [p for p in attempt.rglob("*") if p.is_file()]
        assert {"validate.json", "preprocess.json"} <= {p.name for p in files}
        assert [p for p in files if p.suffix != ".json"] == []  # only records: no intermediate left
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    run_workflow(demo["model"], source, results)
    rows = read_summary(results)
    for case in cases:
        assert (rows[case]["status"], rows[case]["attempt"]) == ("done", "a2")
        assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")


def test_of_runs_started_together_on_one_results_folder_exactly_one_proceeds(demo, reference, two_cases, tmp_path):
    source, cases = two_cases
    results = tmp_path / "results"
    command = snakemake_command(demo["model"], source, results, cores=1)
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(3)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert codes.count(0) == 1, (codes, [o[-2000:] for o in outputs])
    winner = runs[codes.index(0)].pid
    for run, output in zip(runs, outputs):
        if run.returncode != 0:
            assert f"another run (pid {winner} on host" in output, output[-3000:]
            assert "is using this results folder" in output
    rows = read_summary(results)
    for case in cases:
        assert rows[case]["status"] == "done" and rows[case]["attempt"] == "a1"
        assert_same_image(results / f"{case}.nii.gz", reference / f"{case}.nii.gz")
    assert not (results / "work" / "run.lock").exists()
