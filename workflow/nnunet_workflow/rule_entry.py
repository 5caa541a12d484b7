"""Bridges from Snakemake's `snakemake` object (inside `script:` jobs) to the stage functions."""

from __future__ import annotations

from pathlib import Path

from .cases import Case
from .export import export_case
from .layout import Layout
from .model import load_model
from .predict import PredictOptions, predict_batch
from .preprocess import preprocess_case
from .records import read_json, write_json
from .summary import brief, write_summary
from .validate import validate_case


def model_from_config(config: dict):
    return load_model(config["model"], config.get("folds"), config["checkpoint"], config.get("configuration"))


def _log_path(smk) -> str:
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def _finish(smk, record: dict) -> None:
    write_json(smk.output.record, record)
    with open(smk.log[0], "a") as log:
        log.write(f"{record['stage']} {record.get('case', record.get('batch'))}: {record.get('status', 'done')} "
                  f"{record.get('kind') or ''} {record.get('message') or ''}\n")


def run_validate(smk) -> None:
    log = _log_path(smk)
    model = model_from_config(smk.config)
    case = Case(smk.wildcards.case, {int(k): v for k, v in smk.params.channels.items()})
    _finish(smk, validate_case(case, model, smk.config["save_probabilities"], log))


def run_preprocess(smk) -> None:
    log = _log_path(smk)
    model = model_from_config(smk.config)
    validated = read_json(smk.input.validated)
    _finish(smk, preprocess_case(smk.wildcards.case, validated, model, Layout(smk.config["results"]), log))


def run_predict(smk) -> None:
    log = _log_path(smk)
    config = smk.config
    model = model_from_config(config)
    preprocessed = {record["case"]: record for record in map(read_json, smk.input.preprocessed)}
    timeouts = {
        record["case"]: record.get("estimates", {}).get("predict_timeout_s")
        for record in map(read_json, smk.input.validated)
    }
    options = PredictOptions(config["step_size"], config["tta"], config["device"], smk.threads)
    record = predict_batch(smk.wildcards.batch, preprocessed, model, options, Layout(config["results"]), timeouts, log)
    write_json(smk.output.record, record)


def run_export(smk) -> None:
    log = _log_path(smk)
    config = smk.config
    case = smk.wildcards.case
    predicted = read_json(smk.input.batch)["cases"][case]
    validated = read_json(smk.input.validated)
    record = export_case(
        case, predicted, validated, model_from_config(config), Layout(config["results"]),
        config["save_probabilities"], config["keep_intermediates"], log,
    )
    _finish(smk, record)


def run_summary(smk) -> None:
    _log_path(smk)
    table = write_summary(smk.params.batches, Layout(smk.config["results"]))
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")
