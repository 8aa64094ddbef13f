"""The external load balancer, pure parts: rendering, views, diff and plan (no engine)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from converge.actions import Phase
from converge.diff import Diff, FieldChange, ObjectDiff, diff
from converge.lb.config import (
    Server,
    backend_servers,
    container_body,
    desired_view,
    dns_networks,
    haproxy_duration,
    loadbalancer_findings,
    observed_view,
    render_config,
)
from converge.loader import load_spec, load_spec_text
from converge.naming import LB_LABEL
from converge.planner import PlanOptions, plan
from converge.render import plan_text
from converge.spec import Spec
from converge.state import (
    ObservedLoadBalancer,
    ObservedLoadBalancerCheck,
    ObservedNode,
    ObservedService,
    ObservedState,
    ObservedTask,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "haproxy"

SPEC = """
x-converge:
  stack: shop
  loadbalancer:
    image: haproxy:2.8
    node: manager
    frontends:
      http: {{port: 80, backend: web}}
    backends:
      web: {{service: web, port: {port}, method: {method}}}
networks:
  backend: {{attachable: true}}
services:
  web:
    image: app:1
    networks: [backend]
    ports: [{{target: 80, published: 8080, mode: {mode}}}]
    deploy: {{replicas: 3}}
"""


def spec_for(method: str, mode: str = "host") -> Spec:
    port = 80 if method == "dns" else 8080
    text = SPEC.format(method=method, mode=mode, port=port)
    return load_spec_text(text, environ={}).spec


def node(hostname: str, address: str, state: str = "ready") -> ObservedNode:
    return ObservedNode(
        id=f"id-{hostname}",
        version=1,
        hostname=hostname,
        role="worker",
        availability="active",
        labels={},
        state=state,
        address=address,
        engine_labels={},
        os="linux",
        arch="x86_64",
        view={},
        raw_spec={},
    )


def task(hostname: str, state: str = "running", desired: str = "running") -> ObservedTask:
    return ObservedTask(
        id=f"task-{hostname}-{state}",
        service_id="svc-web",
        node_id=f"id-{hostname}",
        slot=1,
        state=state,
        desired_state=desired,
        message="",
        error="",
        image="app:1",
        timestamp="",
    )


WEB = ObservedService(
    id="svc-web",
    version=3,
    name="shop_web",
    owned=True,
    stack="shop",
    view={},
    raw_spec={},
    running_tasks=3,
    desired_tasks=3,
)

NODES = (
    node("worker2", "10.0.0.13"),
    node("manager", "10.0.0.10"),
    node("worker1", "10.0.0.12"),
    node("worker3", "10.0.0.14", state="down"),
)


def state(*tasks: ObservedTask, **extra: Any) -> ObservedState:
    return ObservedState(
        stack="shop", manager="manager", nodes=NODES, services=(WEB,), tasks=tasks, **extra
    )


# ---------------------------------------------------------------------------------------------
# Rendering


@pytest.mark.parametrize("name", ["exampleapp", "exampleapp-lab"])
def test_the_example_specs_render_their_documented_config(name: str) -> None:
    spec = load_spec([ROOT / "specs" / f"{name}.yml"], environ={}).spec
    expected = (FIXTURES / f"{name}.offline.cfg").read_text(encoding="utf-8")
    assert render_config(spec, None) == expected
    # docs/loadbalancer.md shows the same text.
    assert expected in (ROOT / "docs" / "loadbalancer.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("method", "tasks", "expected"),
    [
        # ingress: every node with an address, sorted; a down node stays (its check fails).
        (
            "ingress",
            (),
            ["manager 10.0.0.10", "worker1 10.0.0.12", "worker2 10.0.0.13", "worker3 10.0.0.14"],
        ),
        # tasks: nodes that run a task now, once each, on ready nodes only; the other ready
        # nodes are backups (for the moment every task moved, in a rolling update).
        (
            "tasks",
            (task("worker1"), task("worker1"), task("worker2"), task("worker3")),
            ["worker1 10.0.0.12", "worker2 10.0.0.13", "manager 10.0.0.10 backup"],
        ),
        # tasks that are not running (or should not be) are no servers, only backups.
        (
            "tasks",
            (task("worker1", state="preparing"), task("worker2", desired="shutdown")),
            ["manager 10.0.0.10 backup", "worker1 10.0.0.12 backup", "worker2 10.0.0.13 backup"],
        ),
    ],
)
def test_servers_per_method(
    method: str, tasks: tuple[ObservedTask, ...], expected: list[str]
) -> None:
    servers = backend_servers(spec_for(method), "web", state(*tasks)) or []
    shown = [f"{s.name} {s.address}" + (" backup" if s.backup else "") for s in servers]
    assert shown == expected
    assert {s.port for s in servers} <= {8080}


def test_dns_method_is_a_server_template_over_docker_dns() -> None:
    spec = spec_for("dns")
    assert backend_servers(spec, "web", state()) is None
    config = render_config(spec, state())
    assert "resolvers docker\n    nameserver docker 127.0.0.11:53\n" in config
    assert (
        "    server-template web 10 tasks.shop_web:80 check resolvers docker init-addr none\n"
        in config
    )
    assert dns_networks(spec) == ["shop_backend"]


def test_a_tasks_backend_without_tasks_says_so() -> None:
    config = render_config(spec_for("tasks"), state())
    assert "    # no servers: no task of it runs\n" in config
    assert "    server manager 10.0.0.10:8080 check backup\n" in config
    assert "resolvers" not in config


def test_tasks_backups_are_the_active_nodes_the_service_may_run_on() -> None:
    spec = load_spec_text(
        SPEC.format(method="tasks", mode="host", port=8080).replace(
            "    deploy: {replicas: 3}\n",
            "    deploy: {replicas: 3, placement: {constraints: [node.labels.web == yes]}}\n",
        ),
        environ={},
    ).spec
    nodes = (
        replace(node("worker1", "10.0.0.12"), labels={"web": "yes"}),
        replace(node("worker2", "10.0.0.13"), labels={"web": "yes"}, availability="drain"),
        replace(node("worker4", "10.0.0.15"), labels={"web": "yes"}),
        node("manager", "10.0.0.10"),  # the constraint keeps it out
    )
    observed = ObservedState(
        stack="shop", manager="manager", nodes=nodes, services=(WEB,), tasks=(task("worker1"),)
    )
    servers = backend_servers(spec, "web", observed) or []
    assert [(s.name, s.backup) for s in servers] == [("worker1", False), ("worker4", True)]
    config = render_config(spec, observed)
    assert "    option allbackups\n" in config
    assert "    server worker4 10.0.0.15:8080 check backup\n" in config


def test_changes_are_retried_elsewhere_and_dead_servers_leave_at_once() -> None:
    config = render_config(spec_for("dns"), state())
    for line in (
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response junk-response response-timeout",
        "    timeout connect 500ms",
        "    hold valid 1s",
        "    hold obsolete 0s",
        "    default-server inter 1s fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down",
        "    http-request disable-l7-retry if METH_POST || { method PATCH }",
    ):
        assert f"\n{line}\n" in config, line
    tcp = load_spec_text(
        SPEC.format(method="dns", mode="host", port=80).replace(
            "    backends:", "    mode: tcp\n    backends:"
        ),
        environ={},
    ).spec
    tcp_config = render_config(tcp, state())
    assert "retry-on" not in tcp_config
    assert "http-request" not in tcp_config
    assert "    option redispatch 1\n" in tcp_config


def test_rendering_is_deterministic() -> None:
    spec = spec_for("tasks")
    one = render_config(spec, state(task("worker2"), task("worker1")))
    two = render_config(spec, state(task("worker1"), task("worker2")))
    assert one == two


def test_options_timeouts_stats_and_tcp_mode() -> None:
    text = SPEC.format(method="tasks", mode="host", port=8080).replace(
        "      web: {service: web, port: 8080, method: tasks}",
        "      web: {service: web, port: 8080, method: tasks, check: false, balance: leastconn,\n"
        "            options: ['option tcp-check']}\n"
        "    mode: tcp\n"
        "    timeouts: {connect: 1500ms, client: 1m, server: 2s}\n"
        "    stats: {port: 8404, uri: /haproxy}",
    )
    spec = load_spec_text(text, environ={}).spec
    config = render_config(spec, state(task("worker1")))
    for line in (
        "    mode tcp",
        "    option tcplog",
        "    timeout connect 1500ms",
        "    timeout client 60s",
        "    timeout server 2s",
        "    balance leastconn",
        "    option tcp-check",
        "    server worker1 10.0.0.12:8080",
        "listen stats",
        "    bind :8404",
        "    stats uri /haproxy",
    ):
        assert f"{line}\n" in config
    assert " check" not in config.split("backend web")[1].split("listen")[0].replace(
        "tcp-check", ""
    )
    assert "forwardfor" not in config


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(5_000_000_000, "5s"), (1_500_000_000, "1500ms"), (90_000_000_000, "90s"), (1, "1ms")],
)
def test_haproxy_durations(nanoseconds: int, text: str) -> None:
    assert haproxy_duration(nanoseconds) == text


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="no haproxy binary to check with")
@pytest.mark.parametrize("method", ["ingress", "tasks", "dns"])
def test_rendered_configs_pass_haproxy_check(method: str, tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_config(spec_for(method), state(task("worker1"))), encoding="utf-8")
    run = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------
# The container's views


def inspect_of(body: dict[str, Any], running: bool = True) -> dict[str, Any]:
    """What the engine's inspect reports for a container created from ``body``."""
    networks = {body["HostConfig"]["NetworkMode"]: {}}
    return {
        "Config": {"Image": body["Image"], "Labels": body["Labels"]},
        "HostConfig": body["HostConfig"],
        "NetworkSettings": {"Networks": networks},
        "State": {"Running": running},
    }


