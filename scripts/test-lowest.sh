#!/bin/sh
# The unit suite once more, on the lowest versions pyproject.toml allows (pinned in
# tests/constraints-lowest.txt), in its own venv .venv-lowest; idempotent. Called by test.sh.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv-lowest/bin/python ]; then
    python3 -m venv .venv-lowest
fi
.venv-lowest/bin/python -m pip install --quiet --disable-pip-version-check \
    -c tests/constraints-lowest.txt -e '.[dev]'
.venv-lowest/bin/python -m pytest -m "not integration" -q -p no:cacheprovider
