"""Test-only faults: each action makes the worker fail the way it says, through the wrapper around a
stage's handler; the config names them per case and stage."""

import time

import pytest

from nnunet_workflow.execution.faults import faults_for, with_faults
from nnunet_workflow.execution.worker import run_once

# every action the config may name
FAULT_ACTIONS = ("kill", "oom", "stall", "raise", "gpu_oom")


class Job:
    id = "c1"


def faulty(handle, fault):
    """The handler as the batch runner wraps it for a batch whose case c1 has `fault` (or none)."""
    return with_faults(handle, {"c1": fault} if fault else {})


def handle(state, job):
    return {"handled": True}


def test_without_a_fault_the_handler_runs():
    outcome = run_once(faulty(handle, None), Job(), timeout_s=30)
    assert outcome.ok and outcome.result == {"handled": True}


@pytest.mark.parametrize("fault, kind, message", [
    ("kill", "killed", "worker process died (signal SIGKILL)"),
    ("oom", "out_of_memory", "ran out of memory (MemoryError)"),
    ("raise", "error", "RuntimeError: injected fault"),
    ("stall", "timeout", "no result after 3 s; stopped"),
])
def test_each_fault_fails_the_task_as_it_says(tmp_path, fault, kind, message):
    log = tmp_path / "case.log"
    started = time.monotonic()
    outcome = run_once(faulty(handle, fault), Job(), timeout_s=3, log_path=str(log))
    assert (outcome.status, outcome.kind, outcome.message) == ("failed", kind, message)
    assert f"injecting fault {fault!r}" in log.read_text()
    assert time.monotonic() - started < 60


def test_faults_are_named_per_case_and_stage():
    faults = {"c1": "predict:kill", "c2": "export:stall"}
    assert faults_for(faults, "predict") == {"c1": "kill"}
    assert faults_for(faults, "export") == {"c2": "stall"}
    assert faults_for(faults, "validate") == {}


def test_the_schema_allows_every_action_and_no_other():
    import re

    import yaml

    from nnunet_workflow.dev.runner import REPO

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    pattern = schema["properties"]["faults"]["additionalProperties"]["pattern"]
    assert all(re.match(pattern, f"predict:{action}") for action in FAULT_ACTIONS)
    assert not re.match(pattern, "predict:explode") and not re.match(pattern, "summary:kill")


class Predictor:
    perform_everything_on_device = True

    def predict_logits_from_preprocessed_data(self, data):
        return "logits"


def test_a_gpu_oom_fault_fails_prediction_only_while_everything_is_on_the_device():
    from nnunet_workflow.store.failures import error_kind

    seen = []

    def handle(predictor, job):
        try:
            predictor.predict_logits_from_preprocessed_data(None)
        except Exception as error:  # noqa: BLE001
            seen.append(error_kind(error))
        predictor.perform_everything_on_device = False  # reaches the wrapped predictor
        return predictor.predict_logits_from_preprocessed_data(None)

    state = Predictor()
    assert faulty(handle, "gpu_oom")(state, Job()) == "logits"
    assert seen == ["gpu_out_of_memory"] and state.perform_everything_on_device is False
