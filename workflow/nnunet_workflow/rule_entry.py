"""The bridge from Snakemake's `snakemake` object (inside `script:` jobs) to the package: one generic entry
for every stage rule, and one for the summary and the report (whose pandas a stage job does not import: every
batch job starts this module)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

from .batch import fresh_log, run_batch
from .cases import Case
from .faults import fault_for
from .gpu_slots import one_gpu_for_this_job
from .job import CaseJob, RunOptions
from .layout import Layout, member_dir, previous_stage_dir
from .manifest import BatchManifest
from .model import load_members
from .pipeline import stages_for
from .progress import report_progress
from .provenance import case_provenance, provenance_key
from .recommended import apply_recommended
from .stage import member_stage

# An ensemble member's stages run through rules `member_preprocess`, `member_predict`, `member_export` (and a
# cascade member's previous stage through `member_prev_preprocess`, ...) with the wildcard `member` (the index
# of the member in `model`).
MEMBER_RULE_PREFIX = "member_"


def members_from_config(config: dict):
    """The run's model, or an ensemble's members (the first one stands for the run where one is needed)."""
    return load_members(config["model"], config.get("folds"), config["checkpoint"], config.get("configuration"),
                        config.get("previous_stage_model"))


def run_stages(config: dict, members) -> dict:
    return stages_for(members, bool(config.get("postprocessing")), config.get("statistics", False),
                      config.get("dicom_seg", False))


def stage_of_rule(rule: str, wildcards) -> str:
    """The stage a rule runs: its name, or for an ensemble member's rule (member_predict, member_prev_predict)
    m{member}_predict, m{member}_prev_predict."""
    if rule.startswith(MEMBER_RULE_PREFIX):
        return member_stage(int(wildcards.member), rule[len(MEMBER_RULE_PREFIX):])
    return rule


def batch_jobs(stage: str, config: dict, cases: dict[str, dict], upstream: dict[str, BatchManifest],
               batch: str, threads: int = 1, reserved_mb: int | None = None,
               max_job_mb: int | None = None, members=None) -> dict[str, CaseJob]:
    """The CaseJob of every case of a batch. `cases`: {case: {"attempt": a1, "channels": {index: file}}};
    `upstream`: the manifests of the earlier stages of the batch, by stage. An ensemble member's stage gets that
    member's model and folder (m1); a stage of a cascade's previous stage gets that model, and its
    configuration as the folder its files go to (3d_lowres, m1/3d_lowres). Each case's provenance key is
    the plan's (`provenance`), else computed here. `members`: the run's models, if already loaded."""
    members = members or members_from_config(config)
    run_model = members[0]
    layout = Layout(config["results"])
    model, member, ensemble = run_model, "", members if len(members) > 1 else ()
    chosen = run_stages(config, members)[stage]
    if chosen.member is not None:
        model = members[chosen.member]
        member = member_dir(chosen.member)
    if chosen.previous:
        model = model.previous_stage
        member = previous_stage_dir(member, model.configuration)
    options = RunOptions.from_config(config, threads=threads, max_job_mb=max_job_mb)
    records = {name: manifest.records() for name, manifest in upstream.items()}

    def job(case_id: str, entry: dict) -> CaseJob:
        case = Case(case_id, {int(k): v for k, v in entry["channels"].items()})
        provenance = entry.get("provenance") or case_provenance(
            provenance_key(members, config), case, run_model.image_reader_writer, config.get("hash_inputs", False))
        return CaseJob(case, entry["attempt"], model, layout, options, provenance, batch,
                       str(layout.log(stage, case_id, entry["attempt"])),
                       fault_for(config.get("faults", {}), case_id, stage), reserved_mb,
                       {name: by_case[case_id] for name, by_case in records.items() if case_id in by_case}, member,
                       ensemble, entry.get("carried_from"), entry.get("segmented", False))

    return {case_id: job(case_id, entry) for case_id, entry in cases.items()}


def resolved_config(config: dict) -> dict:
    """The job's config with a dataset folder's recommended setup in place (as the Snakefile resolves it)."""
    config = dict(config)
    apply_recommended(config)
    return config


def run_stage(smk) -> None:
    """Run the stage named by the rule over the batch's cases; write the batch's manifest (the rule's output)."""
    config = resolved_config(smk.config)
    members = members_from_config(config)
    stages = run_stages(config, members)
    stage = stages[stage_of_rule(smk.rule, smk.wildcards)]
    log = fresh_log(smk.log[0])
    upstream = {name: BatchManifest.load(smk.input[name]) for name in stages if name in smk.input.keys()}
    jobs = batch_jobs(stage.name, config, smk.params.cases, upstream, smk.wildcards.batch, smk.threads,
                      smk.resources.mem_mb, smk.params.get("max_job_mb"), members)
    layout = Layout(config["results"])
    claim = one_gpu_for_this_job(layout.gpu_locks(), config["device"]) if stage.loads_model else nullcontext()
    with claim as gpu:
        manifest = run_batch(stage, jobs, log, smk.resources.mem_mb)
    replace(manifest, gpu=gpu).save(smk.output.manifest)
    if stage.name == list(stages)[-1]:
        report_progress(layout, stage.name)


def run_summary(smk) -> None:
    from .summary import brief, collect_records, write_summary  # pandas: not for the stage jobs

    fresh_log(smk.log[0])
    layout = Layout(smk.config["results"])
    records = collect_records(smk.input.manifests, smk.input.finished)
    config = resolved_config(smk.config)
    stages = tuple(run_stages(config, members_from_config(config)))
    table = write_summary(smk.params.attempts, records, layout, smk.output.summary, stages,
                          smk.output.get("statistics"))
    with open(smk.log[0], "a") as log:
        log.write(brief(table, smk.output.summary) + "\n")


def run_report(smk) -> None:
    from .report import write_report

    fresh_log(smk.log[0])
    write_report(smk.input.summary, smk.input.get("statistics"), smk.output.report, smk.output.thumbnails)
