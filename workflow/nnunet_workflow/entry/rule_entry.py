"""The bridge from Snakemake's `snakemake` object (inside `script:` jobs) to the package: one generic entry
for every stage rule, and one for the summary and the report (whose pandas a stage job does not import: every
batch job starts this module)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

from ..execution.batch import fresh_log, run_batch
from ..execution.faults import faults_for
from ..execution.gpu_slots import one_gpu_for_this_job
from ..execution.job import CaseJob, RunOptions
from ..inputs.cases import Case
from ..planning.run_setup import RunSetup
from ..results.progress import report_progress
from ..store import stage_names
from ..store.layout import Layout, member_dir, previous_stage_dir
from ..store.manifest import BatchManifest


def batch_jobs(setup: RunSetup, stage: str, cases: dict[str, dict], upstream: dict[str, BatchManifest],
               batch: str, threads: int = 1, reserved_mb: int | None = None,
               max_job_mb: int | None = None) -> dict[str, CaseJob]:
    """The CaseJob of every case of a batch. `cases`: the rule's params, {case: {"attempt": a1, "channels":
    {index: file}, "provenance": key, ...}} from the plan; `upstream`: the manifests of the earlier stages of the
    batch, by stage. An ensemble member's stage gets that member's model and folder (m1); a stage of a cascade's
    previous stage gets that model, and its configuration as the folder its files go to (3d_lowres,
    m1/3d_lowres)."""
    config, members = setup.config, setup.members
    layout = Layout(config["results"])
    chosen = setup.stages[stage]
    model, folder = setup.model, ""
    if chosen.member is not None:
        model, folder = members[chosen.member], member_dir(chosen.member)
    if chosen.previous:
        model = model.previous_stage
        folder = previous_stage_dir(folder, model.configuration)
    options = RunOptions.from_config(config, threads=threads, max_job_mb=max_job_mb)
    records = {name: manifest.records() for name, manifest in upstream.items()}

    def job(case_id: str, entry: dict) -> CaseJob:
        return CaseJob(
            Case(case_id, {int(k): v for k, v in entry["channels"].items()}), entry["attempt"], model, layout,
            options, provenance=entry["provenance"], batch=batch,
            log_path=str(layout.log(stage, case_id, entry["attempt"])), reserved_mb=reserved_mb,
            upstream={name: by_case[case_id] for name, by_case in records.items() if case_id in by_case},
            member_dir=folder, ensemble=members if len(members) > 1 else (), carried_from=entry["carried_from"],
            segmented=entry["segmented"])

    return {case_id: job(case_id, entry) for case_id, entry in cases.items()}


def run_setup(config: dict) -> RunSetup:
    """The run as the main process resolved it when the run started."""
    return RunSetup.load(Layout(config["results"]).run_setup())


def run_stage(smk) -> None:
    """Run the stage named by the rule over the batch's cases; write the batch's manifest (the rule's output)."""
    setup = run_setup(smk.config)
    stages = setup.stages
    stage = stages[stage_names.of_rule(smk.rule, smk.wildcards)]
    log = fresh_log(smk.log[0])
    upstream = {name: BatchManifest.load(smk.input[name]) for name in stages if name in smk.input.keys()}
    jobs = batch_jobs(setup, stage.name, smk.params.cases, upstream, smk.wildcards.batch, smk.threads,
                      smk.resources.mem_mb, smk.params.get("max_job_mb"))
    layout = Layout(setup.config["results"])
    claim = one_gpu_for_this_job(layout.gpu_locks(), setup.config["device"]) if stage.loads_model else nullcontext()
    with claim as gpu:
        manifest = run_batch(stage, jobs, log, smk.resources.mem_mb, faults_for(setup.config["faults"], stage.name))
    replace(manifest, gpu=gpu).save(smk.output.manifest)
    if stage.name == list(stages)[-1]:
        report_progress(layout, stage.name)


def run_summary(smk) -> None:
    from ..results.summary import brief, collect_records, write_summary  # pandas: not for the stage jobs

    fresh_log(smk.log[0])
    layout = Layout(smk.config["results"])
    records = collect_records(smk.input.manifests, smk.input.finished)
    stages = tuple(run_setup(smk.config).stages)
    table = write_summary(smk.params.attempts, records, layout, smk.output.summary, stages,
                          smk.output.get("statistics"))
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")


def run_report(smk) -> None:
    from ..results.report import write_report

    fresh_log(smk.log[0])
    write_report(smk.input.summary, smk.input.get("statistics"), smk.output.report, smk.output.thumbnails)
