"""The external load balancer, pure: haproxy.cfg rendering and the container's desired view.

The load balancer is a plain container (not a swarm service) on one node, running HAProxy
with the configuration rendered here. Nothing in this module does I/O: the container is read
and written by ``converge.lb.container``; ``diff`` compares ``desired_view`` with the observed
view and the planner decides between a reload (only the config differs) and a recreate.

Backend methods, per backend:

    ingress  every node's address : the service's published port (the routing mesh)
    tasks    the nodes running the service's tasks, host-mode published port; recomputed
             from the observed task placement whenever apply runs; the other ready, active
             nodes the service may run on are ``backup`` servers, used while every node that
             ran a task lost it (a rolling update that moved them all)
    dns      the container joins the service's attachable overlay network; ``server-template``
             over ``tasks.<stack>_<service>`` resolved by Docker's DNS (127.0.0.11)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from converge.checks import NodeFacts, evaluate_constraint
from converge.health import running_tasks
from converge.naming import (
    CONVERGE_IMAGE_LABEL,
    LB_LABEL,
    ROLLOUT_RUNTIME_PORT,
    ROLLOUT_SUFFIX,
    candidate_name,
    object_name,
    ownership_labels,
)
from converge.normalize import canonical_image
from converge.spec import LoadBalancerBackend, LoadBalancerSpec, Spec
from converge.state import ObservedNode, ObservedState

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "CONFIG_PATH",
    "HOME_WEIGHT",
    "RELOAD_SIGNAL",
    "REPLACE_FIELDS",
    "Server",
    "backend_servers",
    "container_body",
    "container_name",
    "desired_view",
    "dns_networks",
    "follows_placement",
    "haproxy_duration",
    "loadbalancer_findings",
    "observed_view",
    "render_config",
    "rolls_out",
    "server_names",
]

CONFIG_DIR = "/usr/local/etc/haproxy"
CONFIG_FILE = "haproxy.cfg"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"
RELOAD_SIGNAL = "SIGUSR2"
"""``haproxy -W`` (master-worker): the master re-reads its config and replaces its workers."""
REPLACE_FIELDS = frozenset({"image", "node", "ports", "networks", "running"})
"""Fields of the view a running container cannot change: they recreate it."""

_DEFAULT_NETWORKS = frozenset({"bridge", "host", "none"})
_RESOLVERS = "docker"
# What HAProxy retries, on another server (http mode): no connection, and answers a stopping
# task cut short before any byte reached the client.
_RETRY_ON = ("conn-failure", "empty-response", "junk-response", "response-timeout")
_INDENT = "    "


@dataclass(frozen=True)
class Server:
    """One ``server`` line: a name and where it listens."""

    name: str
    address: str
    port: int
    backup: bool = False


HOME_WEIGHT = 100
"""The configured weight of a rollout backend's servers of the running version."""


def rolls_out(spec: Spec, key: str) -> bool:
    """Whether service ``key`` is released blue-green or canary (through this balancer)."""
    service = spec.services.get(key)
    return service is not None and service.x_converge.rollout.strategy != "rolling"


def container_name(stack: str, balancer: LoadBalancerSpec) -> str:
    """``<stack>_<name>``, as every other object of the stack."""
    return object_name(stack, balancer.name)


def haproxy_duration(nanoseconds: int) -> str:
    """A duration as HAProxy reads it: whole seconds as ``5s``, anything else in ms."""
    second, millisecond = 1_000_000_000, 1_000_000
    if nanoseconds % second == 0:
        return f"{nanoseconds // second}s"
    return f"{max(1, -(-nanoseconds // millisecond))}ms"


def _backend_network(spec: Spec, backend: LoadBalancerBackend) -> str | None:
    if backend.network is not None:
        return backend.network
    if backend.service not in spec.services:
        return None
    return next(iter(spec.service_networks(backend.service)), None)


def dns_networks(spec: Spec) -> list[str]:
    """The engine names of the networks the container joins (those of dns backends), sorted."""
    if spec.loadbalancer is None:
        return []
    names = {
        spec.network_name(network)
        for backend in spec.loadbalancer.backends.values()
        if backend.method == "dns" and (network := _backend_network(spec, backend)) is not None
    }
    return sorted(names)


