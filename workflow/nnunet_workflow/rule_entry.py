"""Bridges from Snakemake's `snakemake` object (inside `script:` jobs) to the stage functions."""

from __future__ import annotations

from pathlib import Path

from .cases import Case
from .export import export_case
from .job import CaseJob
from .layout import Layout
from .model import load_model
from .predict import PredictOptions, predict_batch
from .preprocess import preprocess_case
from .provenance import provenance_key
from .records import read_json, write_json
from .summary import brief, write_summary
from .validate import validate_case


def model_from_config(config: dict):
    return load_model(config["model"], config.get("folds"), config["checkpoint"], config.get("configuration"))


def fault_for(config: dict, case: str, stage: str) -> str | None:
    """The test-only fault configured for this case and stage (`faults: {case: "stage:action"}`)."""
    wanted = config.get("faults", {}).get(case, "")
    fault_stage, _, action = wanted.partition(":")
    return action if fault_stage == stage else None


def _fresh_log(smk) -> str:
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def _case_job(smk, stage: str, model=None, **overrides) -> CaseJob:
    config = smk.config
    model = model or model_from_config(config)
    settings = dict(
        case=smk.wildcards.case, attempt=smk.wildcards.attempt, model=model, layout=Layout(config["results"]),
        provenance=provenance_key(model, config), log_path=_fresh_log(smk),
        fault=fault_for(config, smk.wildcards.case, stage), reserved_mb=smk.resources.mem_mb,
    )
    return CaseJob(**{**settings, **overrides})


def _finish(smk, record: dict) -> None:
    write_json(smk.output.record, record)
    with open(smk.log[0], "a") as log:
        log.write(f"{record['stage']} {record['case']}: {record['status']} {record.get('kind') or ''} "
                  f"{record.get('message') or ''}\n")


def run_validate(smk) -> None:
    job = _case_job(smk, "validate")
    case = Case(job.case, {int(k): v for k, v in smk.params.channels.items()})
    _finish(smk, validate_case(case, job, smk.config["save_probabilities"], smk.params.max_job_mb))


def run_preprocess(smk) -> None:
    _finish(smk, preprocess_case(_case_job(smk, "preprocess"), read_json(smk.input.validated)))


def run_predict(smk) -> None:
    """Predict a batch; also writes each case's predict record beside its other records."""
    log = _fresh_log(smk)
    config = smk.config
    model = model_from_config(config)
    layout, provenance = Layout(config["results"]), provenance_key(model, config)
    attempts = smk.params.attempts
    jobs = {
        case: CaseJob(case, attempt, model, layout, provenance, log, fault_for(config, case, "predict"),
                      smk.resources.mem_mb)
        for case, attempt in attempts.items()
    }
    preprocessed = {case: read_json(layout.record("preprocess", case, a)) for case, a in attempts.items()}
    validated = {case: read_json(layout.record("validate", case, a)) for case, a in attempts.items()}
    timeouts = {case: record.get("estimates", {}).get("predict_timeout_s") for case, record in validated.items()}
    options = PredictOptions(config["step_size"], config["tta"], config["device"], smk.threads)
    batch = predict_batch(smk.wildcards.batch, jobs, preprocessed, options, timeouts, log, smk.resources.mem_mb)
    for case, record in batch["cases"].items():
        write_json(layout.record("predict", case, attempts[case]), record)
    write_json(smk.output.record, batch)


def run_export(smk) -> None:
    job = _case_job(smk, "export")
    predicted = read_json(job.layout.record("predict", job.case, job.attempt))
    record = export_case(job, predicted, read_json(smk.input.validated), smk.config["save_probabilities"],
                         smk.config["keep_intermediates"])
    _finish(smk, record)


def run_summary(smk) -> None:
    _fresh_log(smk)
    table = write_summary(smk.params.attempts, Layout(smk.config["results"]))
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")
