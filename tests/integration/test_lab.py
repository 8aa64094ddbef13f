"""The lab swarm itself: nodes, placement, overlay traffic, images, node loss, partition, down."""

from __future__ import annotations

import http.client
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import docker.types
import pytest
from docker.models.containers import Container
from stacks import remove_stack
from waiting import (
    node_ids,
    node_state,
    running_tasks,
    wait_for,
    wait_for_running,
)

from converge.lab import APP_V1, APP_V2, Lab, LabConfig, haproxy_image
from converge.naming import STACK_LABEL

pytestmark = pytest.mark.integration

NODES = {"manager", "dbhost", "worker1", "worker2", "worker3"}
# Swarm marks a dead node Down after 10-14 s and reschedules 16-20 s after the loss.
NODE_LOSS_TIMEOUT = 60.0


def _service(
    client: docker.DockerClient,
    stack: str,
    name: str,
    *,
    image: str = APP_V1,
    **kwargs: object,
) -> str:
    full = f"{stack}_{name}"
    client.services.create(
        image,
        name=full,
        labels={STACK_LABEL: stack},
        container_labels={STACK_LABEL: stack},
        env=["NODE={{.Node.Hostname}}"],
        **kwargs,
    )
    return full


def _task_container(client: docker.DockerClient, service: str) -> Container:
    def probe() -> Container | None:
        found = client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"}
        )
        return found[0] if found else None

    return wait_for(probe, timeout=30, what=f"a running container of {service}")


def _exec(container: Container, command: str) -> tuple[int, str]:
    code, output = container.exec_run(["sh", "-c", command])
    return int(code or 0), output.decode(errors="replace").strip()


def _wget(container: Container, url: str) -> str | None:
    """The body at ``url`` fetched inside ``container``, or None if the fetch failed."""
    # busybox wget -T crashes (Debian 1.35): bound the request with timeout instead.
    code, output = _exec(container, f"timeout 5 wget -qO- {url}")
    return output if code == 0 else None


def _http_get(address: str, port: int) -> str:
    # http.client never consults proxy settings: lab traffic stays on the lab bridge.
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read().decode().strip()
    finally:
        connection.close()


def test_five_ready_nodes_with_their_hostnames(docker_client: docker.DockerClient) -> None:
    nodes = docker_client.nodes.list()
    ready = {
        n.attrs["Description"]["Hostname"] for n in nodes if n.attrs["Status"]["State"] == "ready"
    }
    assert ready == NODES
    roles = {n.attrs["Description"]["Hostname"]: n.attrs["Spec"]["Role"] for n in nodes}
    assert roles["manager"] == "manager"
    assert {roles[h] for h in NODES - {"manager"}} == {"worker"}


def test_each_node_is_its_own_engine(
    lab: Lab, node_client: Callable[[str], docker.DockerClient]
) -> None:
    engines = {name: node_client(name).info() for name in sorted(NODES)}
    assert {info["Name"] for info in engines.values()} == NODES
    assert len({info["ID"] for info in engines.values()}) == len(NODES)
    for name, info in engines.items():
        assert info["Swarm"]["NodeAddr"] == lab.node_address(name)
        assert str(lab.config.directory) in info["DockerRootDir"]


def test_constraint_places_the_task_on_worker2(
    docker_client: docker.DockerClient,
    node_client: Callable[[str], docker.DockerClient],
    stack: str,
) -> None:
    service = _service(docker_client, stack, "pinned", constraints=["node.hostname == worker2"])
    (task,) = wait_for_running(docker_client, service, 1)
    assert task["NodeID"] == node_ids(docker_client)["worker2"]
    code, answer = _exec(
        _task_container(node_client("worker2"), service), "wget -qO- http://127.0.0.1/"
    )
    assert code == 0
    assert answer.startswith("app=v1 hostname=")
    assert answer.endswith("node=worker2")


