#!/bin/sh
# The unit suite once more, on the lowest versions pyproject.toml allows (pinned in
# tests/constraints-lowest.txt), in its own venv .venv-lowest; idempotent. Called by test.sh.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv-lowest/bin/python ]; then
    python3 -m venv .venv-lowest
fi
# The distribution was called "converge" until it became converge-swarm: a venv made before then
# still holds it, with its claim on bin/converge; remove it before installing the new one.
if .venv-lowest/bin/python -m pip show converge >/dev/null 2>&1; then
    .venv-lowest/bin/python -m pip uninstall --quiet --yes converge
fi
.venv-lowest/bin/python -m pip install --quiet --disable-pip-version-check \
    -c tests/constraints-lowest.txt -e '.[dev]'
# The wheel test installs the newest releases whatever this venv holds: test.sh runs it once.
.venv-lowest/bin/python -m pytest -m "not integration and not wheel" -q -p no:cacheprovider
