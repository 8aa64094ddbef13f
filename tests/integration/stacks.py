"""Removing what a test created: everything labelled with its stack, on every node."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from waiting import wait_for

from converge.lab import Lab
from converge.naming import CLUSTER_OWNER_CONFIG, STACK_LABEL

CLEANUP_TIMEOUT = 60.0
NODE_COPY_GRACE = 20.0
LAB_REPAIRS: list[str] = []
"""What the harness repaired in the lab during this session (printed in the run's summary).

Docker Engine 20.10 can leak a node's copy of a removed overlay network: it keeps the network's
load-balancer endpoint ("should be removed, but still has active attachments" in its log) for
good, and only a daemon restart drops the copy. On the loaded lab, a task on such a node of a
network created afterwards (the same stack deployed again) then stayed in ``starting``, its
container's cleanup failing in a loop in the node's log: that is how CI's adoption test came to
wait on a job at 1 of 2 tasks completed.
"""


def _ignore_gone(action: Callable[[], object]) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        action()


def remove_stack(lab: Lab, manager: docker.DockerClient, stack: str) -> None:
    """Remove every object labelled with ``stack``, on the manager and on every node.

    Its containers go first, everywhere; then its networks and volumes. A node that still
    holds a copy of one of its networks ``NODE_COPY_GRACE`` seconds later has leaked it (see
    ``LAB_REPAIRS``) and has its daemon restarted.
    """
    filters = {"label": f"{STACK_LABEL}={stack}"}
    for service in manager.services.list(filters=filters):
        _ignore_gone(service.remove)
    for kind in (manager.configs, manager.secrets):
        for item in kind.list(filters=filters):
            _ignore_gone(item.remove)
    # The manager first: it is the one that removes swarm-scoped networks.
    names = [name for name in lab.nodes() if lab.is_running(name)]
    clients = [lab.client(name, timeout=30) for name in names]
    try:

        def leftovers() -> list[str]:
            left: list[str] = []
            for client in clients:
                for container in client.containers.list(all=True, filters=filters):
                    # Removed on every look, not once: the swarm agent may be removing it when
                    # asked (refused), then leave it, as it does a finished job's container.
                    left.append(container.name or "")
                    with contextlib.suppress(docker.errors.APIError):
                        container.remove(force=True)
            if left:  # networks only once no task of the stack is left on any node
                return left
            for client in clients:
                for network in client.networks.list(filters=filters):
                    # Swarm networks are removed on the manager; the nodes' copies are waited
                    # for below.
                    if network.attrs.get("Scope") == "swarm" and client is not clients[0]:
                        continue
                    try:
                        network.remove()
                    except docker.errors.NotFound:
                        continue
                    except docker.errors.APIError:
                        pass
                    # Removed or not, it counts until the list drops it: the manager's store
                    # lags a removal, and a plan made meanwhile would still see it.
                    left.append(network.name or "")
                for volume in client.volumes.list(filters=filters):
                    try:
                        volume.remove(force=True)
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError:
                        left.append(volume.name)
            return left

        remaining: list[str] = []

        def cleared() -> bool:
            remaining[:] = leftovers()
            return not remaining

        try:
            wait_for(cleared, timeout=CLEANUP_TIMEOUT, what=f"the objects of stack {stack} to go")
        except AssertionError as error:
            raise AssertionError(f"{error}; still there: {', '.join(remaining)}") from None

        def holding() -> dict[str, list[str]]:
            return {
                name: held
                for name, client in zip(names[1:], clients[1:], strict=True)
                if (
                    held := [
                        network.name or ""
                        for network in client.networks.list(filters=filters)
                        if network.attrs.get("Scope") == "swarm"
                    ]
                )
            }

        with contextlib.suppress(AssertionError):
            wait_for(
                lambda: not holding(),
                timeout=NODE_COPY_GRACE,
                what=f"every node to drop its copies of stack {stack}'s networks",
            )
        for name, held in holding().items():
            restart_leaking_node(lab, name, f"kept {', '.join(held)} after its stack was removed")
    finally:
        for client in clients:
            client.close()


def stale_network_copies(lab: Lab, manager: docker.DockerClient) -> dict[str, list[str]]:
    """Node name -> the swarm networks it still holds that the manager no longer has."""
    known = {network["Id"] for network in manager.api.networks()}
    stale: dict[str, list[str]] = {}
    for name in lab.nodes()[1:]:
        if not lab.is_running(name):
            continue
        client = lab.client(name, timeout=30)
        try:
            held = [
                network["Name"]
                for network in client.api.networks(filters={"driver": "overlay"})
                if network.get("Scope") == "swarm" and network["Id"] not in known
            ]
        finally:
            client.close()
        if held:
            stale[name] = held
    return stale


def restart_leaking_node(lab: Lab, name: str, what: str) -> None:
    """Restart node ``name``'s daemon (same data, same node id), which drops the network
    copies it leaked, and record it in ``LAB_REPAIRS``."""
    lab.stop_node(name)
    lab.start_node(name)
    LAB_REPAIRS.append(f"{name}: {what}; its daemon was restarted")


def restore_node_specs(manager: docker.DockerClient, specs: dict[str, dict[str, Any]]) -> None:
    """Put back the spec of every node whose labels, availability or role a test changed."""
    for node in manager.nodes.list():
        before = specs.get(node.id)
        if before is not None and node.attrs["Spec"] != before:
            node.update(before)


def cluster_owner_configs(client: docker.DockerClient) -> list[Any]:
    """The config objects that record which cluster spec owns the nodes (one at most)."""
    return [
        config
        for config in client.configs.list(filters={"name": CLUSTER_OWNER_CONFIG})
        if config.name == CLUSTER_OWNER_CONFIG
    ]