def test_task_on_worker1_reaches_task_on_worker3_over_an_overlay(
    docker_client: docker.DockerClient,
    node_client: Callable[[str], docker.DockerClient],
    stack: str,
) -> None:
    network = f"{stack}_backend"
    docker_client.networks.create(
        network, driver="overlay", attachable=True, labels={STACK_LABEL: stack}
    )
    # No IPVS here, so no VIP: reach tasks by DNS round robin.
    web = _service(
        docker_client,
        stack,
        "web",
        networks=[network],
        constraints=["node.hostname == worker3"],
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
    )
    client = _service(
        docker_client, stack, "client", networks=[network], constraints=["node.hostname == worker1"]
    )
    wait_for_running(docker_client, web, 1)
    wait_for_running(docker_client, client, 1)
    container = _task_container(node_client("worker1"), client)
    for name in (web, f"tasks.{web}"):
        answer = wait_for(
            lambda name=name: _wget(container, f"http://{name}/"),
            timeout=30,
            what=f"worker1 to reach {name}",
        )
        assert answer.startswith("app=v1 ")
        assert answer.endswith("node=worker3")


def test_host_mode_port_answers_from_the_host_at_the_node_address(
    lab: Lab, docker_client: docker.DockerClient, stack: str
) -> None:
    service = _service(
        docker_client,
        stack,
        "hostport",
        image=APP_V2,
        constraints=["node.hostname == dbhost"],
        endpoint_spec=docker.types.EndpointSpec(ports={18080: (80, "tcp", "host")}),
    )
    wait_for_running(docker_client, service, 1)
    answer = wait_for(
        lambda: _http_get(lab.node_address("dbhost"), 18080),
        timeout=20,
        what="the host-mode port on dbhost",
        ignore=(OSError,),
    )
    assert answer.startswith("app=v2 ")
    assert answer.endswith("node=dbhost")


@pytest.mark.parametrize(
    ("image", "url", "expected"),
    [
        (APP_V1, "http://127.0.0.1/version", "v1"),
        (APP_V2, "http://127.0.0.1/version", "v2"),
        (None, "http://127.0.0.1/", "converge-lab haproxy"),
    ],
)
def test_images_answer_and_stop_at_once(
    node_client: Callable[[str], docker.DockerClient],
    stack: str,
    image: str | None,
    url: str,
    expected: str,
) -> None:
    client = node_client("worker2")
    tag = image or haproxy_image()
    container = client.containers.run(tag, detach=True, labels={STACK_LABEL: stack})
    answer = wait_for(lambda: _wget(container, url), timeout=20, what=f"{tag} to answer")
    assert answer == expected
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 3, f"{tag} ignored its stop signal"


def test_node_loss_reschedules_and_the_node_comes_back(
    faults: Lab, docker_client: docker.DockerClient, stack: str
) -> None:
    service = _service(
        docker_client,
        stack,
        "spread",
        mode=docker.types.ServiceMode("replicated", 4),
        constraints=["node.role == worker"],
    )
    tasks = wait_for_running(docker_client, service, 4)
    ids = node_ids(docker_client)
    worker1 = ids["worker1"]
    assert worker1 in {t["NodeID"] for t in tasks}, (
        "the scheduler spreads 4 replicas over 4 workers"
    )

    faults.stop_node("worker1")
    assert not faults.is_running("worker1")
    wait_for(
        lambda: (
            node_state(docker_client, "worker1") == "down"
            and (lambda t: len(t) == 4 and worker1 not in {x["NodeID"] for x in t})(
                running_tasks(docker_client, service)
            )
        ),
        timeout=NODE_LOSS_TIMEOUT,
        what="worker1 Down and its task running elsewhere",
    )

    faults.start_node("worker1")
    assert node_state(docker_client, "worker1") == "ready"
    assert node_ids(docker_client)["worker1"] == worker1


def test_cut_link_partitions_the_node_and_restore_heals_it(
    faults: Lab, docker_client: docker.DockerClient
) -> None:
    faults.cut_link("worker3")
    assert {n.name: n.link_up for n in faults.status().nodes}["worker3"] is False
    wait_for(
        lambda: node_state(docker_client, "worker3") == "down",
        timeout=NODE_LOSS_TIMEOUT,
        what="worker3 to be seen Down",
    )
    faults.restore_link("worker3")
    wait_for(
        lambda: node_state(docker_client, "worker3") == "ready",
        timeout=NODE_LOSS_TIMEOUT,
        what="worker3 to be Ready again",
    )


