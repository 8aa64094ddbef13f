#!/bin/sh
# The compose files of specs/, docs/tutorial/ and the tests, checked against
# docs/converge.schema.json with ajv, a JavaScript validator as editors and CI tools use
# (tests/unit/test_schema.py checks the same files from Python). Installs nodejs and npm if they are missing (as root, Debian/Ubuntu),
# and the pinned ajv and yaml packages into scripts/schema-check/node_modules.
set -eu
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: node and npm are needed (apt-get install nodejs npm, as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
fi
npm ci --prefix scripts/schema-check --no-audit --no-fund --loglevel=error >/dev/null
node scripts/schema-check/check.mjs docs/converge.schema.json \
    specs/*.yml docs/tutorial/*.yml \
    tests/fixtures/specs/good/*.yml tests/fixtures/specs/good/override/*.yml \
    tests/fixtures/stackdeploy/*.yml tests/fixtures/stackdeploy/twofiles/*.yml \
    tests/fixtures/recorded/fxrec.yml tests/fixtures/plans/*/*.yml