def follows_placement(spec: Spec) -> frozenset[str]:
    """Keys of the services whose task placement decides a backend's servers (tasks method)."""
    if spec.loadbalancer is None:
        return frozenset()
    return frozenset(
        backend.service
        for backend in spec.loadbalancer.backends.values()
        if backend.method == "tasks"
    )


def backend_servers(spec: Spec, key: str, observed: ObservedState | None) -> list[Server] | None:
    """The servers of backend ``key``: None for the dns method (a ``server-template``).

    Without an observation (``lb render --offline``) ingress servers are the spec's node
    hostnames and tasks servers are unknown (an empty list).
    """
    assert spec.loadbalancer is not None
    backend = spec.loadbalancer.backends[key]
    if backend.method == "dns":
        return None
    if observed is None:
        if backend.method == "tasks":
            return []
        return [Server(host, host, backend.port) for host in sorted(spec.nodes)]
    if backend.method == "ingress":
        nodes = sorted(observed.nodes, key=lambda node: node.hostname)
        # Every node answers on an ingress port; a node that is down fails its health check.
        return [
            Server(node.hostname, node.address, backend.port)
            for node in nodes
            if node.address not in ("", "0.0.0.0")
        ]
    service = observed.service_named(object_name(spec.stack, backend.service))
    if service is None:
        return []
    ready = {node.id: node for node in observed.nodes if node.is_ready}
    hosts = {
        ready[task.node_id].hostname: ready[task.node_id].address
        for task in running_tasks(observed, service)
    }
    servers = [Server(host, address, backend.port) for host, address in sorted(hosts.items())]
    declared = spec.services.get(backend.service)
    constraints = declared.deploy.placement.constraints if declared is not None else ()
    spare = sorted(
        (node for node in ready.values() if node.hostname not in hosts),
        key=lambda node: node.hostname,
    )
    servers += [
        Server(node.hostname, node.address, backend.port, backup=True)
        for node in spare
        if node.availability == "active"
        and node.address not in ("", "0.0.0.0")
        and all(evaluate_constraint(item, _facts(node)) for item in constraints)
    ]
    return servers


def _facts(node: ObservedNode) -> NodeFacts:
    return NodeFacts(
        hostname=node.hostname,
        role=node.role,
        labels=node.labels,
        node_id=node.id,
        engine_labels=node.engine_labels,
        os=node.os,
        arch=node.arch,
    )


