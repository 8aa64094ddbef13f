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
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