@pytest.mark.parametrize("method", ["ingress", "dns"])
def test_a_created_container_reads_back_as_desired(method: str) -> None:
    spec = spec_for(method, mode="ingress")
    body = container_body(spec)
    assert body["Labels"]["com.docker.stack.namespace"] == "shop"
    assert body["Labels"][LB_LABEL] == "loadbalancer"
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostPort": "80"}]}
    observed = state()
    config = render_config(spec, observed)
    assert observed_view(inspect_of(body), "manager", config) == desired_view(spec, observed)


def lb(spec: Spec, observed: ObservedState, **changes: Any) -> ObservedLoadBalancer:
    view = observed_view(inspect_of(container_body(spec)), "manager", None)
    view["config"] = render_config(spec, observed)
    view.update(changes)
    return ObservedLoadBalancer("c1", "shop_loadbalancer", True, view, view["config"])


# ---------------------------------------------------------------------------------------------
# Diff and plan


def lb_diff(spec: Spec, observed: ObservedState) -> Diff:
    """Only the load balancer's part of the diff (the hand-made services differ on purpose)."""
    whole = diff(spec, observed)
    return Diff(whole.stack, tuple(o for o in whole.objects if o.kind == "loadbalancer"))


def planned(spec: Spec, observed: ObservedState, prune: bool = False) -> list[tuple[str, ...]]:
    result = plan(spec, lb_diff(spec, observed), observed, PlanOptions(prune=prune))
    return [
        (a.address, a.kind, a.phase.name, *a.forced_by)
        for a in result.actions
        if a.object_kind == "loadbalancer"
    ]


