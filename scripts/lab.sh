#!/bin/sh
# The main job on a fresh Debian/Ubuntu machine, as root: install what the lab needs, start a
# local five-node lab swarm, and apply the example spec to it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/lab-prereqs.sh
sh scripts/setup-venv.sh
.venv/bin/converge lab up
DOCKER_HOST="$(.venv/bin/converge lab env | sed -n 's/^export DOCKER_HOST=//p')"
export DOCKER_HOST
.venv/bin/converge apply specs/exampleapp-lab.yml --yes
.venv/bin/converge plan specs/exampleapp-lab.yml --detailed-exitcode
echo
echo "The lab runs. converge is .venv/bin/converge; put it on PATH with:  . .venv/bin/activate"
echo "Then try:  eval \"\$(converge lab env)\" && docker node ls && converge status specs/exampleapp-lab.yml"
