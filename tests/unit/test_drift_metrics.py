"""The drift check's edges: Prometheus metrics (parsed by prometheus_client), their atomic
write, the spec's git commit, and ``converge drift`` exit codes and metrics when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_drift_report import CHECKED_AT, _env_added, check, node

from converge import cli
from converge.errors import ConvergeError, EngineError
from converge.provenance import git_revision
from converge.render import failure_metrics, report_metrics, write_metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_of_a_clean_check() -> None:
    samples = parse(report_metrics(check()))
    stack = (("stack", "fxrec"),)
    assert samples[("converge_drift_check_success", stack)] == 1
    assert samples[("converge_drift_in_sync", stack)] == 1
    assert samples[("converge_drift_healthy", stack)] == 1
    assert samples[("converge_drift_last_check_timestamp_seconds", stack)] == (
        CHECKED_AT.timestamp()
    )
    assert samples[("converge_drift_check_duration_seconds", stack)] == 0.25
    assert samples[("converge_drift_findings", (("kind", "sync"), *stack))] == 0
    assert samples[("converge_drift_findings", (("kind", "health"), *stack))] == 0
    web = (("service", "web"), *stack)
    assert samples[("converge_service_running_tasks", web)] == 3
    assert samples[("converge_service_desired_tasks", web)] == 3
    assert {labels[0][1] for name, labels in samples if name == "converge_service_in_sync"} == {
        "agent",
        "db",
        "labelled",
        "latest",
        "pinned",
        "web",
    }


def test_metrics_show_drift_and_health_per_service() -> None:
    def edit(engine: dict[str, object]) -> None:
        _env_added(engine)
        node(engine, "worker3")["Status"]["State"] = "down"

    samples = parse(report_metrics(check(edit)))
    stack = (("stack", "fxrec"),)
    assert samples[("converge_drift_findings", (("kind", "sync"), *stack))] == 1
    assert samples[("converge_drift_findings", (("kind", "health"), *stack))] == 3
    assert samples[("converge_drift_in_sync", stack)] == 0
    assert samples[("converge_drift_nodes_not_ready", stack)] == 1
    assert samples[("converge_drift_services_unhealthy", stack)] == 2
    web, db = (("service", "web"), *stack), (("service", "db"), *stack)
    assert samples[("converge_service_in_sync", web)] == 0
    assert samples[("converge_service_healthy", web)] == 0
    assert samples[("converge_service_in_sync", db)] == 1
    assert samples[("converge_service_healthy", db)] == 1


def test_failure_metrics_parse_with_and_without_a_stack() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    named = parse(failure_metrics('we"ird\\stack', moment, 1.5))
    assert named[("converge_drift_check_success", (("stack", 'we"ird\\stack'),))] == 0
    unnamed = parse(failure_metrics(None, moment, 1.5))
    assert unnamed[("converge_drift_check_success", ())] == 0
    assert unnamed[("converge_drift_last_check_timestamp_seconds", ())] == moment.timestamp()


def test_every_family_has_its_help_and_type_even_without_samples() -> None:
    lines = report_metrics(check()).splitlines()
    assert lines[:3] == [
        "# HELP converge_drift_check_success 1 when the last drift check observed the swarm, "
        "0 when it failed (bad spec, engine unreachable).",
        "# TYPE converge_drift_check_success gauge",
        'converge_drift_check_success{stack="fxrec"} 1.0',
    ]
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(families) == 12
    assert all(f"# TYPE {name} gauge" in lines for name in families)
    failed = failure_metrics("fxrec", CHECKED_AT, 0.5).splitlines()
    assert [line.split()[2] for line in failed if line.startswith("# TYPE")] == [
        "converge_drift_check_success",
        "converge_drift_last_check_timestamp_seconds",
        "converge_drift_check_duration_seconds",
    ]


def test_prometheus_client_loads_only_when_metrics_are_made() -> None:
    code = "import sys, converge.cli; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_write_metrics_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "converge.prom"
    target.write_text("old\n")
    write_metrics(target, "new 1\n")
    assert target.read_text() == "new 1\n"
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["converge.prom"]


def test_write_metrics_to_a_missing_directory_is_an_expected_error(tmp_path: Path) -> None:
    with pytest.raises(ConvergeError, match="cannot write the metrics file"):
        write_metrics(tmp_path / "missing" / "converge.prom", "x 1\n")


# Under a git hook or `git rebase -x`, GIT_DIR names the project's own repository: a test that
# ran `git init` there once turned it into a bare repository.
_WITHOUT_GIT_VARIABLES = {
    name: value for name, value in os.environ.items() if not name.startswith("GIT_")
}


def _git(directory: Path, *arguments: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
        env=_WITHOUT_GIT_VARIABLES,
    )


def test_git_revision_of_a_spec_in_a_work_tree(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("name: shop\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "spec.yml")
    _git(tmp_path, "commit", "-qm", "spec")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=_WITHOUT_GIT_VARIABLES,
    ).stdout.strip()
    assert git_revision([spec]) == (head, False)
    spec.write_text("name: blog\n")
    assert git_revision([spec]) == (head, True)


def test_git_revision_outside_a_work_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("name: shop\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_revision([spec]) == (None, None)
    assert git_revision([]) == (None, None)


def test_drift_cli_error_exits_1_and_writes_failure_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("x-converge:\n  stack: shop\n")
    metrics = tmp_path / "drift.prom"
    arguments = ["drift", str(spec), "-H", "tcp://unreachable.invalid:2375"]

    def unreachable(host: str | None, context: str | None = None) -> None:
        raise EngineError(f"cannot reach the Docker engine at {host}: ConnectionError")

    # (A real failed connect leaks docker-py's socket, which pytest reports as a warning.)
    monkeypatch.setattr("converge.engine.connect", unreachable)
    monkeypatch.setattr("sys.argv", ["converge", *arguments, "--metrics-file", str(metrics)])
    monkeypatch.setattr(cli, "_register_subcommands", lambda: None)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "Error: cannot reach the Docker engine at tcp://unreachable.invalid:2375: ConnectionError\n"
    )
    samples = parse(metrics.read_text())
    assert samples[("converge_drift_check_success", (("stack", "shop"),))] == 0
