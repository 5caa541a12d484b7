"""Entry point of rule summary; the logic is in nnunet_workflow."""

from nnunet_workflow.entry.rule_entry import run_summary

run_summary(snakemake)  # noqa: F821 (snakemake is injected)
