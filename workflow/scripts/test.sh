#!/usr/bin/env bash
# The whole test suite (unit and slow end-to-end tests); extra arguments go to pytest (e.g. -m "not slow").
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
exec python -m pytest "$@"
