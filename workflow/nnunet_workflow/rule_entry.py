"""The bridge from Snakemake's `snakemake` object (inside `script:` jobs) to the package: one generic entry
for every stage rule, and one for the summary."""

from __future__ import annotations

from .batch import fresh_log, run_batch
from .cases import Case
from .faults import fault_for
from .job import CaseJob, RunOptions
from .layout import Layout
from .manifest import BatchManifest
from .model import load_model
from .pipeline import stage_names_for, stages_for
from .provenance import case_provenance, provenance_key
from .summary import brief, collect_records, write_summary


def model_from_config(config: dict):
    return load_model(config["model"], config.get("folds"), config["checkpoint"], config.get("configuration"),
                      config.get("previous_stage_model"))


def batch_jobs(stage: str, config: dict, cases: dict[str, dict], upstream: dict[str, BatchManifest],
               batch: str, threads: int = 1, reserved_mb: int | None = None,
               max_job_mb: int | None = None) -> dict[str, CaseJob]:
    """The CaseJob of every case of a batch. `cases`: {case: {"attempt": a1, "channels": {index: file}}};
    `upstream`: the manifests of the earlier stages of the batch, by stage. A stage of a cascade's previous
    stage gets that model, and its configuration as the member its files go to. Each case's provenance key is
    the plan's (`provenance`), else computed here."""
    run_model = model_from_config(config)
    layout, run_key = Layout(config["results"]), provenance_key(run_model, config)
    model, member = run_model, ""
    if stages_for(run_model, bool(config.get("postprocessing")))[stage].previous:
        model = run_model.previous_stage
        member = model.configuration
    options = RunOptions.from_config(config, threads=threads, max_job_mb=max_job_mb)
    records = {name: manifest.records() for name, manifest in upstream.items()}

    def job(case_id: str, entry: dict) -> CaseJob:
        case = Case(case_id, {int(k): v for k, v in entry["channels"].items()})
        provenance = entry.get("provenance") or case_provenance(run_key, case, run_model.image_reader_writer,
                                                                config.get("hash_inputs", False))
        return CaseJob(case, entry["attempt"], model, layout, options, provenance, batch,
                       str(layout.log(stage, case_id, entry["attempt"])),
                       fault_for(config.get("faults", {}), case_id, stage), reserved_mb,
                       {name: by_case[case_id] for name, by_case in records.items() if case_id in by_case}, member)

    return {case_id: job(case_id, entry) for case_id, entry in cases.items()}


def run_stage(smk) -> None:
    """Run the stage named by the rule over the batch's cases; write the batch's manifest (the rule's output)."""
    stages = stages_for(model_from_config(smk.config), bool(smk.config.get("postprocessing")))
    stage = stages[smk.rule]
    log = fresh_log(smk.log[0])
    upstream = {name: BatchManifest.load(smk.input[name]) for name in stages if name in smk.input.keys()}
    jobs = batch_jobs(stage.name, smk.config, smk.params.cases, upstream, smk.wildcards.batch, smk.threads,
                      smk.resources.mem_mb, smk.params.get("max_job_mb"))
    run_batch(stage, jobs, log, smk.resources.mem_mb).save(smk.output.manifest)


def run_summary(smk) -> None:
    fresh_log(smk.log[0])
    layout = Layout(smk.config["results"])
    records = collect_records(smk.input.manifests, smk.input.finished)
    stages = stage_names_for(model_from_config(smk.config), bool(smk.config.get("postprocessing")))
    table = write_summary(smk.params.attempts, records, layout, smk.output.summary, stages)
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")
