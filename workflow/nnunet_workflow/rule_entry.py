"""Bridges from Snakemake's `snakemake` object (inside `script:` jobs) to the stage functions."""

from __future__ import annotations

from .batch import fresh_log
from .cases import Case
from .export import export_batch
from .job import CaseJob
from .layout import Layout
from .model import load_model
from .predict import PredictOptions, predict_batch
from .preprocess import preprocess_batch
from .provenance import provenance_key
from .records import read_json, write_json
from .summary import brief, write_summary
from .validate import validate_batch


def model_from_config(config: dict):
    return load_model(config["model"], config.get("folds"), config["checkpoint"], config.get("configuration"))


def fault_for(config: dict, case: str, stage: str) -> str | None:
    """The test-only fault configured for this case and stage (`faults: {case: "stage:action"}`)."""
    wanted = config.get("faults", {}).get(case, "")
    fault_stage, _, action = wanted.partition(":")
    return action if fault_stage == stage else None


def _fresh_log(smk) -> str:
    return fresh_log(smk.log[0])


def _batch_jobs(smk, stage: str, model) -> dict[str, CaseJob]:
    """The CaseJob of every case of the batch, each with its own log file."""
    config = smk.config
    layout, provenance = Layout(config["results"]), provenance_key(model, config)
    return {
        case: CaseJob(case, attempt, model, layout, provenance, str(layout.log(stage, case, attempt)),
                      fault_for(config, case, stage), smk.resources.mem_mb)
        for case, attempt in smk.params.attempts.items()
    }


def _cases_of(path) -> dict[str, dict]:
    """The case records held by a batch record."""
    return read_json(path)["cases"]


def _finish_batch(smk, record: dict) -> None:
    """Write the batch record (the rule's output; each case's own record is written as it finishes)."""
    write_json(smk.output.record, {**record, "batch": smk.wildcards.batch})
    with open(smk.log[0], "a") as log:
        for case, case_record in record["cases"].items():
            log.write(f"{record['stage']} {case}: {case_record['status']} {case_record.get('kind') or ''} "
                      f"{case_record.get('message') or ''}\n")


def run_validate(smk) -> None:
    log = _fresh_log(smk)
    model = model_from_config(smk.config)
    jobs = _batch_jobs(smk, "validate", model)
    cases = {case: Case(case, {int(k): v for k, v in smk.params.channels[case].items()}) for case in jobs}
    _finish_batch(smk, validate_batch(cases, jobs, smk.config["save_probabilities"], smk.params.max_job_mb,
                                      log, smk.resources.mem_mb))


def run_preprocess(smk) -> None:
    log = _fresh_log(smk)
    jobs = _batch_jobs(smk, "preprocess", model_from_config(smk.config))
    _finish_batch(smk, preprocess_batch(jobs, _cases_of(smk.input.validated), log, smk.resources.mem_mb))


def run_predict(smk) -> None:
    """Predict a batch with one model load."""
    log = _fresh_log(smk)
    config = smk.config
    jobs = _batch_jobs(smk, "predict", model_from_config(config))
    validated = _cases_of(smk.input.validated)
    timeouts = {case: record.get("estimates", {}).get("predict_timeout_s") for case, record in validated.items()}
    options = PredictOptions(config["step_size"], config["tta"], config["device"], smk.threads)
    _finish_batch(smk, predict_batch(smk.wildcards.batch, jobs, _cases_of(smk.input.preprocessed), options,
                                     timeouts, log, smk.resources.mem_mb))


def run_export(smk) -> None:
    log = _fresh_log(smk)
    config = smk.config
    jobs = _batch_jobs(smk, "export", model_from_config(config))
    _finish_batch(smk, export_batch(jobs, _cases_of(smk.input.predicted), _cases_of(smk.input.validated),
                                    config["save_probabilities"], config["keep_intermediates"], log,
                                    smk.resources.mem_mb))


def run_summary(smk) -> None:
    _fresh_log(smk)
    table = write_summary(smk.params.attempts, Layout(smk.config["results"]))
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")
