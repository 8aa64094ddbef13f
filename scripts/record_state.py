"""Record real Engine API JSON from the lab swarm for the plan fixture tests.

Writes two recordings into tests/fixtures/recorded/:

- ``empty.json``: the swarm before anything of ours exists (nodes and built-in networks);
- ``fxrec.json``: after the compose file ``tests/fixtures/recorded/fxrec.yml`` was created in
  exactly the shape ``converge apply`` (and ``docker stack deploy``) uses
  (``network_create_body`` and ``service_engine_spec`` payloads POSTed through the SDK's
  low-level client), with a few hand changes made the way an operator would
  (``docker service update --image ...@sha256:...``, a constraint respelt ``==``), plus
  ``fxrec_hand``, an unowned service made with ``docker service create``.

Nodes are recorded as the lab has them: at the last recording the workers carried the label
``type=mvc`` (set by the exampleapp stack), and the plan fixtures' expected files assume so;
check ``git diff tests/fixtures/plans`` after re-recording and rewriting them.

Only objects named ``fx*`` (and the engine's built-in networks) are kept, so services other
people run on the lab never leak into the fixtures; node TLS certificates and plugin lists are
dropped (nothing reads them). Everything created is removed again, even on failure.

Usage: DOCKER_HOST=unix:///var/lib/converge-lab/nodes/manager/docker.sock \
    .venv/bin/python scripts/record_state.py
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors

from converge.engine_spec import (
    network_create_body,
    service_engine_spec,
)
from converge.lab.layout import DEFAULT_SUBNET
from converge.loader import load_spec

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
SPEC_FILE = RECORDED / "fxrec.yml"
ENVIRON = {"DB_PASSWORD": "s3cret-fixture-password"}
API_VERSION = "1.41"
BUILTIN_NETWORKS = frozenset({"ingress", "bridge", "host", "none", "docker_gwbridge"})
PREFIX = "fx"
# A digest the way `docker service update --image` writes one after resolving the tag.
PIN_DIGEST = "sha256:83d195e8e72f35491711978f041e7d291166df0f3c0d0c2c31c7984cb896b9b9"
HAND_SERVICE = "fxrec_hand"
HAND_CREATE = [
    "service", "create", "--no-resolve-image", "--detach", "--quiet",
    "--name", HAND_SERVICE,
    "--replicas", "2",
    "--publish", "39090:80",
    "--env", "MODE=hand",
    "--env", "OWNER=operator",
    "--constraint", "node.role==worker",
    "--mount", "type=tmpfs,target=/cache",
    "--limit-memory", "32M",
    "--update-parallelism", "3",
    "--label", "made-by=hand",
    "converge-lab/app:v1",
]  # fmt: skip
HAND_CHANGES = [
    ["service", "update", "--no-resolve-image", "--detach", "--quiet",
     "--image", f"converge-lab/app:v2@{PIN_DIGEST}", "fxrec_pinned"],
    ["service", "update", "--no-resolve-image", "--detach", "--quiet",
     "--constraint-rm", "node.labels.type == mvc",
     "--constraint-add", "node.labels.type==mvc", "fxrec_labelled"],
]  # fmt: skip


def docker_cli(*args: str) -> str:
    done = subprocess.run(["docker", *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def ours(name: str) -> bool:
    return name.startswith(PREFIX)


def record(client: docker.APIClient) -> dict[str, Any]:
    """The four list responses the observer reads, kept to the lab's built-ins and fx objects."""
    nodes = client.nodes()
    for node in nodes:
        description = node.get("Description") or {}
        description.pop("TLSInfo", None)
        (description.get("Engine") or {}).pop("Plugins", None)
    networks = [
        network
        for network in client.networks()
        if network["Name"] in BUILTIN_NETWORKS or ours(network["Name"])
    ]
    services = [
        service for service in client.services(status=True) if ours(service["Spec"]["Name"])
    ]
    ids = {service["ID"] for service in services}
    tasks = [task for task in client.tasks() if task.get("ServiceID") in ids]
    manager = client.info()["Name"]
    return {
        "manager": manager,
        "nodes": sorted(nodes, key=lambda node: node["Description"]["Hostname"]),
        "networks": sorted(networks, key=lambda network: network["Name"]),
        "services": sorted(services, key=lambda service: service["Spec"]["Name"]),
        "tasks": sorted(tasks, key=lambda task: (task["ServiceID"], task.get("Slot") or 0)),
    }


