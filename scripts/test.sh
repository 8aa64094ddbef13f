#!/bin/sh
# The whole test suite on a fresh Debian/Ubuntu machine, as root: lint, types, the JSON Schema
# with a JavaScript validator (ajv) on every compose file of the repository, the unit tests on
# the lowest allowed dependencies, then the wheel is built and every test runs on the newest
# (unit, the wheel installed into a fresh venv, and integration, on a lab swarm that this run
# starts and removes itself).
set -eu
cd "$(dirname "$0")/.."
sh scripts/lab-prereqs.sh
sh scripts/setup-venv.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy converge
sh scripts/check-schema.sh
sh scripts/test-lowest.sh
# The wheel a release would publish; tests/integration/test_wheel.py installs it into a fresh venv.
CONVERGE_WHEEL="$(pwd)/$(sh scripts/build-wheel.sh)"
export CONVERGE_WHEEL
# The integration tests' lab is their own, never the one `sh scripts/lab.sh` leaves running with
# the example stack (whose cluster spec owns that lab's nodes); a lab chosen by the caller is kept.
: "${CONVERGE_LAB_NAME:=cvtst}"
: "${CONVERGE_LAB_SUBNET:=10.213.2.0/24}"
: "${CONVERGE_LAB_DIR:=/var/lib/converge-test-lab}"
export CONVERGE_LAB_NAME CONVERGE_LAB_SUBNET CONVERGE_LAB_DIR
status=0
.venv/bin/python -m pytest -p no:cacheprovider --durations=15 "$@" || status=$?
# pytest's 5 means no test ran: that is a failure here, never a pass.
exit "$status"
