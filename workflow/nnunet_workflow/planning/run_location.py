"""Which executor a Snakemake run asked for, known while the Snakefile is parsed.

Snakemake attaches its executor plugin only after parsing (`workflow.local_exec` is True until then),
but budgets must be registered while parsing: a local run gets a memory and GPU budget, a cluster run
must not (each of its jobs gets its own allocation). So this reads what the user asked for: an
`--executor` on the command line, else the `executor:` of the profile given with `--profile` or
`SNAKEMAKE_PROFILE`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

LOCAL_EXECUTORS = {None, "local", "dryrun", "touch"}


def _option(argv: list[str], *names: str) -> str | None:
    """The value of the last of these options in argv (`--name value` or `--name=value`)."""
    found = None
    for index, argument in enumerate(argv):
        for name in names:
            if argument == name and index + 1 < len(argv):
                found = argv[index + 1]
            elif argument.startswith(name + "=") and name.startswith("--"):
                found = argument.split("=", 1)[1]
    return found


def _profile_executor(profile: str, cwd: Path) -> str | None:
    """The `executor:` of a profile given by path or by name (searched as Snakemake does)."""
    candidates = [Path(profile)]
    if not Path(profile).is_absolute():
        candidates = [cwd / profile, Path.home() / ".config" / "snakemake" / profile,
                      Path("/etc/xdg/snakemake") / profile]
    for folder in candidates:
        config = folder / "config.yaml"
        if config.is_file():
            settings = yaml.safe_load(config.read_text()) or {}
            return settings.get("executor")
    return None


def requested_executor(argv: list[str], environ=None, cwd=None) -> str | None:
    """The executor this run was started with, or None for Snakemake's default (local)."""
    environ = os.environ if environ is None else environ
    executor = _option(argv, "--executor", "-e")
    if executor is not None:
        return executor
    profile = _option(argv, "--profile") or environ.get("SNAKEMAKE_PROFILE")
    return _profile_executor(profile, Path(cwd or os.getcwd())) if profile else None


def is_dry_run(argv: list[str]) -> bool:
    """Whether this Snakemake invocation only shows what it would do (`-n`, `--dry-run`, `--dryrun`)."""
    return any(arg in ("--dry-run", "--dryrun") or (arg[:1] == "-" and arg[1:2] != "-" and arg[1:].isalpha()
                                                     and "n" in arg[1:]) for arg in argv)


def runs_locally(argv: list[str], environ=None, cwd=None) -> bool:
    """Whether the jobs of this run execute on this machine (and share its memory and GPUs)."""
    return requested_executor(argv, environ, cwd) in LOCAL_EXECUTORS