def test_a_missing_balancer_is_created_last() -> None:
    spec = spec_for("dns")
    observed = state(loadbalancer_engine="manager")
    result = plan(spec, diff(spec, observed), observed)
    assert result.actions[-1].address == "loadbalancer.loadbalancer"
    assert result.actions[-1].kind == "create"
    assert result.actions[-1].phase is Phase.LOADBALANCER
    fields = [change.field for change in result.actions[-1].changes]
    assert fields == ["image", "node", "ports", "networks", "running", "config"]


def test_a_matching_balancer_plans_nothing() -> None:
    spec = spec_for("tasks")
    observed = state(task("worker1"), loadbalancer_engine="manager")
    observed = replace(observed, loadbalancers=(lb(spec, observed),))
    assert planned(spec, observed) == []


def test_a_config_change_is_a_reload_and_a_container_change_a_replace() -> None:
    spec = spec_for("tasks")
    observed = state(task("worker1"), loadbalancer_engine="manager")
    stale = lb(spec, observed, config="old\n")
    assert planned(spec, replace(observed, loadbalancers=(stale,))) == [
        ("loadbalancer.loadbalancer", "update", "LOADBALANCER")
    ]
    moved = lb(spec, observed, image="haproxy:2.6", ports=["81/tcp"])
    assert planned(spec, replace(observed, loadbalancers=(moved,))) == [
        ("loadbalancer.loadbalancer", "replace", "LOADBALANCER", "image", "ports")
    ]
    stopped = lb(spec, observed, running=False)
    assert planned(spec, replace(observed, loadbalancers=(stopped,)))[0][1] == "replace"


