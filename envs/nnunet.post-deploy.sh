#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) in the new environment of envs/nnunet.yaml, from the repository root
# (where the workflow is run): install the workflow's own package, whose code the rules call.
set -euo pipefail
python -m pip install --no-deps -e .
