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


def _ignore_gone(action: Callable[[], object]) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        action()


def remove_stack(lab: Lab, manager: docker.DockerClient, stack: str) -> None:
    """Remove every object labelled with ``stack``, on the manager and on every node."""
    filters = {"label": f"{STACK_LABEL}={stack}"}
    for service in manager.services.list(filters=filters):
        _ignore_gone(service.remove)
    for kind in (manager.configs, manager.secrets):
        for item in kind.list(filters=filters):
            _ignore_gone(item.remove)
    # The manager first: it is the one that removes swarm-scoped networks.
    clients = [lab.client(name, timeout=30) for name in lab.nodes() if lab.is_running(name)]
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
                for network in client.networks.list(filters=filters):
                    # Swarm networks are removed on the manager; workers drop their copies.
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
    finally:
        for client in clients:
            client.close()


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
