"""Entry point of the stage rules (validate, preprocess, predict, export); the logic is in nnunet_workflow."""

from nnunet_workflow.entry.rule_entry import run_stage

run_stage(snakemake)  # noqa: F821 (snakemake is injected)