def write(name: str, recording: dict[str, Any]) -> None:
    path = RECORDED / f"{name}.json"
    text = json.dumps(recording, indent=1, sort_keys=True) + "\n"
    # Node addresses as the default lab has them, whichever lab (CONVERGE_LAB_SUBNET) recorded.
    lab = ipaddress.IPv4Network(os.environ.get("CONVERGE_LAB_SUBNET") or DEFAULT_SUBNET)
    default = ipaddress.IPv4Network(DEFAULT_SUBNET)
    prefix, default_prefix = (str(net.network_address).rsplit(".", 1)[0] for net in (lab, default))
    text = text.replace(f'"{prefix}.', f'"{default_prefix}.')
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def wait_until_settled(client: docker.APIClient, timeout: float = 90.0) -> None:
    """Every fx service runs its desired tasks, and no task is still on its way."""
    deadline = time.monotonic() + timeout
    while True:
        services = [s for s in client.services(status=True) if ours(s["Spec"]["Name"])]
        ids = {service["ID"] for service in services}
        tasks = [task for task in client.tasks() if task.get("ServiceID") in ids]
        running = all(
            (s.get("ServiceStatus") or {}).get("RunningTasks")
            == (s.get("ServiceStatus") or {}).get("DesiredTasks")
            for s in services
        )
        moving = [
            task
            for task in tasks
            if task["DesiredState"] == "running" and task["Status"]["State"] != "running"
        ]
        if running and not moving:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the fx services did not settle in {timeout:.0f}s")
        time.sleep(1)


def create(client: docker.APIClient) -> None:
    loaded = load_spec([SPEC_FILE], environ=ENVIRON)
    spec = loaded.spec
    for key, network in spec.stack_networks().items():
        if network.external:
            continue
        body = {"Name": spec.network_name(key), **network_create_body(spec, key)}
        client._post_json(client._url("/networks/create"), data=body).raise_for_status()
    for key in spec.services:
        payload = service_engine_spec(spec, key)
        response = client._post_json(client._url("/services/create"), data=payload)
        response.raise_for_status()
    docker_cli(*HAND_CREATE)
    for change in HAND_CHANGES:
        docker_cli(*change)


def clean_up(client: docker.APIClient) -> None:
    for service in client.services():
        if ours(service["Spec"]["Name"]):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_service(service["ID"])
    # Named volumes live on the node that ran the task; each node has its own engine.
    sockets = Path(os.environ["DOCKER_HOST"].removeprefix("unix://")).parents[1]
    deadline = time.monotonic() + 60
    while True:
        left: list[str] = []
        for network in client.networks():
            if ours(network["Name"]) and network.get("Scope") == "swarm":
                try:
                    client.remove_network(network["Id"])
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError:
                    left.append(network["Name"])
        for node_dir in sorted(sockets.iterdir()):
            node = docker.APIClient(base_url=f"unix://{node_dir / 'docker.sock'}", timeout=30)
            try:
                for container in node.containers(all=True):
                    if any(ours(name.lstrip("/")) for name in container["Names"]):
                        left.append(container["Names"][0])
                for volume in node.volumes().get("Volumes") or []:
                    if ours(volume["Name"]):
                        try:
                            node.remove_volume(volume["Name"], force=True)
                        except docker.errors.APIError:
                            left.append(f"{node_dir.name}:{volume['Name']}")
            finally:
                node.close()
        if not left:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"could not remove: {', '.join(sorted(set(left)))}")
        time.sleep(1)


def main() -> int:
    host = os.environ.get("DOCKER_HOST", "")
    if not host.startswith("unix://"):
        print("set DOCKER_HOST to the lab manager's socket", file=sys.stderr)
        return 1
    client = docker.APIClient(base_url=host, version=API_VERSION)
    try:
        if any(ours(service["Spec"]["Name"]) for service in client.services()):
            print("fx services exist already: cleaning them up first", file=sys.stderr)
            clean_up(client)
        write("empty", record(client))
        try:
            create(client)
            wait_until_settled(client)
            write("fxrec", record(client))
        finally:
            clean_up(client)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
