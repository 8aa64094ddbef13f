"""Is every node of the shared lab still able to run a task that the others can reach?

The integration tests kill nodes, cut links and SIGKILL converge mid-change. Docker Engine
20.10 sometimes keeps a node Ready after such a fault while it no longer starts tasks or its
overlay peers no longer reach them; every later test of the session then fails for a reason
of the lab, not of converge. Before each test module the harness runs a small global service
on a fresh overlay network, reaches each node's task from the manager by its address from
Docker's DNS, and restarts the daemon of a node that fails (same data, same node id).
"""

from __future__ import annotations

import contextlib
import re
import uuid

import docker
import docker.errors
import docker.types
from stacks import remove_stack, restart_leaking_node, stale_network_copies
from waiting import wait_for

from converge.lab import Lab
from converge.naming import STACK_LABEL

PROBE_IMAGE = "converge-lab/app:v1"
PROBE_TIMEOUT = 60.0


def _active_nodes(client: docker.DockerClient) -> dict[str, str]:
    """Node id -> hostname of the nodes the scheduler may use."""
    return {
        node["ID"]: node["Description"]["Hostname"]
        for node in client.api.nodes()
        if node["Status"]["State"] == "ready" and node["Spec"].get("Availability") == "active"
    }


def _running_addresses(client: docker.DockerClient, service: str) -> dict[str, str]:
    """Node id -> the overlay address of the service's running task there."""
    found = {}
    for task in client.api.tasks(filters={"service": service, "desired-state": "running"}):
        if task["Status"]["State"] != "running":
            continue
        for attachment in task.get("NetworksAttachments") or []:
            if attachment["Network"]["Spec"]["Name"] == service:
                found[task["NodeID"]] = attachment["Addresses"][0].split("/")[0]
    return found


def _reach(
    client: docker.DockerClient, network: str, addresses: list[str]
) -> tuple[set[str], set[str]]:
    """From a container on the manager: the addresses Docker's DNS gives for the service's
    tasks, and those of ``addresses`` that answer HTTP."""
    script = f"nslookup tasks.{network} 127.0.0.11 2>/dev/null | grep -A20 '^Name:'; " + "".join(
        f"for try in 1 2 3; do timeout 3 wget -qO- http://{address}/version >/dev/null "
        f"&& echo OK {address} && break; sleep 1; done; "
        for address in addresses
    )
    output = client.containers.run(
        PROBE_IMAGE,
        ["sh", "-c", script + "true"],
        network=network,
        remove=True,
        labels={STACK_LABEL: network},
    )
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    listed = set(re.findall(r"^Address(?: \d+)?:\s*([0-9.]+)", text, re.MULTILINE))
    answered = set(re.findall(r"^OK ([0-9.]+)$", text, re.MULTILINE))
    return listed, answered


def failing_nodes(lab: Lab, client: docker.DockerClient) -> dict[str, str]:
    """Hostname -> what failed, for each active node that cannot run a reachable task."""
    name = f"labprobe{uuid.uuid4().hex[:8]}"
    labels = {STACK_LABEL: name}
    try:
        client.networks.create(name, driver="overlay", attachable=True, labels=labels)
        client.services.create(
            PROBE_IMAGE,
            name=name,
            networks=[name],
            mode=docker.types.ServiceMode("global"),
            labels=labels,
            container_labels=labels,
        )
        nodes = _active_nodes(client)
        with contextlib.suppress(AssertionError):  # the nodes without a running task are named
            wait_for(
                lambda: set(_running_addresses(client, name)) >= set(nodes),
                timeout=PROBE_TIMEOUT,
                what="the probe's task to run on every node",
                interval=0.5,
            )
        addresses = _running_addresses(client, name)
        problems = {
            hostname: "its task of a global service did not start"
            for node_id, hostname in nodes.items()
            if node_id not in addresses
        }
        try:
            listed, answered = _reach(client, name, list(addresses.values()))
        except docker.errors.APIError as error:
            # Seen after a drain: "attaching to network failed ... context deadline exceeded".
            manager = str(client.info().get("Name", "manager"))
            problems[manager] = f"a container on it could not join an overlay network: {error}"
            return problems
        for node_id, address in addresses.items():
            hostname = nodes.get(node_id, node_id)
            if address not in answered:
                problems[hostname] = f"its task at {address} did not answer the manager"
            elif address not in listed:
                problems[hostname] = f"the manager's DNS does not list its task at {address}"
        return problems
    finally:
        remove_stack(lab, client, name)


def heal(lab: Lab, client: docker.DockerClient) -> list[str]:
    """Restart the daemon of each node that holds a leaked network copy or fails the probe
    twice; what was found and done (a leaked copy is recorded in ``LAB_REPAIRS`` only)."""
    for name, held in stale_network_copies(lab, client).items():
        restart_leaking_node(lab, name, f"held {', '.join(held)}, gone from the swarm")
    problems = failing_nodes(lab, client)
    if problems:  # a node just restarted by a test may need a moment: only a failure seen twice
        again = failing_nodes(lab, client)
        problems = {host: problem for host, problem in problems.items() if host in again}
    for hostname in problems:
        lab.stop_node(hostname)
        lab.start_node(hostname)
    if not problems:
        return []
    after = failing_nodes(lab, client)
    found = [f"{host}: {problem}" for host, problem in problems.items()]
    return found + [
        f"after restarting it, {host} still: {problem}" for host, problem in after.items()
    ]
