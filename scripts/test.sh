#!/bin/sh
# The whole test suite on a fresh Debian/Ubuntu machine, as root: lint, types, unit tests, and
# the integration tests on a lab swarm that this run starts (and removes) itself.
set -eu
cd "$(dirname "$0")/.."
sh scripts/lab-prereqs.sh
sh scripts/setup-venv.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy converge
status=0
.venv/bin/python -m pytest -p no:cacheprovider --durations=15 "$@" || status=$?
# pytest's 5 means no test ran: that is a failure here, never a pass.
exit "$status"
