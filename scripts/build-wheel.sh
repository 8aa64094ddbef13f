#!/bin/sh
# Build converge's wheel into dist/ (replacing any earlier one) as a release would, and print its
# path. Called by test.sh; tests/integration/test_wheel.py installs the wheel into a fresh venv.
set -eu
cd "$(dirname "$0")/.."
rm -rf dist build
.venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist . >&2
ls dist/converge_swarm-*.whl
