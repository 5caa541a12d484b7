"""The one spelling of every stage name: a stage's, its copies' (a cascade's previous stage `prev_predict`, an
ensemble member's `m1_predict`, a cascade member's `m1_prev_predict`), the rules that run the copies
(`member_predict` with the wildcard `member`), and the order of the stages. Records, rules, estimates,
resources, layout and the summary all name stages through this module."""

from __future__ import annotations

import re

# Every stage, in the order a case goes through them: its module's `Stage` bears the name (a stage not here is
# refused when its `Stage` is made). Copies of preprocess, predict and export run for a cascade's previous stage
# and each ensemble member before the rest.
ORDER = ("validate", "preprocess", "predict", "export", "ensemble", "postprocess", "statistics", "dicom_seg")
MODEL_CHAIN = ("preprocess", "predict", "export")
PREVIOUS_PREFIX = "prev_"
# An ensemble member's stages run through the rules `member_preprocess`, `member_predict`, ... (a cascade
# member's previous stage through `member_prev_preprocess`, ...) with the wildcard `member`: its index in `model`.
MEMBER_RULE_PREFIX = "member_"
MEMBER_WILDCARD = "{member}"
_COPY = re.compile(r"^(?:m([0-9]+)_)?(prev_)?")


def previous(stage: str) -> str:
    """A cascade's previous stage's copy of a stage (prev_predict)."""
    return PREVIOUS_PREFIX + stage


def member_prefix(index: int | str) -> str:
    """The prefix of an ensemble member's copies (m1_; the wildcard's m{member}_ in the rules)."""
    return f"m{index}_"


def member(index: int | str, stage: str) -> str:
    """An ensemble member's copy of a stage (m1_predict, m1_prev_predict)."""
    return member_prefix(index) + stage


def member_pattern(stage: str) -> str:
    """The name of a member's copy with the rules' wildcard (m{member}_predict)."""
    return member(MEMBER_WILDCARD, stage)


def with_member(pattern: str, wildcards) -> str:
    """A stage named with the member wildcard (m{member}_predict), for the job's member (m1_predict)."""
    return pattern.replace(MEMBER_WILDCARD, str(wildcards.member)) if MEMBER_WILDCARD in pattern else pattern


def kind(stage: str) -> str:
    """The stage a copy is of (prev_predict, m1_predict, m1_prev_predict: predict), for its resources."""
    return _COPY.sub("", stage)


def is_stage(name: str) -> bool:
    """Whether `name` names a stage or a copy of one (prev_predict, m1_export)."""
    return kind(name) in ORDER


def journey_key(name: str) -> tuple:
    """Sorts stage names in the order a case goes through them: validate; a cascade's previous stage's copies,
    then the model's own stages, then each ensemble member's (its previous stage's first); then the rest."""
    copy = _COPY.match(name)
    base = ORDER.index(kind(name))
    member_index = -1 if copy[1] is None else int(copy[1])
    phase = ORDER.index(MODEL_CHAIN[0]) if kind(name) in MODEL_CHAIN else base
    return phase, member_index, copy[2] is None, base


def of_rule(rule: str, wildcards) -> str:
    """The stage a rule runs: its name, or for an ensemble member's rule (member_predict) m{member}_predict."""
    if rule.startswith(MEMBER_RULE_PREFIX):
        return member(int(wildcards.member), rule.removeprefix(MEMBER_RULE_PREFIX))
    return rule
