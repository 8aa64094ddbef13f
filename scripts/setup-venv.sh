#!/bin/sh
# Create .venv with converge and its development tools; idempotent. Used by lab.sh and test.sh.
set -eu
cd "$(dirname "$0")/.."
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: converge needs Python 3.11 or newer" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || {
        echo "python3 -m venv failed; installing Debian's python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    }
fi
# The distribution was called "converge" until it became converge-swarm: a venv made before then
# still holds it, with its claim on bin/converge; remove it before installing the new one.
if .venv/bin/python -m pip show converge >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall --quiet --yes converge
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
