"""The stages every case goes through, in order: the one list that the rules' entry point, the plan, the
summary and the resource policy share. A new per-case stage is one line here."""

from __future__ import annotations

from .export import EXPORT
from .predict import PREDICT
from .preprocess import PREPROCESS
from .validate import VALIDATE

PIPELINE = (VALIDATE, PREPROCESS, PREDICT, EXPORT)
STAGES = {stage.name: stage for stage in PIPELINE}
STAGE_NAMES = tuple(STAGES)
