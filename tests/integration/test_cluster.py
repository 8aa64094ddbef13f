"""The cluster spec on the real lab: one owner for the nodes, stacks that only read them, and a
placement preview that matches where the scheduler really puts the tasks.

Node specs changed here are restored, and an owner recorded here removed, by the ``stack``
fixture.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from stacks import remove_stack

from converge.api import PlanResult, execute_plan, make_plan
from converge.engine import Engine
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import load_spec_text
from converge.naming import CLUSTER_LABELS_LABEL
from converge.planner import PlanOptions

pytestmark = pytest.mark.integration

WORKERS = ("worker1", "worker2", "worker3")


def cluster(stack: str, **nodes: dict[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = {
        "manager": {"role": "manager"},
        "dbhost": {"role": "worker", "labels": {"type": "db"}},
        **{name: {"role": "worker", "labels": {"type": "mvc"}} for name in WORKERS},
    }
    declared.update(nodes)
    return {"x-converge": {"stack": stack, "cluster": {"nodes": declared}}}


def plan_of(engine: Engine, spec: dict[str, Any], **options: bool) -> PlanResult:
    loaded = load_spec_text(yaml.safe_dump(spec), "spec.yml", {})
    return make_plan(loaded, engine, PlanOptions(**options))


def apply(engine: Engine, spec: dict[str, Any], **options: bool) -> PlanResult:
    planned = plan_of(engine, spec, **options)
    assert not planned.plan.errors, planned.plan.errors
    result = execute_plan(planned, engine, options=ApplyOptions(timeout=180))
    assert result.ok, result.error
    return planned


def node_specs(client: docker.DockerClient) -> dict[str, dict[str, Any]]:
    return {
        node.attrs["Description"]["Hostname"]: node.attrs["Spec"] for node in client.nodes.list()
    }


def labels(client: docker.DockerClient) -> dict[str, dict[str, str]]:
    return {
        hostname: {k: v for k, v in (spec.get("Labels") or {}).items() if k != CLUSTER_LABELS_LABEL}
        for hostname, spec in node_specs(client).items()
    }


def stack_spec(stack: str, services: dict[str, Any]) -> dict[str, Any]:
    return {"x-converge": {"stack": stack}, "services": services}


def web(constraint: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "image": "converge-lab/app:v1",
        "deploy": {
            "replicas": replicas,
            "placement": {"constraints": [constraint]},
            "update_config": {"monitor": "1s"},
        },
    }


def test_one_spec_owns_the_nodes_and_stacks_only_read_them(
    lab: Lab,
    engine: Engine,
    docker_client: docker.DockerClient,
    stack: str,
    converge_cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    spec = cluster(stack)
    first = apply(engine, spec)
    assert {action.address for action in first.plan.actions} >= {f"cluster.{stack}"}
    found = labels(docker_client)
    assert found["dbhost"] == {"type": "db"}
    assert all(found[name] == {"type": "mvc"} for name in WORKERS)
    assert node_specs(docker_client)["worker1"]["Labels"][CLUSTER_LABELS_LABEL] == "type"
    assert plan_of(engine, spec).plan.actions == ()

    # A label the cluster spec never named is the operator's: left alone.
    worker1 = docker_client.nodes.get("worker1")
    worker1.update(
        {**worker1.attrs["Spec"], "Labels": {**worker1.attrs["Spec"]["Labels"], "rack": "r1"}}
    )
    assert plan_of(engine, spec).plan.actions == ()

    # Two stacks placing on the cluster's labels never change a node.
    stacks = (f"{stack}a", f"{stack}b")
    before = node_specs(docker_client)
    try:
        constraints = ("node.labels.type == mvc", "node.labels.type == db")
        for name, constraint in zip(stacks, constraints, strict=True):
            planned = apply(engine, stack_spec(name, {"app": web(constraint)}))
            kinds = {action.object_kind for action in planned.plan.actions}
            assert kinds == {"network", "service"}
        assert node_specs(docker_client) == before
    finally:
        for name in stacks:
            remove_stack(lab, docker_client, name)

    # A second cluster spec is refused, naming the owner.
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(cluster(f"{stack}x")))
    refused = converge_cli("plan", str(other))
    assert refused.returncode == 1
    assert f"the cluster is owned by spec '{stack}'" in refused.stdout + refused.stderr
    assert "--take-over" in refused.stdout + refused.stderr
    taken = converge_cli("plan", "--take-over", str(other))
    assert taken.returncode == 0, taken.stdout + taken.stderr

    # A label the spec stops naming stays until --prune; a drain it stops naming ends.
    spec = cluster(stack, worker3={"role": "worker", "labels": {}})
    spec["x-converge"]["cluster"]["nodes"]["worker2"]["availability"] = "drain"
    planned = apply(engine, spec)
    assert any("--prune removes it" in f.message for f in planned.plan.findings)
    assert labels(docker_client)["worker3"] == {"type": "mvc"}
    assert node_specs(docker_client)["worker2"]["Availability"] == "drain"
    apply(engine, spec, prune=True)
    assert labels(docker_client)["worker3"] == {}
    assert labels(docker_client)["worker1"] == {"type": "mvc", "rack": "r1"}
    del spec["x-converge"]["cluster"]["nodes"]["worker2"]["availability"]
    apply(engine, spec)
    assert node_specs(docker_client)["worker2"]["Availability"] == "active"
    assert plan_of(engine, spec).plan.actions == ()


SHAPES: dict[str, tuple[dict[str, Any], str]] = {
    # service: (deploy, how the preview must match: "exact" per node, or "total" per set)
    "spread": ({"replicas": 6, "placement": {"constraints": ["node.labels.type == mvc"]}}, "exact"),
    "workers": ({"replicas": 4, "placement": {"constraints": ["node.role == worker"]}}, "exact"),
    "agent": ({"mode": "global"}, "exact"),
    "capped": (
        {
            "replicas": 3,
            "placement": {
                "constraints": ["node.labels.type == mvc"],
                "max_replicas_per_node": 1,
            },
        },
        "exact",
    ),
    "zoned": (
        {
            "replicas": 4,
            "placement": {
                "constraints": ["node.labels.type == mvc"],
                "preferences": [{"spread": "node.labels.zone"}],
            },
        },
        "exact",
    ),
    "many": ({"replicas": 5, "placement": {"constraints": ["node.labels.type == mvc"]}}, "total"),
}


def test_the_preview_matches_where_the_scheduler_puts_the_tasks(
    engine: Engine, docker_client: docker.DockerClient, stack: str
) -> None:
    # Every node carries a zone: a zone none of whose nodes may run a service makes swarm's
    # split random (the plan warns so).
    spec = cluster(
        stack,
        manager={"role": "manager", "labels": {"zone": "a"}},
        dbhost={"labels": {"type": "db", "zone": "b"}},
        worker1={"labels": {"type": "mvc", "zone": "a"}},
        worker2={"labels": {"type": "mvc", "zone": "a"}},
        worker3={"labels": {"type": "mvc", "zone": "b"}},
    )
    services = {
        name: {
            "image": "converge-lab/app:v1",
            "deploy": {**deploy, "update_config": {"monitor": "1s"}},
        }
        for name, (deploy, _) in SHAPES.items()
    }
    services["hostport"] = {
        **web("node.labels.type == mvc", 3),
        "ports": [{"target": 80, "published": 5000, "mode": "host"}],
    }
    spec["services"] = services
    planned = apply(engine, spec)
    preview = {item.key: dict(item.nodes) for item in planned.plan.placement}
    assert set(preview) == set(services)
    assert preview["spread"] == {"worker1": 2, "worker2": 2, "worker3": 2}
    assert preview["zoned"] == {"worker1": 1, "worker2": 1, "worker3": 2}
    assert not any("spread over" in finding.message for finding in planned.plan.findings)

    hostnames = {
        node.id: node.attrs["Description"]["Hostname"] for node in docker_client.nodes.list()
    }
    for name in services:
        service = docker_client.services.get(f"{stack}_{name}")
        actual = Counter(
            hostnames[task["NodeID"]]
            for task in service.tasks(filters={"desired-state": "running"})
            if task["Status"]["State"] == "running"
        )
        how = SHAPES[name][1] if name in SHAPES else "exact"
        if how == "exact":
            assert dict(actual) == preview[name], name
        else:
            assert sum(actual.values()) == sum(preview[name].values()), name
            assert set(actual) <= set(WORKERS), name
            assert set(preview[name]) <= set(WORKERS), name


def test_more_host_port_replicas_than_nodes_fail_at_plan_time(
    converge_cli: Callable[..., Any], stack: str, tmp_path: Path
) -> None:
    spec = stack_spec(
        stack,
        {
            "edge": {
                "image": "converge-lab/app:v1",
                "ports": [{"target": 80, "published": 5000, "mode": "host"}],
                "deploy": {"replicas": 6},
            }
        },
    )
    path = tmp_path / "edge.yml"
    path.write_text(yaml.safe_dump(spec))
    result = converge_cli("plan", str(path))
    assert result.returncode == 1
    assert (
        "6 replicas with host port 5000 need 6 eligible nodes; 5 are eligible" in result.stdout
    ), result.stdout + result.stderr
    assert converge_cli("apply", "--yes", str(path)).returncode == 1
