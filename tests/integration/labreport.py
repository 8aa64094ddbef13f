"""What the lab looked like when an integration test failed, for the failure's report.

A CI log is often all there is of a failed run: the nodes' state, the tasks the swarm could
not run (with the engine's own reason), the disk and the memory tell a broken lab from a
broken converge without a second run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any

from converge.lab import Lab

TASK_LINES = 15
NETWORK_LIMIT = 10
_BAD_STATES = {"failed", "rejected", "orphaned"}


def _node_lines(nodes: Iterable[dict[str, Any]], lab: Lab) -> list[str]:
    lines = []
    for node in nodes:
        hostname = node["Description"]["Hostname"]
        status = node.get("Status", {})
        manager = node.get("ManagerStatus", {}).get("Reachability", "")
        process = "daemon running" if lab.is_running(hostname) else "daemon NOT running"
        lines.append(
            f"  node {hostname}: {status.get('State')} {node['Spec'].get('Availability')}"
            f"{' manager ' + manager if manager else ''}; {process}"
            f"{'; ' + status['Message'] if status.get('Message') else ''}"
        )
    return lines


def _task_lines(
    tasks: Iterable[dict[str, Any]], services: dict[str, str], hosts: dict[str, str]
) -> list[str]:
    stuck = [
        task
        for task in tasks
        if (
            task["DesiredState"] in {"running", "complete"}
            and task["Status"]["State"] not in {"running", "complete"}
        )
        or task["Status"]["State"] in _BAD_STATES
    ]
    stuck.sort(key=lambda task: task["Status"].get("Timestamp", ""), reverse=True)
    lines = [
        f"  task {services.get(task['ServiceID'], task['ServiceID'][:12])}"
        f".{task.get('Slot', '')} on {hosts.get(task.get('NodeID', ''), '-')}: "
        f"{task['Status']['State']} (desired {task['DesiredState']}) at "
        f"{task['Status'].get('Timestamp', '')[:19]}: "
        f"{task['Status'].get('Err') or task['Status'].get('Message', '')}"
        for task in stuck[:TASK_LINES]
    ]
    if len(stuck) > TASK_LINES:
        lines.append(f"  ... and {len(stuck) - TASK_LINES} more tasks not running")
    return lines


def _peer_lines(api: Any) -> list[str]:
    """Each overlay network's gossip peers as the manager sees them: a node missing there is
    one whose tasks the others' DNS and routing no longer know."""
    lines = []
    for summary in api.networks(filters={"driver": "overlay"})[:NETWORK_LIMIT]:
        if summary["Name"] == "ingress":
            continue
        network = api.inspect_network(summary["Id"], verbose=True)
        peers = sorted(peer.get("Name", "?") for peer in network.get("Peers") or [])
        services = (network.get("Services") or {}).values()
        tasks = sum(len(service.get("Tasks") or []) for service in services)
        listed = ", ".join(peers) or "none"
        lines.append(f"  network {summary['Name']}: {tasks} tasks, peers {listed}")
    return lines


def _machine_lines(lab: Lab) -> list[str]:
    usage = shutil.disk_usage(lab.config.directory)
    available = "?"
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                available = f"{int(line.split()[1]) // 1024} MiB"
    return [
        f"  machine: load {' '.join(f'{x:.1f}' for x in os.getloadavg())}; memory available "
        f"{available}; disk free {usage.free // 2**20} MiB of {usage.total // 2**20} MiB"
    ]


def lab_report(lab: Lab) -> str:
    """Nodes, tasks not running and the machine's resources; never raises."""
    lines: list[str] = []
    try:
        lines += _machine_lines(lab)
        client = lab.client(timeout=10)
        try:
            nodes = client.api.nodes()
            lines += _node_lines(nodes, lab)
            hosts = {node["ID"]: node["Description"]["Hostname"] for node in nodes}
            services = {service["ID"]: service["Spec"]["Name"] for service in client.api.services()}
            lines += _task_lines(client.api.tasks(), services, hosts)
            lines += _peer_lines(client.api)
        finally:
            client.close()
    except Exception as error:  # a report must never hide the failure it explains
        lines.append(f"  (the lab could not be read: {type(error).__name__}: {error})")
    return "\n".join(lines)