def test_stack_cleanup_removes_everything_labelled_on_every_node(
    lab: Lab,
    docker_client: docker.DockerClient,
    node_client: Callable[[str], docker.DockerClient],
) -> None:
    stack = f"t{uuid.uuid4().hex[:8]}"
    label = {STACK_LABEL: stack}
    docker_client.networks.create(f"{stack}_net", driver="overlay", labels=label)
    docker_client.configs.create(name=f"{stack}_cfg", data=b"x", labels=label)
    service = _service(
        docker_client,
        stack,
        "vol",
        networks=[f"{stack}_net"],
        constraints=["node.hostname == worker2"],
        mounts=[docker.types.Mount("/data", f"{stack}_data", labels=label)],
    )
    wait_for_running(docker_client, service, 1)
    dbhost = node_client("dbhost")
    dbhost.volumes.create(f"{stack}_local", labels=label)
    dbhost.networks.create(f"{stack}_bridge", labels=label)
    dbhost.containers.run(
        APP_V1, detach=True, labels=label, volumes={f"{stack}_local": {"bind": "/data"}}
    )

    remove_stack(lab, docker_client, stack)

    filters = {"label": f"{STACK_LABEL}={stack}"}
    assert docker_client.services.list(filters=filters) == []
    assert docker_client.configs.list(filters=filters) == []
    for name in lab.nodes():
        client = node_client(name)
        assert client.containers.list(all=True, filters=filters) == [], name
        assert client.volumes.list(filters=filters) == [], name
        assert [
            n.name for n in client.networks.list(filters=filters) if n.attrs["Scope"] == "local"
        ] == [], name
    assert docker_client.networks.list(filters=filters) == []


def test_cli_env_and_status(lab: Lab) -> None:
    def converge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "converge", "lab", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    env = converge("env")
    assert env.returncode == 0
    assert (
        env.stdout.strip()
        == f"export DOCKER_HOST=unix://{lab.config.directory}/nodes/manager/docker.sock"
    )
    assert (
        converge("env", "--node", "worker2").stdout.strip().endswith("/nodes/worker2/docker.sock")
    )
    status = converge("status")
    assert status.returncode == 0
    assert "lab ready: 5 nodes" in status.stdout
    unknown = converge("env", "--node", "nosuch")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("Error: no lab node is called 'nosuch'")
    assert len(unknown.stderr.strip().splitlines()) == 1


# -- down: a separate small lab, so the shared one keeps running -----------------------------


def _leftovers(config: LabConfig) -> list[str]:
    """Anything of the lab still on the machine, described."""
    found: list[str] = []
    directory = str(config.directory)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
            if stat[0] == "Z":
                continue  # already dead; init reaps it
            cgroups = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/{config.name}/" in cgroups or directory in cmdline:
            found.append(f"process {proc.name}: {cmdline[:80]}")
    found += (
        [f"netns {n}" for n in os.listdir("/var/run/netns") if n.startswith(f"{config.name}-")]
        if Path("/var/run/netns").is_dir()
        else []
    )
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    for line in links.splitlines():
        link = line.split(":", 2)[1].strip().split("@", 1)[0]
        if link.startswith(f"{config.name}-") or link == config.bridge:
            found.append(f"link {link}")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if directory in line]
    if config.directory.exists():
        found.append(f"directory {directory}")
    found += [
        f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"**/{config.name}") if p.is_dir()
    ][:5]
    rules = subprocess.run(
        ["iptables", "-w", "-S"], capture_output=True, text=True, check=True
    ).stdout
    found += [f"iptables {r}" for r in rules.splitlines() if config.chain in r]
    return found


def test_down_leaves_nothing_behind_and_up_after_down_works() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    config = LabConfig(
        directory=Path(f"/tmp/cvlt-{uuid.uuid4().hex[:8]}"),
        name="cvlt",
        subnet=ipaddress.IPv4Network("10.213.1.0/24"),
    )
    other = Lab(config)
    try:
        for _round in range(2):  # up after down works
            status = other.up(workers=1)
            assert status.ready
            assert [n.name for n in status.nodes] == ["manager", "dbhost"]
            assert other.up(workers=1).ready  # up twice is harmless
            client = other.client("manager")
            try:
                client.services.create(APP_V1, name="web", constraints=["node.hostname == dbhost"])
                wait_for(lambda c=client: running_tasks(c, "web"), timeout=30, what="web running")
            finally:
                client.close()
            assert other.down()
            assert _leftovers(config) == []
        assert not other.down()  # nothing left to remove
    finally:
        other.down()
