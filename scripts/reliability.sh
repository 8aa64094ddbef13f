#!/bin/sh
# The reliability campaign on the lab swarm: every kill point (35), every failing-update variant,
# node loss and link cut, both load-balancer methods under churn, every concurrency scenario and
# the secret scan (tests/integration/test_reliability_*.py with CONVERGE_RELIABILITY=full),
# ROUNDS times; then the figures for docs/reliability.md.
#
#   sh scripts/reliability.sh                 # one round, about 35 minutes on 2 vCPU
#   ROUNDS=3 sh scripts/reliability.sh -x     # extra arguments go to pytest
#
# Needs root and the lab's packages (scripts/lab-prereqs.sh); uses the lab named by
# CONVERGE_LAB_NAME/CONVERGE_LAB_SUBNET/CONVERGE_LAB_DIR (starting it if it is not up).
# Results go to $RELIABILITY_RESULTS (default reliability-results/, not tracked): one JSON line
# per trial in figures.jsonl, pytest's outcomes in junit-<round>.xml; the summary is printed.
# Exit status: pytest's (an expected failure, xfail, does not fail the run; an unexpected pass
# of a strict xfail does: the mark must go).
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || sh scripts/setup-venv.sh
ROUNDS=${ROUNDS:-1}
RESULTS=${RELIABILITY_RESULTS:-reliability-results}
mkdir -p "$RESULTS"
rm -f "$RESULTS"/junit-*.xml
FIGURES="$RESULTS/figures.jsonl"
: >"$FIGURES"
export CONVERGE_RELIABILITY=full CONVERGE_RELIABILITY_FIGURES="$FIGURES"
status=0
round=1
while [ "$round" -le "$ROUNDS" ]; do
    .venv/bin/python -m pytest -m integration -p no:cacheprovider -q -rfEX \
        --junitxml="$RESULTS/junit-$round.xml" \
        tests/integration/test_reliability_*.py "$@" || status=$?
    round=$((round + 1))
done
.venv/bin/python - "$FIGURES" "$RESULTS"/junit-*.xml <<'EOF'
"""Print the campaign's figures: outcomes per suite (junit) and the measurements (JSON lines)."""
import json
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict

figures_file, *junit_files = sys.argv[1:]
outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
for name in junit_files:
    for case in ElementTree.parse(name).iter("testcase"):
        suite = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("test_reliability_")
        children = {child.tag: child for child in case}
        skipped = children.get("skipped")
        if skipped is not None and "xfail" in (skipped.get("type") or "") + (
            skipped.get("message") or ""
        ):
            outcome = "xfailed"
        elif skipped is not None:
            outcome = "skipped"
        elif "failure" in children and "XPASS(strict)" in (
            children["failure"].get("message") or ""
        ):
            outcome = "xpassed"
        elif "failure" in children or "error" in children:
            outcome = "failed"
        else:
            outcome = "passed"
        outcomes[suite][outcome] += 1
print("\nTrials per suite. xfailed: failed as marked (a known defect of issue 15 not fixed on")
print("this branch); xpassed: the promise held although marked (the fix is in: drop the mark).")
columns = ("passed", "failed", "xfailed", "xpassed", "skipped")
print(f"  {'suite':<14} {'trials':>6} " + " ".join(f"{name:>7}" for name in columns))
for suite, counts in sorted(outcomes.items()):
    trials = sum(counts.values())
    print(f"  {suite:<14} {trials:>6} " + " ".join(f"{counts[name]:>7}" for name in columns))
lines = []
try:
    with open(figures_file, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
except FileNotFoundError:
    pass
churn = [line for line in lines if line["suite"] in ("churn", "failing-update")]
if churn:
    print("\nHTTP through the load balancer (requests, failed, longest request):")
    total = failed = 0
    longest = 0.0
    for line in churn:
        where = (
            f"churn {line['method']}: {line['phase']}"
            if line["suite"] == "churn"
            else f"failing update: {line['variant']}"
        )
        total += line["requests"]
        failed += line["failures"]
        longest = max(longest, line["longest_s"])
        print(
            f"  {where:<40} {line['requests']:>7} {line['failures']:>4} {line['longest_s']:>7.3f}s"
        )
    print(f"  {'all':<40} {total:>7} {failed:>4} {longest:>7.3f}s")
kills = [line for line in lines if line["suite"] == "kill"]
if kills:
    recovered = sum(line["recovered"] for line in kills)
    print(f"\nkill -9: {len(kills)} points, recovered {recovered}, not recovered {len(kills) - recovered}")
    for line in kills:
        if not line["recovered"]:
            print(f"  {line['point']}: exit {line['exit']}; {'; '.join(line['problems'][:3])}")
for line in lines:
    if line["suite"] in ("side-by-side", "concurrency", "fault", "secrets"):
        shown = {key: value for key, value in line.items() if key not in ("suite", "at")}
        print(f"{line['suite']}: {json.dumps(shown)}")
EOF
exit "$status"
