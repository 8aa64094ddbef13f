"""The seed chapter, end to end on the lab, driven by spec edits and apply only.

Labelled nodes, an overlay network, a db pinned to dbhost with a named volume, an mvc service
on type==mvc nodes; publish and unpublish a port; scale; drain and rebalance; a rolling image
update checked over HTTP from inside the overlay network; replicas 0; a switch to global mode
(a replace); a broken update that rolls back; destroy. After every step the plan is empty.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
import yaml
from waiting import wait_for

from converge.api import PlanResult, execute_plan, make_plan
from converge.engine import Engine, connect
from converge.executor import ApplyOptions, ApplyResult
from converge.lab import Lab
from converge.loader import LoadedSpec, load_spec_text
from converge.planner import PlanOptions

pytestmark = pytest.mark.integration

MVC_NODES = {"worker1", "worker2", "worker3"}


def chapter_spec(stack: str) -> dict[str, Any]:
    return {
        "x-converge": {
            "stack": stack,
            "cluster": {
                "nodes": {
                    "manager": {"role": "manager"},
                    "dbhost": {"role": "worker"},
                    **{
                        name: {"labels": {"type": "mvc"}, "availability": "active"}
                        for name in MVC_NODES
                    },
                }
            },
        },
        "networks": {"backend": {"attachable": True}},
        "volumes": {"productdata": None},
        "services": {
            "db": {
                "image": "converge-lab/app:v1",
                "volumes": ["productdata:/var/lib/mysql"],
                "environment": {"MYSQL_ROOT_PASSWORD": "lab", "bind-address": "0.0.0.0"},
                "networks": ["backend"],
                "deploy": {
                    "endpoint_mode": "dnsrr",
                    "placement": {"constraints": ["node.hostname == dbhost"]},
                },
            },
            "mvc": {
                "image": "converge-lab/app:v1",
                "ports": ["3000:80"],
                "environment": {"DBHOST": "db", "NODE": "{{.Node.Hostname}}"},
                "networks": ["backend"],
                "deploy": {
                    "replicas": 5,
                    "placement": {"constraints": ["node.labels.type == mvc"]},
                    "update_config": {
                        "parallelism": 2,
                        "monitor": "2s",
                        "failure_action": "rollback",
                    },
                    "rollback_config": {"parallelism": 0, "monitor": "1s"},
                },
            },
        },
    }


class Chapter:
    def __init__(self, stack: str, engine: Engine, lab: Lab) -> None:
        self.stack = stack
        self.engine = engine
        self.lab = lab
        self.spec = chapter_spec(stack)

    def loaded(self) -> LoadedSpec:
        return load_spec_text(yaml.safe_dump(self.spec), "chapter.yml")

    def plan(self, **options: bool) -> PlanResult:
        return make_plan(self.loaded(), self.engine, PlanOptions(**options))

    def apply(self, **options: bool) -> tuple[PlanResult, ApplyResult]:
        planned = self.plan(**options)
        assert not planned.plan.errors, planned.plan.errors
        result = execute_plan(planned, self.engine, options=ApplyOptions(timeout=180))
        return planned, result

    def converge(self, **options: bool) -> PlanResult:
        planned, result = self.apply(**options)
        assert result.ok, result.error
        assert self.plan().plan.actions == (), [a.description for a in self.plan().plan.actions]
        return planned

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.spec = copy.deepcopy(self.spec)
        change(self.spec)

    def placement(self, service: str) -> dict[str, int]:
        observed = self.plan().observed
        owned = observed.owned_services()[service]
        counts: dict[str, int] = {}
        for task in observed.tasks_of(owned.id):
            if task.state == "running" and task.desired_state == "running":
                node = observed.node_by_id(task.node_id)
                assert node is not None
                counts[node.hostname] = counts.get(node.hostname, 0) + 1
        return counts


@pytest.fixture
def chapter(stack: str, lab: Lab) -> Iterator[Chapter]:
    engine = connect(lab.docker_host())
    yield Chapter(stack, engine, lab)
    engine.close()


def _http_from_overlay(chapter: Chapter, client: docker.DockerClient, path: str) -> list[str]:
    """Ask every mvc task, by the overlay's DNS, from inside the db task's container."""
    containers = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={chapter.stack}_db"}
    )
    assert containers, "no db container on dbhost"
    script = (
        f"for ip in $(nslookup tasks.{chapter.stack}_mvc 127.0.0.11 2>/dev/null "
        "| sed -n 's/^Address: *//p' | grep -v 127.0.0.11); do "
        f"timeout 3 wget -qO- http://$ip{path}; done"
    )
    exit_code, output = containers[0].exec_run(["sh", "-c", script])
    assert exit_code == 0, output
    return [line for line in output.decode().split("\n") if line.strip()]


def test_seed_chapter(chapter: Chapter, node_client: Callable[[str], docker.DockerClient]) -> None:
    # 1. Everything in place, each task on the right nodes.
    chapter.converge()
    assert chapter.placement("db") == {"dbhost": 1}
    assert set(chapter.placement("mvc")) <= MVC_NODES
    assert sum(chapter.placement("mvc").values()) == 5

    # 2. Publish 3306 on the db (host mode: a dnsrr service has no routing mesh), then remove it.
    chapter.edit(
        lambda s: s["services"]["db"].update(
            ports=[{"target": 3306, "published": 3306, "mode": "host"}]
        )
    )
    planned = chapter.converge()
    assert [c.field for a in planned.plan.actions for c in a.changes] == ["ports.3306:3306/tcp"]
    chapter.edit(lambda s: s["services"]["db"].pop("ports"))
    chapter.converge()

    # 3. Scale 5 -> 3 -> 5: scale actions, nothing else.
    for replicas in (3, 5):
        chapter.edit(lambda s, r=replicas: s["services"]["mvc"]["deploy"].update(replicas=r))
        planned = chapter.converge()
        assert [a.kind for a in planned.plan.actions] == ["scale"]
        assert sum(chapter.placement("mvc").values()) == replicas

    # 4. Drain worker2: its tasks move away. Back to active, then rebalance spreads them again.
    chapter.edit(
        lambda s: s["x-converge"]["cluster"]["nodes"]["worker2"].update(availability="drain")
    )
    chapter.converge()
    assert "worker2" not in chapter.placement("mvc")
    chapter.edit(
        lambda s: s["x-converge"]["cluster"]["nodes"]["worker2"].update(availability="active")
    )
    chapter.converge()
    rebalance = chapter.plan(rebalance=True)
    assert [(a.address, a.kind) for a in rebalance.plan.actions] == [("service.mvc", "force")]
    chapter.converge(rebalance=True)
    assert chapter.placement("mvc").get("worker2", 0) >= 1

    # 5. Rolling image update v1 -> v2, two at a time; every task answers v2 over the overlay.
    assert set(_http_from_overlay(chapter, node_client("dbhost"), "/version")) == {"v1"}
    chapter.edit(lambda s: s["services"]["mvc"].update(image="converge-lab/app:v2"))
    chapter.converge()
    answers = _http_from_overlay(chapter, node_client("dbhost"), "/version")
    assert len(answers) == 5
    assert set(answers) == {"v2"}

    # 6. Replicas 0, then back.
    for replicas in (0, 5):
        chapter.edit(lambda s, r=replicas: s["services"]["mvc"]["deploy"].update(replicas=r))
        chapter.converge()
        assert sum(chapter.placement("mvc").values()) == replicas

    # 7. Global mode: a replace, one task per type==mvc node.
    chapter.edit(
        lambda s: (
            s["services"]["mvc"]["deploy"].pop("replicas"),
            s["services"]["mvc"]["deploy"].update(mode="global"),
        )
    )
    planned = chapter.plan()
    replace = [a for a in planned.plan.actions if a.address == "service.mvc"]
    assert [(a.kind, a.symbol, a.forced_by) for a in replace] == [
        ("replace", "-/+", ("deploy.mode",))
    ]
    chapter.converge()
    assert chapter.placement("mvc") == dict.fromkeys(MVC_NODES, 1)

    # 8. A broken update (tasks exit at once) rolls back: apply fails, names the service and the
    #    task error, and the old tasks keep running.
    good = copy.deepcopy(chapter.spec)
    chapter.edit(lambda s: s["services"]["mvc"].update(command=["sh", "-c", "exit 3"]))
    _, result = chapter.apply()
    assert not result.ok
    assert f"{chapter.stack}_mvc" in (result.error or "")
    assert "exit" in (result.error or "")
    assert "rollback" in (result.error or "")
    wait_for(
        lambda: chapter.placement("mvc") == dict.fromkeys(MVC_NODES, 1),
        timeout=60,
        what="the rolled-back tasks to run on every mvc node",
    )
    assert chapter.plan().plan.actions != ()  # the swarm kept the old spec, not the broken one
    chapter.spec = good
    chapter.converge()

    # 9. Destroy: nothing of the stack remains; an unowned service beside it is untouched.
    environment = {**os.environ, "DOCKER_HOST": chapter.lab.docker_host()}
    bystander = f"{chapter.stack}_bystander"
    subprocess.run(
        [
            "docker",
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            bystander,
            "--replicas",
            "0",
            "converge-lab/app:v1",
        ],
        env=environment,
        check=True,
        capture_output=True,
    )
    try:
        spec_file = chapter.lab.config.directory / f"{chapter.stack}.yml"
        spec_file.write_text(yaml.safe_dump(chapter.spec))
        destroyed = subprocess.run(
            [sys.executable, "-m", "converge", "destroy", str(spec_file), "--yes"],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        observed = chapter.plan().observed
        assert observed.owned_services() == {}
        assert observed.owned_networks() == {}
        assert observed.service_named(bystander) is not None
    finally:
        subprocess.run(
            ["docker", "service", "rm", bystander],
            env=environment,
            capture_output=True,
            check=False,
        )
