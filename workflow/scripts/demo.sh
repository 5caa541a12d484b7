#!/usr/bin/env bash
# Set up .venv, build (or reuse) the demo model and cases in .demo/, run the workflow on them,
# and report Dice against the synthetic ground truth. Extra arguments go to snakemake.
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
python -m nnunet_workflow.dev.demo_model --cache .demo
snakemake --cores "$(nproc)" "$@"
python -m nnunet_workflow.dev.demo_report --results results/demo --truth .demo/demo_truth