def render_config(spec: Spec, observed: ObservedState | None) -> str:
    """The haproxy.cfg for ``spec.loadbalancer``, given the swarm as observed.

    Deterministic (no timestamps): the same spec and placement render the same bytes, so a
    re-apply finds nothing to reload.
    """
    balancer = spec.loadbalancer
    if balancer is None:
        raise ValueError("the spec declares no load balancer")
    lines = [
        f"# haproxy.cfg of {container_name(spec.stack, balancer)}, rendered by converge from the "
        f"spec of stack {spec.stack}.",
        "# Do not edit: converge apply overwrites it (validated with haproxy -c, then reloaded).",
        "",
        "global",
        f"{_INDENT}log stdout format raw local0",
    ]
    if any(rolls_out(spec, backend.service) for backend in balancer.backends.values()):
        # Rollouts read counters and move weights here, from inside the container only.
        lines.append(f"{_INDENT}stats socket ipv4@127.0.0.1:{ROLLOUT_RUNTIME_PORT} level admin")
    lines.append("")
    if any(backend.method == "dns" for backend in balancer.backends.values()):
        lines += _resolvers()
    lines += _defaults(balancer)
    for name, frontend in balancer.frontends.items():
        lines += [
            f"frontend {name}",
            f"{_INDENT}bind :{frontend.port}",
            f"{_INDENT}default_backend {frontend.backend}",
            *(f"{_INDENT}{option}" for option in frontend.options),
            "",
        ]
    for name in balancer.backends:
        lines += _backend(spec, name, observed)
    if balancer.stats is not None:
        lines += [
            "listen stats",
            f"{_INDENT}bind :{balancer.stats.port}",
            f"{_INDENT}mode http",
            f"{_INDENT}stats enable",
            f"{_INDENT}stats uri {balancer.stats.uri}",
            f"{_INDENT}stats refresh 10s",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _resolvers() -> list[str]:
    # Swarm takes a stopping task out of DNS 2 s before it stops it (the agent's gossip delay):
    # resolving every second ("hold valid 1s") and dropping a vanished address at once ("hold
    # obsolete 0s") takes the server out of rotation while it still answers. Failed lookups
    # keep the last good answer a while: a busy engine must not empty the backend.
    return [
        f"resolvers {_RESOLVERS}",
        f"{_INDENT}nameserver docker 127.0.0.11:53",
        f"{_INDENT}resolve_retries 3",
        f"{_INDENT}timeout resolve 1s",
        f"{_INDENT}timeout retry 1s",
        f"{_INDENT}hold valid 1s",
        f"{_INDENT}hold obsolete 0s",
        f"{_INDENT}hold nx 1s",
        *(f"{_INDENT}hold {what} 5s" for what in ("other", "refused", "timeout")),
        f"{_INDENT}accepted_payload_size 8192",
        "",
    ]


def _defaults(balancer: LoadBalancerSpec) -> list[str]:
    timeouts = balancer.timeouts
    lines = [
        "defaults",
        f"{_INDENT}mode {balancer.mode}",
        f"{_INDENT}log global",
        f"{_INDENT}option {'httplog' if balancer.mode == 'http' else 'tcplog'}",
        f"{_INDENT}option dontlognull",
    ]
    if balancer.mode == "http":
        lines.append(f"{_INDENT}option forwardfor")
    # A server that fails mid-change (a task stopping) is retried on another one at once: every
    # retry picks another server ("redispatch 1"; the default waits up to 1 s and retries the
    # same one). In http mode a request the stopping task dropped (an empty answer) is retried
    # too; see _backend for the requests that are not.
    lines += [f"{_INDENT}retries 3", f"{_INDENT}option redispatch 1"]
    if balancer.mode == "http":
        lines.append(
            f"{_INDENT}retry-on conn-failure empty-response junk-response response-timeout"
        )
    lines += [
        f"{_INDENT}timeout connect {haproxy_duration(timeouts.connect)}",
        f"{_INDENT}timeout client {haproxy_duration(timeouts.client)}",
        f"{_INDENT}timeout server {haproxy_duration(timeouts.server)}",
        "",
    ]
    return lines


def _backend(spec: Spec, name: str, observed: ObservedState | None) -> list[str]:
    assert spec.loadbalancer is not None
    backend = spec.loadbalancer.backends[name]
    service = object_name(spec.stack, backend.service)
    check = " check" if backend.check else ""
    servers = backend_servers(spec, name, observed)
    lines = [
        f"backend {name}",
        f"{_INDENT}# {backend.method} method: service {service}, port {backend.port}",
        f"{_INDENT}balance {backend.balance}",
    ]
    if backend.check:
        # Checked every second; and one failed connection of real traffic marks a server down
        # at once ("observe layer4"), so a task that went away costs at most one retry.
        lines.append(
            f"{_INDENT}default-server inter 1s fall 2 rise 2 "
            "observe layer4 error-limit 1 on-error mark-down"
        )
    if spec.loadbalancer.mode == "http":
        # A request that changes something may have been carried out before its answer was
        # lost: never send it twice (connection failures are still retried: nothing was sent).
        lines.append(f"{_INDENT}http-request disable-l7-retry if METH_POST || {{ method PATCH }}")
    if any(server.backup for server in servers or []):
        lines.append(f"{_INDENT}option allbackups")
    lines += [f"{_INDENT}{option}" for option in backend.options]
    if servers is None and rolls_out(spec, backend.service):
        # Both versions of a rollout, side by side: the new one's servers carry no traffic
        # until the rollout moves weights through the runtime API (a reload puts them back).
        candidate = candidate_name(spec.stack, backend.service)
        for prefix, target, weight in (
            (name, service, HOME_WEIGHT),
            (f"{name}{ROLLOUT_SUFFIX}", candidate, 0),
        ):
            lines.append(
                f"{_INDENT}server-template {prefix} {backend.max_servers} "
                f"tasks.{target}:{backend.port}{check} resolvers {_RESOLVERS} init-addr none "
                f"weight {weight}"
            )
    elif servers is None:
        lines.append(
            f"{_INDENT}server-template {name} {backend.max_servers} "
            f"tasks.{service}:{backend.port}{check} resolvers {_RESOLVERS} init-addr none"
        )
    else:
        if not any(not server.backup for server in servers):
            where = "no task of it runs" if observed is not None else "filled in from the swarm"
            lines.append(f"{_INDENT}# no servers: {where}")
        lines += [
            f"{_INDENT}server {server.name} {server.address}:{server.port}{check}"
            + (" backup" if server.backup else "")
            for server in servers
        ]
    lines.append("")
    return lines


def _ports(balancer: LoadBalancerSpec) -> list[int]:
    ports = {frontend.port for frontend in balancer.frontends.values()}
    if balancer.stats is not None:
        ports.add(balancer.stats.port)
    return sorted(ports)


def desired_view(spec: Spec, observed: ObservedState | None) -> dict[str, Any]:
    """What the container should be, in the vocabulary ``observed_view`` reads back."""
    balancer = spec.loadbalancer
    if balancer is None:
        raise ValueError("the spec declares no load balancer")
    return {
        "image": canonical_image(balancer.image),
        "node": balancer.node,
        "ports": [f"{port}/tcp" for port in _ports(balancer)],
        "networks": dns_networks(spec),
        "running": True,
        "config": render_config(spec, observed),
    }


def observed_view(container: Mapping[str, Any], node: str, config: str | None) -> dict[str, Any]:
    """The desired view's fields, read from a container's inspect JSON."""
    settings = container.get("Config") or {}
    labels = settings.get("Labels") or {}
    bindings = (container.get("HostConfig") or {}).get("PortBindings") or {}
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        "image": labels.get(CONVERGE_IMAGE_LABEL) or settings.get("Image", ""),
        "node": node,
        "ports": sorted(port for port, binding in bindings.items() if binding),
        "networks": sorted(name for name in networks if name not in _DEFAULT_NETWORKS),
        "running": bool((container.get("State") or {}).get("Running")),
        "config": config,
    }


