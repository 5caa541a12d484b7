"""Entry point of every stage rule (validate, preprocess, predict, export and the rest); the logic is in
nnunet_workflow (entry/rule_entry)."""

from nnunet_workflow.entry.rule_entry import run_stage

run_stage(snakemake)  # noqa: F821 (snakemake is injected)
