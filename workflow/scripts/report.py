"""Entry point of rule report; the logic is in nnunet_workflow."""

from nnunet_workflow.entry.rule_entry import run_report

run_report(snakemake)  # noqa: F821 (snakemake is injected)