def test_placement_change_in_the_plan_makes_the_tasks_backend_follow() -> None:
    spec = spec_for("tasks")
    observed = state(task("worker1"), task("worker2"), loadbalancer_engine="manager")
    observed = replace(observed, loadbalancers=(lb(spec, observed),))
    difference = lb_diff(spec, observed)
    scale = ObjectDiff(
        "service", "web", "shop_web", "update", (FieldChange(("deploy", "replicas"), 3, 1),)
    )
    moved = Diff(difference.stack, (scale, *difference.objects))
    result = plan(spec, moved, observed)
    action = result.actions[-1]
    assert (action.address, action.kind) == ("loadbalancer.loadbalancer", "update")
    assert action.changes[0].path == ("backends", "web", "servers")
    assert action.changes[0].before == ["worker1", "worker2"]
    # The dns method needs no such update: Docker's DNS follows by itself.
    dns = spec_for("dns")
    observed_dns = replace(observed, loadbalancers=(lb(dns, observed),))
    dns_diff = lb_diff(dns, observed_dns)
    result = plan(dns, Diff(dns_diff.stack, (scale, *dns_diff.objects)), observed_dns)
    assert all(a.object_kind != "loadbalancer" for a in result.actions)


def test_prune_collision_and_engine_findings() -> None:
    spec = spec_for("dns")
    observed = state(loadbalancer_engine="manager")
    no_lb = spec.model_copy(
        update={"x_converge": spec.x_converge.model_copy(update={"loadbalancer": None})}
    )
    leftover = replace(observed, loadbalancers=(lb(spec, observed),))
    warned = plan(no_lb, diff(no_lb, leftover), leftover)
    assert [f.address for f in warned.findings] == ["loadbalancer.loadbalancer"]
    assert planned(no_lb, leftover, prune=True) == [
        ("loadbalancer.loadbalancer", "remove", "PRUNE_SERVICES")
    ]
    foreign = ObservedLoadBalancer("x", "shop_loadbalancer", False, {}, None)
    taken = replace(observed, loadbalancers=(foreign,))
    errors = plan(spec, diff(spec, taken), taken).errors
    assert "is not owned by stack shop" in errors[0].message
    elsewhere = replace(observed, loadbalancer_engine="worker1")
    assert "set loadbalancer.engine" in loadbalancer_findings(spec, elsewhere)[0][1]


def test_a_leftover_config_check_container_is_always_removed() -> None:
    spec = spec_for("tasks")
    observed = state(task("worker1"), loadbalancer_engine="manager")
    check = ObservedLoadBalancerCheck("k1", "shop_loadbalancer-check-123456")
    observed = replace(observed, loadbalancers=(lb(spec, observed),), loadbalancer_checks=(check,))
    removal = ("loadbalancer.loadbalancer-check-123456", "remove", "PRUNE_SERVICES")
    assert planned(spec, observed) == [removal]  # without --prune too
    action = plan(spec, lb_diff(spec, observed), observed).actions[0]
    assert (action.name, action.observed_id) == ("shop_loadbalancer-check-123456", "k1")
    destroyed = plan(spec, lb_diff(spec, observed), observed, PlanOptions(destroy=True))
    assert [a.address for a in destroyed.actions if a.object_kind == "loadbalancer"] == [
        "loadbalancer.loadbalancer",
        removal[0],
    ]


def test_the_plan_shows_the_config_as_a_unified_diff() -> None:
    spec = spec_for("tasks")
    observed = state(task("worker1"), loadbalancer_engine="manager")
    before = render_config(spec, state(task("worker2"), loadbalancer_engine="manager"))
    current = lb(spec, observed, config=before)
    observed = replace(observed, loadbalancers=(current,))
    text = plan_text(plan(spec, lb_diff(spec, observed), observed))
    assert "--- haproxy.cfg (running)" in text
    assert "-    server worker2 10.0.0.13:8080 check" in text
    assert "+    server worker1 10.0.0.12:8080 check" in text
    assert Server("worker1", "10.0.0.12", 8080) in (backend_servers(spec, "web", observed) or [])
