# Config, model, cases and batches: read once at parse time (read-only), used by every rule.
import sys

import yaml

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from nnunet_workflow.cases import discover_cases
from nnunet_workflow.layout import Layout
from nnunet_workflow.model import load_model
from nnunet_workflow.plan import input_bytes, plan_batches
from nnunet_workflow import memory
from nnunet_workflow.records import read_json
from nnunet_workflow.settings import coerce_config
from nnunet_workflow.summary import print_brief

SCHEMA_PATH = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_config(config, yaml.safe_load(SCHEMA_PATH.read_text()))
validate(config, schema=str(SCHEMA_PATH))

MODEL = load_model(
    config["model"], config["folds"], config["checkpoint"], config["configuration"]
)
CASES = discover_cases(config["input"], MODEL.channel_names)
BATCHES = plan_batches(CASES, config["batch_size"])
BATCH_OF = {case: batch for batch, cases in BATCHES.items() for case in cases}
LAYOUT = Layout(config["results"])


wildcard_constraints:
    case="[^/]+",
    batch="batch_[0-9]+",


def case_channels(wildcards):
    """Channel files of a case by channel index."""
    return CASES[wildcards.case].channels


def estimate(stage, key):
    """A resource function reading a case's estimate from its validate record (known once it ran)."""

    def from_record(wildcards, input):
        record = read_json(input.validated)
        return record.get("estimates", {}).get(f"{stage}_{key}", memory.NNUNET_BASE_MB)

    return from_record


def batch_records(stage):
    """Input function: the `stage` records of every case of a batch."""

    def records(wildcards):
        return [str(LAYOUT.record(stage, case)) for case in BATCHES[wildcards.batch]]

    return records


def batch_memory_mb(wildcards, input):
    return memory.batch_memory_mb(
        read_json(path).get("estimates", {}).get("predict_mb", memory.NNUNET_BASE_MB)
        for path in input.validated
    )


def case_batch_record(wildcards):
    return str(LAYOUT.batch_record(BATCH_OF[wildcards.case]))


def validate_memory_mb(wildcards):
    return memory.validate_memory_mb(input_bytes(CASES[wildcards.case]))


def predict_gpus():
    """Predict jobs claim a GPU unless the device is the CPU."""
    return 0 if config["device"] == "cpu" else 1
