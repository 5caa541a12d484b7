#!/usr/bin/env bash
# Create the virtual environment .venv from envs/requirements.txt and install this repository's package
# into it, editable (again only when the requirements or pyproject.toml change).
# Sourced by demo.sh and test.sh; leaves the repository root as the working directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Python >= 3.11 is needed (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }
wanted=$(cat envs/requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$wanted" ]; then
    echo "Setting up .venv from envs/requirements.txt (a few minutes, once) ..."
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r envs/requirements.txt -e .
    echo "$wanted" > .venv/.requirements.sha256
fi
export PATH="$PWD/.venv/bin:$PATH"
