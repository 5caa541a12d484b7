"""Config values as users type them on the command line (`--config tta=false folds=0,1`) made typed,
guided by the JSON schema, before the schema validates them."""

from __future__ import annotations

TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}
NULL_WORDS = {"null", "none", "~", ""}


def _types(spec: dict) -> set[str]:
    kind = spec.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def coerce_value(value, spec: dict):
    """One value: strings become null, booleans or lists where the schema expects them (`0,1` or `[0,1]`;
    `[A,B]` where a string is allowed too)."""
    types = _types(spec)
    if isinstance(value, str):
        word = value.strip().lower()
        if "null" in types and word in NULL_WORDS:
            return None
        if "boolean" in types and word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        # where a string is allowed too (model), only a bracketed list `[A,B]` is a list
        if "array" in types and ("string" not in types or value.strip().startswith("[")):
            return [item.strip() for item in value.strip().strip("[]").split(",") if item.strip()]
    if "array" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


def coerce_config(config: dict, schema: dict) -> dict:
    """Coerce every key of `config` the schema describes (in place) and return it."""
    for key, spec in schema.get("properties", {}).items():
        if key in config:
            config[key] = coerce_value(config[key], spec)
    return config