def container_body(spec: Spec) -> dict[str, Any]:
    """The Engine API ContainerCreate body (the name is a query parameter)."""
    balancer = spec.loadbalancer
    if balancer is None:
        raise ValueError("the spec declares no load balancer")
    ports = [f"{port}/tcp" for port in _ports(balancer)]
    networks = dns_networks(spec)
    body: dict[str, Any] = {
        "Image": balancer.image,
        "Labels": {
            **ownership_labels(spec.stack),
            LB_LABEL: balancer.name,
            CONVERGE_IMAGE_LABEL: balancer.image,
        },
        "ExposedPorts": {port: {} for port in ports},
        "HostConfig": {
            "PortBindings": {port: [{"HostPort": port.split("/")[0]}] for port in ports},
            # A standalone container: the node's engine restarts it after a reboot.
            "RestartPolicy": {"Name": "unless-stopped"},
            "NetworkMode": networks[0] if networks else "bridge",
        },
    }
    if networks:
        # API 1.41 takes one network at creation; the others are connected before start.
        body["NetworkingConfig"] = {"EndpointsConfig": {networks[0]: {}}}
    return body


def loadbalancer_findings(spec: Spec, observed: ObservedState) -> list[tuple[str, str]]:
    """(address, message) errors about where the load balancer would run."""
    balancer = spec.loadbalancer
    if balancer is None:
        return []
    address = f"loadbalancer.{balancer.name}"
    found: list[tuple[str, str]] = []
    engine = observed.loadbalancer_engine
    if balancer.engine is None and engine and engine != balancer.node:
        found.append(
            (
                address,
                f"the load balancer runs on node {balancer.node}, but converge talks to the "
                f"engine of {engine}; set loadbalancer.engine to {balancer.node}'s engine "
                "address (for example ssh://" + balancer.node + ")",
            )
        )
    elif balancer.engine is not None and engine and engine != balancer.node:
        found.append(
            (
                address,
                f"loadbalancer.engine {balancer.engine} is the engine of {engine}, "
                f"not of node {balancer.node}",
            )
        )
    if observed.nodes and observed.node(balancer.node) is None:
        found.append((address, f"node {balancer.node} is not part of the swarm"))
    return found


def server_names(spec: Spec, observed: ObservedState) -> dict[str, list[str]]:
    """Per tasks-method backend, the servers running a task now (for the plan's explanation)."""
    assert spec.loadbalancer is not None
    return {
        name: [
            server.name
            for server in backend_servers(spec, name, observed) or []
            if not server.backup
        ]
        for name, backend in spec.loadbalancer.backends.items()
        if backend.method == "tasks"
    }
