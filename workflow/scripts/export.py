"""Entry point of rule export; the logic lives in the nnunet_workflow package."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (snakemake is injected)

from nnunet_workflow.rule_entry import run_export  # noqa: E402

run_export(snakemake)  # noqa: F821
