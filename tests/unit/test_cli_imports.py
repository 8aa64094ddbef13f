"""Commands that never talk to a swarm start without importing the Docker SDK.

docker, requests and paramiko cost about 125 ms of a 320 ms start. The check runs in a fresh
interpreter: this test process has long imported all of them through other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "specs" / "exampleapp-lab.yml")

HEAVY = ("docker", "requests", "paramiko")

FAST_COMMANDS = [
    ["validate", SPEC],
    ["schema"],
    ["lb", "render", "--offline", SPEC],
    ["--help"],
    ["--version"],
    ["plan", "-h"],
]

# Runs each command through the console script's entry point, in one interpreter, and reports
# which heavy modules are loaded after the import and after each command.
_PROBE = """
import contextlib, io, json, sys

HEAVY = {heavy!r}
loaded = lambda: sorted(name for name in HEAVY if name in sys.modules)
report = {{}}
import converge.cli
report["import converge.cli"] = loaded()
for argv in {commands!r}:
    sys.argv = ["converge", *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            converge.cli.main()
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
    step = "converge " + " ".join(argv)
    report[step] = loaded() if code == 0 else f"exit {{code}}: {{out.getvalue()}}"
print(json.dumps(report))
"""


def _python(probe: str, env: dict[str, str] | None = None) -> str:
    """Run ``probe`` in a fresh interpreter from the project's root; its standard output."""
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_fast_commands_import_no_docker_requests_or_paramiko() -> None:
    output = _python(_PROBE.format(heavy=HEAVY, commands=FAST_COMMANDS))
    report = json.loads(output.splitlines()[-1])
    offenders = {step: modules for step, modules in report.items() if modules}
    assert not offenders, (
        f"these steps loaded {', '.join(HEAVY)} (or failed): {offenders}; find the importer with "
        "`python -X importtime -m converge validate specs/exampleapp-lab.yml` and import it "
        "inside the function that needs the engine"
    )


# What a plan needs is the SDK (docker, requests); what it never needs at all.
NOT_FOR_PLAN = (
    "paramiko",  # ssh:// hosts only: docker-py would import it (and the next three) anyway
    "cryptography",
    "invoke",
    "nacl",
    "deepdiff",  # only when two views differ
    "typer.rich_utils",  # typer's help and usage errors
    "markdown_it",
    "jsonschema",
    "prometheus_client",  # drift metrics
    "pyrage",  # age-encrypted secrets: only when a spec declares one
    "converge.executor",  # apply's write path
    "converge.drift",
    "converge.export",
    "converge.docgen",
    "rich.live",  # apply's live view of the wait (with rich.spinner)
    "rich.spinner",
    "rich.table",
    "rich.markdown",
    "pygments",
)

_PLAN_PROBE = """
import contextlib, io, json, sys

sys.argv = ["converge", "plan", {spec!r}]
import converge.cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        converge.cli.main()
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
loaded = sorted(name for name in {modules!r} if name in sys.modules)
print(json.dumps({{"code": code, "output": out.getvalue(), "loaded": loaded}}))
"""


def test_plan_imports_the_sdk_and_nothing_it_does_not_need(tmp_path: Path) -> None:
    # No engine answers: the plan gets as far as connecting, with everything imported by then.
    output = _python(
        _PLAN_PROBE.format(spec=SPEC, modules=NOT_FOR_PLAN),
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONTEXT": ""},
    )
    report = json.loads(output.splitlines()[-1])
    assert report["code"] == 1
    assert "cannot reach the Docker engine" in report["output"]
    # Older releases of rich load rich.table from rich.console itself (13.8 through rich.scope):
    # what the console alone loads is rich's choice, not converge's.
    rich_console = _python(
        "import json, sys, rich.console\n"
        f"print(json.dumps([name for name in {NOT_FOR_PLAN!r} if name in sys.modules]))"
    )
    avoidable = sorted(set(report["loaded"]) - set(json.loads(rich_console.splitlines()[-1])))
    assert avoidable == [], (
        f"`converge plan` loaded {avoidable}; find the importer with "
        "`python -X importtime -m converge plan SPEC` and import it where it is needed"
    )


def test_an_ssh_host_still_gets_the_sdks_ssh_adapter() -> None:
    # converge.engine hides paramiko while docker-py imports; an ssh:// host brings it back.
    probe = (
        "import sys; from converge.engine import connect; "
        "before = 'paramiko' in sys.modules; "
        "engine = connect('ssh://lab-node'); "
        "print(before, type(engine._client._custom_adapter).__name__)"
    )
    assert _python(probe).split() == ["False", "SSHHTTPAdapter"]


_ENTRY_PROBE = """
import gc, json, sys

sys.argv = ["converge", *{argv!r}]
import converge.__main__
from converge import collector

try:
    converge.__main__.main()
except SystemExit:
    pass
print(json.dumps({{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "owned": collector._owned}}))
"""


def test_the_command_freezes_what_its_imports_built() -> None:
    # The console script (converge.__main__) imports the CLI with the collector paused, then
    # freezes what the imports built: no later collection walks it again. The collector is on.
    output = _python(_ENTRY_PROBE.format(argv=["validate", SPEC]))
    report = json.loads(output.splitlines()[-1])
    assert report["enabled"] is True
    assert report["owned"] is True
    assert report["frozen"] > 50_000, report  # the CLI's modules, pydantic, typer, rich, yaml


def test_a_library_caller_loads_without_freezing_anything() -> None:
    # converge.cli.main() or load_spec from Python (tests, tools) leave the collector alone.
    probe = (
        f"import gc, sys; sys.argv = ['converge', 'validate', {SPEC!r}]\n"
        "import converge.cli\n"
        "try:\n    converge.cli.main()\nexcept SystemExit:\n    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count())"
    )
    assert _python(probe).split()[-2:] == ["True", "0"]


def test_the_console_script_starts_at_the_freezing_entry() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="converge")
    assert script.value == "converge.__main__:main"
