"""Blue-green and canary rollouts through the managed HAProxy, on the lab, under real traffic.

Each test applies v1 of a service behind the balancer (``dns`` backend), then releases a new
version with ``converge apply`` (the command line, whose progress lines tell the test where
the rollout stands) while ``Traffic`` sends requests from the host through the balancer,
bounded in count and time. Requests are filed per phase of the rollout; the lab's app answers
``app=<version> ...`` (``APP_STATUS=500`` makes it answer 500).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from traffic import PhaseFigures, Traffic, get
from waiting import wait_for

from converge.api import execute_plan, make_plan
from converge.engine import Engine
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import load_spec_text

pytestmark = pytest.mark.integration
# The tests kill converge mid-change or move traffic between versions: the lab's health probe
# runs before every one, so that a node the engine left unable to run tasks fails one test only.
LAB_PROBE_EACH_TEST = True

APPLY = ApplyOptions(timeout=180, stable_for=1.0, poll_interval=0.3)

SPEC = """
x-converge:
  stack: {stack}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: 80, method: dns}}
networks:
  backend: {{attachable: true}}
services:
  web:
    image: converge-lab/app:{version}
    environment: {{APP_STATUS: "{status}"}}
    networks: [backend]{service_files}
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
    x-converge:
      rollout:
        strategy: {strategy}
        steps: {steps}
        pause: {pause}
        gates: {{max_error_rate: 1, min_requests: {min_requests}}}
{files}"""

# A secret and a config the service mounts: a promotion must send their versions in use.
FILES = """
secrets:
  token: {environment: ROLLOUT_TOKEN}
configs:
  page: {content: "page of the rollout test"}
"""


def spec_text(
    stack: str,
    port: int,
    *,
    version: str = "v1",
    status: int = 200,
    strategy: str = "blue-green",
    steps: str = "[100]",
    pause: str = "2s",
    min_requests: int = 20,
    with_files: bool = False,
) -> str:
    return SPEC.format(
        service_files="\n    secrets: [token]\n    configs: [page]" if with_files else "",
        files=FILES if with_files else "",
        stack=stack,
        port=port,
        version=version,
        status=status,
        strategy=strategy,
        steps=steps,
        pause=pause,
        min_requests=min_requests,
    )


def deploy_v1(engine: Engine, text: str, lab: Lab, port: int) -> None:
    result = execute_plan(make_plan(load_spec_text(text), engine), engine, options=APPLY)
    assert result.ok, result.error
    wait_for(lambda: _answers_v1(lab, port), timeout=30, what="the balancer to answer with v1")


def _answers_v1(lab: Lab, port: int) -> bool:
    """Ten requests in a row, each answered by v1."""
    url = f"http://{lab.manager_address()}:{port}/"
    for _ in range(10):
        body = get(url)
        if body is None or not body.startswith("app=v1 "):
            return False
    return True


def converge_streaming(
    lab: Lab,
    path: Path,
    *arguments: str,
    on_line: Callable[[str], None] = lambda line: None,
    kill_when: Callable[[str], bool] = lambda line: False,
) -> tuple[int, str]:
    """``converge <arguments> <path>``: its exit code and output, each line handed to
    ``on_line`` as it comes; SIGKILL as soon as ``kill_when`` says so (exit code -9)."""
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "converge", *arguments, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        on_line(line)
        if kill_when(line):
            process.send_signal(signal.SIGKILL)
            break
    code = process.wait(timeout=600)
    process.stdout.close()
    return code, "".join(lines)


def share_of(figures: PhaseFigures, version: str) -> float:
    answered = sum(figures.versions.values())
    return 100.0 * figures.versions[version] / answered if answered else 0.0


def services_of(client: docker.DockerClient, stack: str) -> dict[str, str]:
    """Service name -> image (without digest) of the stack's services."""
    return {
        service.name: service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
        for service in client.services.list(
            filters={"label": f"com.docker.stack.namespace={stack}"}
        )
    }


def task_ids(client: docker.DockerClient, name: str) -> set[str]:
    return {
        task["ID"] for task in client.services.get(name).tasks(filters={"desired-state": "running"})
    }


def test_blue_green_switches_with_no_failed_request_and_leaves_an_empty_plan(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port = 18280
    deploy_v1(engine, spec_text(stack, port), lab, port)
    path = tmp_path / "spec.yml"
    path.write_text(spec_text(stack, port, version="v2"), encoding="utf-8")

    planned = make_plan(load_spec_text(path.read_text()), engine).plan
    assert [(a.address, a.kind) for a in planned.actions] == [("service.web", "rollout")]
    assert "blue-green" in planned.actions[0].description
    assert f"{stack}_web-next" in planned.actions[0].description

    with Traffic(lab.manager_address(), port, clients=3, max_seconds=300) as traffic:
        with traffic.phase("rollout"):
            code, output = converge_streaming(lab, path, "apply", "--yes")
        with traffic.phase("after"):
            wait_for(
                lambda: traffic.phases["after"].requests >= 100 or None,
                timeout=60,
                what="100 requests after the rollout",
            )
    print(
        "\n".join(
            figures.line() + f" {dict(figures.versions)}" for figures in traffic.phases.values()
        )
    )
    assert code == 0, output
    assert "rollout complete" in output, output
    rollout, after = traffic.phases["rollout"], traffic.phases["after"]
    assert rollout.failures == 0, rollout.reasons
    assert rollout.versions["v1"] > 0, rollout.versions
    assert rollout.versions["v2"] > 0, rollout.versions
    assert after.failures == 0, after.reasons
    assert after.versions == {"v2": after.requests}, after.versions
    assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v2"}
    again = make_plan(load_spec_text(path.read_text()), engine).plan
    assert again.actions == (), [a.description for a in again.actions]


def test_a_failing_gate_switches_back_to_v1_and_exits_1_naming_the_gate(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port = 18282
    deploy_v1(engine, spec_text(stack, port), lab, port)
    v1_tasks = task_ids(docker_client, f"{stack}_web")
    path = tmp_path / "spec.yml"
    path.write_text(spec_text(stack, port, version="v2", status=500), encoding="utf-8")

    with Traffic(lab.manager_address(), port, clients=3, max_seconds=300) as traffic:
        traffic._current = traffic._phase("before the switch-back")

        def on_line(line: str) -> None:
            if "takes 0% of the traffic" in line:
                traffic._current = traffic._phase("after the switch-back")

        code, output = converge_streaming(lab, path, "apply", "--yes", on_line=on_line)
        with traffic.phase("after the apply"):
            wait_for(
                lambda: traffic.phases["after the apply"].requests >= 100 or None,
                timeout=60,
                what="100 requests after the apply",
            )
    print(output)
    print(
        "\n".join(
            figures.line() + f" {dict(figures.versions)}" for figures in traffic.phases.values()
        )
    )
    assert code == 1, output
    assert "gate max_error_rate" in output, output
    assert "% errors (" in output, output
    assert "HTTP 5xx" in output, output
    assert "all traffic is back on" in output, output
    before = traffic.phases["before the switch-back"]
    assert before.failures > 0  # the broken version did answer 500 until the gate tripped
    for name in ("after the switch-back", "after the apply"):
        figures = traffic.phases[name]
        assert figures.failures == 0, (name, figures.reasons)
        assert set(figures.versions) <= {"v1"}, (name, figures.versions)
    assert traffic.phases["after the apply"].versions["v1"] >= 100
    assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v1"}
    assert task_ids(docker_client, f"{stack}_web") == v1_tasks  # v1 never stopped


def test_canary_moves_the_share_of_v2_through_its_steps(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port = 18284
    text = spec_text(stack, port, strategy="canary", steps="[10, 50, 100]", pause="4s")
    deploy_v1(engine, text, lab, port)
    path = tmp_path / "spec.yml"
    path.write_text(
        spec_text(
            stack,
            port,
            version="v2",
            strategy="canary",
            steps="[10, 50, 100]",
            pause="4s",
            # At 10% this holds the step for about 700 requests in all (500 are asserted).
            min_requests=70,
        ),
        encoding="utf-8",
    )
    with Traffic(lab.manager_address(), port, clients=4, max_seconds=300) as traffic:
        traffic._current = traffic._phase("starting")

        def on_line(line: str) -> None:
            for share in (10, 50, 100):
                if f"takes {share}% of the traffic" in line:
                    traffic._current = traffic._phase(f"step {share}%")
            if "passed:" in line or "updated to the new version" in line:
                traffic._current = traffic._phase("between steps")

        code, output = converge_streaming(lab, path, "apply", "--yes", on_line=on_line)
    print(output)
    print(
        "\n".join(
            figures.line() + f" {dict(figures.versions)}" for figures in traffic.phases.values()
        )
    )
    assert code == 0, output
    tolerance = 5.0  # percentage points
    for share in (10, 50, 100):
        figures = traffic.phases[f"step {share}%"]
        assert figures.failures == 0, figures.reasons
        assert figures.requests >= 500, figures.line()
        assert abs(share_of(figures, "v2") - share) <= tolerance, (share, figures.versions)
    assert sum(figures.failures for figures in traffic.phases.values()) == 0
    assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v2"}


def test_an_apply_killed_mid_rollout_is_taken_up_by_the_next_one(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port = 18286
    deploy_v1(engine, spec_text(stack, port, strategy="canary", steps="[50, 100]"), lab, port)
    path = tmp_path / "spec.yml"
    # A long pause: the apply is killed while it holds the 50% step.
    path.write_text(
        spec_text(stack, port, version="v2", strategy="canary", steps="[50, 100]", pause="10m"),
        encoding="utf-8",
    )
    with Traffic(lab.manager_address(), port, clients=3, max_seconds=300) as traffic:
        with traffic.phase("killed apply"):
            code, output = converge_streaming(
                lab,
                path,
                "apply",
                "--yes",
                kill_when=lambda line: "takes 50% of the traffic" in line,
            )
        assert code == -signal.SIGKILL, output
        with traffic.phase("status"):
            status_code, status = converge_streaming(lab, path, "rollout", "status", "web")
        assert status_code == 2, status
        assert "rollout in progress" in status, status
        assert "takes 50% of the traffic" in status, status
        assert "step 1 of 2" in status, status
        # Status and drift see one service in a rollout, not an extra one to prune.
        code, text = converge_streaming(lab, path, "status")
        assert code == 2, text
        assert f"a rollout of service {stack}_web is in progress" in text, text
        code, text = converge_streaming(lab, path, "drift")
        assert code == 2, text
        assert "no longer in the spec" not in text, text
        assert "rollout" in text, text
        # The next apply takes it up (the spec's pause shortened meanwhile: same new version).
        path.write_text(
            spec_text(stack, port, version="v2", strategy="canary", steps="[50, 100]"),
            encoding="utf-8",
        )
        planned = make_plan(load_spec_text(path.read_text()), engine).plan
        assert [(a.address, a.kind) for a in planned.actions] == [("service.web", "rollout")]
        with traffic.phase("re-apply"):
            code, output = converge_streaming(lab, path, "apply", "--yes")
    print(status)
    print(output)
    print(
        "\n".join(
            figures.line() + f" {dict(figures.versions)}" for figures in traffic.phases.values()
        )
    )
    assert code == 0, output
    assert "took over the lock" in output, output
    assert sum(figures.failures for figures in traffic.phases.values()) == 0, {
        name: figures.reasons for name, figures in traffic.phases.items() if figures.failures
    }
    assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v2"}
    assert make_plan(load_spec_text(path.read_text()), engine).plan.actions == ()


def test_rollout_abort_and_promote_finish_a_rollout_left_at_50_percent(
    lab: Lab,
    stack: str,
    engine: Engine,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = 18288
    monkeypatch.setenv("ROLLOUT_TOKEN", "rollout-token-value")
    canary = {"strategy": "canary", "steps": "[50, 100]", "with_files": True}
    deploy_v1(engine, spec_text(stack, port, **canary), lab, port)
    path = tmp_path / "spec.yml"
    path.write_text(spec_text(stack, port, version="v2", pause="10m", **canary), encoding="utf-8")

    def killed_at_50() -> None:
        code, output = converge_streaming(
            lab, path, "apply", "--yes", kill_when=lambda line: "takes 50% of the traffic" in line
        )
        assert code == -signal.SIGKILL, output

    with Traffic(lab.manager_address(), port, clients=3, max_seconds=300) as traffic:
        with traffic.phase("first rollout, killed at 50%"):
            killed_at_50()
        with traffic.phase("rollout abort"):
            code, output = converge_streaming(lab, path, "rollout", "abort", "web")
        assert code == 0, output
        assert "service.web: aborted" in output, output
        with traffic.phase("after the abort"):
            wait_for(
                lambda: traffic.phases["after the abort"].requests >= 100 or None,
                timeout=60,
                what="100 requests after the abort",
            )
        assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v1"}
        code, output = converge_streaming(lab, path, "rollout", "status", "-o", "json", "web")
        assert code == 2, output  # not in progress, but pending: the next apply starts it
        assert '"in_progress": false' in output, output
        assert '"pending": true' in output, output

        with traffic.phase("second rollout, killed at 50%"):
            killed_at_50()
        # A file changed since the new version started: promoting it would send every request
        # to a spec that nobody tested.
        changed = tmp_path / "changed.yml"
        changed.write_text(path.read_text().replace("page of the", "new page of the"))
        code, output = converge_streaming(lab, changed, "rollout", "promote", "web")
        assert code == 1, output
        assert "runs another spec than the file gives" in output, output
        with traffic.phase("rollout promote"):
            code, output = converge_streaming(lab, path, "rollout", "promote", "web")
        assert code == 0, output
        assert "service.web: promoted" in output, output
        with traffic.phase("after the promotion"):
            wait_for(
                lambda: traffic.phases["after the promotion"].requests >= 100 or None,
                timeout=60,
                what="100 requests after the promotion",
            )
    print(
        "\n".join(
            figures.line() + f" {dict(figures.versions)}" for figures in traffic.phases.values()
        )
    )
    assert sum(figures.failures for figures in traffic.phases.values()) == 0, {
        name: figures.reasons for name, figures in traffic.phases.items() if figures.failures
    }
    assert set(traffic.phases["after the abort"].versions) == {"v1"}
    assert set(traffic.phases["after the promotion"].versions) == {"v2"}
    assert services_of(docker_client, stack) == {f"{stack}_web": "converge-lab/app:v2"}
    code, output = converge_streaming(lab, path, "rollout", "status", "web")
    assert code == 0, output
    assert "no rollout in progress, it runs the spec" in output, output
    # The promoted service mounts the secret's and config's versions in use, as apply sends them.
    code, output = converge_streaming(lab, path, "plan", "--detailed-exitcode")
    assert code == 0, output
