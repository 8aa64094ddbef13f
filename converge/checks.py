"""Validation beyond types: references between objects, port clashes, and static placement.

``check_spec`` is pure: it returns ``(field path, message)`` pairs and the loader turns them into
located problems. The placement check evaluates every service's constraints against the nodes
the spec declares, after the spec's own labels and availability apply, so a service that could
never be scheduled is caught before anything touches a swarm.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import ip_network

from converge.engine_spec import service_engine_spec
from converge.fileobjects import FileKind, stack_name
from converge.naming import ROLLOUT_RUNTIME_PORT, ROLLOUT_SUFFIX
from converge.ordering import dangling_dependencies, dependency_cycle
from converge.spec import (
    DEFAULT_NETWORK,
    FileReference,
    NodeSpec,
    ServiceSpec,
    Spec,
    parse_constraint,
)

__all__ = [
    "ENGINE_SPEC_LIMIT",
    "NodeFacts",
    "check_spec",
    "evaluate_constraint",
    "node_facts_from_spec",
]

ENGINE_SPEC_LIMIT = 4 * 1024 * 1024
"""The largest service spec the engine takes: the Engine API hands it to the swarm manager in
one gRPC message, and the manager refuses messages above 4 MiB (measured against the JSON
converge sends, which is a little larger than the message)."""

FieldProblem = tuple[tuple[str | int, ...], str]
"""A problem of a spec: the field path it is about and the message; the loader adds the file
and line (``SpecProblem``)."""


@dataclass(frozen=True)
class NodeFacts:
    """What placement can know about a node; ``None`` means unknown (could match anything)."""

    hostname: str
    role: str | None
    labels: Mapping[str, str] | None
    node_id: str | None = None
    engine_labels: Mapping[str, str] | None = None
    os: str | None = None
    arch: str | None = None


def node_facts_from_spec(hostname: str, node: NodeSpec) -> NodeFacts:
    """The facts a spec declares about one node."""
    return NodeFacts(hostname=hostname, role=node.role, labels=node.labels)


def evaluate_constraint(constraint: str, node: NodeFacts) -> bool | None:
    """Whether ``node`` satisfies ``constraint``: True, False, or None when unknowable.

    A label the node does not carry satisfies ``!=`` and fails ``==``, as in swarmkit.
    """
    key, operator, expected = parse_constraint(constraint)
    actual: str | None
    if key == "node.hostname":
        actual = node.hostname
    elif key == "node.role":
        actual = node.role
    elif key == "node.id":
        actual = node.node_id
    elif key == "node.platform.os":
        actual = node.os
    elif key == "node.platform.arch":
        actual = node.arch
    else:
        labels = node.labels if key.startswith("node.labels.") else node.engine_labels
        if labels is None:
            return None
        name = key.split(".", 2)[2]
        if name not in labels:
            return operator == "!="
        actual = labels[name]
    if actual is None:
        return None
    matches = actual.lower() == expected.lower() if key == "node.hostname" else actual == expected
    return matches if operator == "==" else not matches


def check_spec(spec: Spec, source_sizes: Mapping[str, int] | None = None) -> list[FieldProblem]:
    """Every cross-object problem of a type-valid spec, in a stable order.

    Args:
        spec: the spec.
        source_sizes: for each service key, at most how many characters of source its data
            came from (its text in the files, plus what interpolation, ``env_file`` and the
            environment added); with it, a service far below the engine's size limit is not
            converted to check its size (``_size_bound``). Without it, every service is.
    """
    problems = [
        *_check_references(spec),
        *_check_file_objects(spec),
        *_check_dependencies(spec),
        *_check_not_yet_supported(spec),
        *_check_published_ports(spec),
        *_check_endpoint_mode(spec),
        *_check_subnets(spec),
        *_check_nodes(spec),
        *_check_placement(spec),
        *_check_loadbalancer(spec),
        *_check_rollouts(spec),
    ]
    # The engine payloads are built only from a spec whose references hold.
    return problems or list(_check_service_sizes(spec, source_sizes))


def _check_references(spec: Spec) -> Iterator[FieldProblem]:
    for name, service in spec.services.items():
        for network in service.networks:
            if network not in spec.networks and network != DEFAULT_NETWORK:
                yield (
                    ("services", name, "networks", network),
                    f"network {network!r} is not declared under 'networks'"
                    + _suggestion(network, spec.networks),
                )
        for index, mount in enumerate(service.volumes):
            if mount.type == "volume" and mount.source and mount.source not in spec.volumes:
                yield (
                    ("services", name, "volumes", index),
                    f"volume {mount.source!r} is not declared under 'volumes'"
                    + _suggestion(mount.source, spec.volumes),
                )
        for kind in ("secrets", "configs"):
            declared = getattr(spec, kind)
            for index, reference in enumerate(getattr(service, kind)):
                if reference.source not in declared:
                    yield (
                        ("services", name, kind, index),
                        f"{kind[:-1]} {reference.source!r} is not declared under {kind!r}"
                        + _suggestion(reference.source, declared),
                    )


def _check_dependencies(spec: Spec) -> Iterator[FieldProblem]:
    dangling = dangling_dependencies(spec)
    for key, dependency in dangling:
        yield (
            ("services", key, "depends_on", dependency),
            f"service {dependency!r} is not a service of this stack"
            + _suggestion(dependency, spec.services),
        )
    for key, service in spec.services.items():
        for name, entry in service.depends_on.items():
            target = spec.services.get(name)
            if (
                entry.condition == "service_completed_successfully"
                and target is not None
                and not target.deploy.is_job
            ):
                yield (
                    ("services", key, "depends_on", name, "condition"),
                    f"service {name!r} is not a job (deploy.mode replicated-job or "
                    "global-job): a swarm restarts the tasks of other services, so they never "
                    "complete",
                )
    if dangling:
        return
    cycle = dependency_cycle(spec)
    if cycle is not None:
        yield (
            ("services", cycle[0], "depends_on", cycle[1]),
            "depends_on makes a cycle: " + " -> ".join(cycle),
        )


def _check_file_objects(spec: Spec) -> Iterator[FieldProblem]:
    """What a secret or config may say: compose's ``content`` is for configs (a secret's value
    never sits in the file), and secret drivers (plugins) are not supported."""
    for key, secret in spec.secrets.items():
        if secret.content is not None:
            yield (
                ("secrets", key, "content"),
                "a secret's value never sits in the file: use file, environment, "
                "x-converge.age or x-converge.command",
            )
    for kind in ("secrets", "configs"):
        for key, declared in getattr(spec, kind).items():
            if declared.driver is not None:
                yield (
                    (kind, key, "driver"),
                    f"{kind[:-1]} drivers (plugins) are not supported by converge yet",
                )
            if declared.template_driver not in (None, "golang"):
                yield (
                    (kind, key, "template_driver"),
                    f"template_driver {declared.template_driver!r} is unknown; the engine "
                    "knows 'golang'",
                )


def _check_not_yet_supported(spec: Spec) -> Iterator[FieldProblem]:
    for name, service in spec.services.items():
        if service.healthcheck is not None and service.healthcheck.start_interval is not None:
            yield (
                ("services", name, "healthcheck", "start_interval"),
                "start_interval needs Engine API 1.44 (Docker 25); converge speaks API 1.41, "
                "where the engine ignores it",
            )
        if service.credential_spec is not None and service.credential_spec.config:
            yield (
                ("services", name, "credential_spec", "config"),
                "a credential spec from a config is not supported by converge yet",
            )


def _check_published_ports(spec: Spec) -> Iterator[FieldProblem]:
    owners: dict[tuple[int, str], str] = {}
    for name, service in spec.services.items():
        for index, port in enumerate(service.ports):
            if port.published is None:
                continue
            key = (port.published, port.effective_protocol)
            if key in owners:
                yield (
                    ("services", name, "ports", index),
                    f"port {port.published}/{port.effective_protocol} is already published by "
                    f"service {owners[key]!r}",
                )
            else:
                owners[key] = name


def _check_subnets(spec: Spec) -> Iterator[FieldProblem]:
    """Two networks of one stack with overlapping subnets: the engine creates both, and the
    tasks on the second wait in New for an address it cannot give."""
    seen: list[tuple[str, str]] = []
    for key, network in spec.networks.items():
        if network.external or network.ipam is None:
            continue
        for index, pool in enumerate(network.ipam.config):
            for other, subnet in seen:
                if ip_network(pool.subnet).overlaps(ip_network(subnet)):
                    yield (
                        ("networks", key, "ipam", "config", index, "subnet"),
                        f"subnet {pool.subnet} overlaps {subnet} of network {other!r}",
                    )
            seen.append((key, pool.subnet))


def _check_endpoint_mode(spec: Spec) -> Iterator[FieldProblem]:
    """The engine refuses dnsrr with a port on the routing mesh, but only when it creates the
    service, after other objects of the stack were written: refuse it before anything is."""
    for name, service in spec.services.items():
        if service.deploy.endpoint_mode != "dnsrr":
            continue
        for index, port in enumerate(service.ports):
            if port.published is not None and port.effective_mode == "ingress":
                yield (
                    ("services", name, "ports", index),
                    f"port {port.published} is published on the routing mesh (ingress), which "
                    "endpoint_mode dnsrr does not support: publish it with mode: host",
                )


def _check_service_sizes(
    spec: Spec, source_sizes: Mapping[str, int] | None
) -> Iterator[FieldProblem]:
    """A service the engine would refuse for its size, found before anything is written.

    Converting every service to measure it was most of the time checking a large spec takes,
    so a service whose size is bounded well below the limit by ``_size_bound`` is not
    converted; any other one is, and measured exactly."""
    names: dict[tuple[str, str], int] = {}
    for name in spec.services:
        source_size = None if source_sizes is None else source_sizes.get(name)
        if (
            source_size is not None
            and _size_bound(spec, name, source_size, names) <= ENGINE_SPEC_LIMIT
        ):
            continue
        body = json.dumps(service_engine_spec(spec, name), separators=(",", ":"))
        size = len(body.encode())
        if size > ENGINE_SPEC_LIMIT:
            yield (
                ("services", name),
                f"service {name!r} is {_mebibytes(size)} as sent to the engine; the engine "
                f"refuses a service spec above {_mebibytes(ENGINE_SPEC_LIMIT)} (its gRPC "
                "message limit): keep large values in files mounted into the service",
            )


# The bound's constants. A character of source becomes at most 12 bytes of the JSON sent
# (``json.dumps`` escapes a character outside the BMP as two \\uXXXX, 12 bytes; YAML escapes
# and implicit values such as ``on`` -> true or ``1e15`` -> "1000000000000000.0" grow less), and
# a source character may be sent twice (the image: ``Image`` and its label): 24. Every field's
# keys, defaults and a number converted from a short form (``1e308`` as an int, durations in
# ns) fit in the fixed part; each entry that becomes a whole object from as little as one
# character of source (a port, mount, secret, config, network, ulimit, generic resource) gets
# ``_ENTRY`` bytes on top, and the names it is resolved to are counted from the spec itself.
_PER_SOURCE_CHARACTER = 24
_PER_CHARACTER = 12
_FIXED = 64 * 1024
_ENTRY = 1024


def _size_bound(spec: Spec, key: str, source_size: int, names: dict[tuple[str, str], int]) -> int:
    """An upper bound on the size of service ``key``'s Engine API spec as converge sends it
    (``service_engine_spec``, JSON), from the size of its source and of what the spec adds:
    the stack's and the key's names, and each mount's, network's, secret's and config's
    resolved names and declared options. ``names`` caches the part each named object adds.
    tests/unit/test_size_limits.py holds it against the exact size on the worst cases."""
    service = spec.services[key]
    stack = len(spec.stack or "")
    bound = _FIXED + _PER_SOURCE_CHARACTER * source_size + _PER_CHARACTER * (len(key) + 4 * stack)
    reservations = service.deploy.resources.reservations
    entries = len(service.ports) + len(service.ulimits)
    entries += len(reservations.generic_resources) if reservations is not None else 0
    bound += _ENTRY * entries
    for mount in service.volumes:
        bound += _ENTRY + _PER_CHARACTER * (len(mount.source or "") + len(mount.target) + stack)
        if mount.type == "volume" and mount.source:
            if ("volume", mount.source) not in names:
                declared = spec.volumes[mount.source]
                options = [dict(declared.labels), declared.driver, declared.driver_opts]
                names["volume", mount.source] = len(json.dumps(options)) + _PER_CHARACTER * len(
                    spec.volume_name(mount.source)
                )
            bound += names["volume", mount.source]
    for network in service.networks or (DEFAULT_NETWORK,):
        if ("network", network) not in names:
            names["network", network] = _PER_CHARACTER * len(spec.network_name(network))
        bound += _ENTRY + _PER_CHARACTER * len(key) + names["network", network]
    kinds: tuple[tuple[FileKind, tuple[FileReference, ...]], ...] = (
        ("secret", service.secrets),
        ("config", service.configs),
    )
    for kind, references in kinds:
        for reference in references:
            if (kind, reference.source) not in names:
                name = stack_name(spec, kind, reference.source)
                names[kind, reference.source] = _PER_CHARACTER * (len(name) + len(reference.source))
            bound += _ENTRY + names[kind, reference.source]
    return bound


def _mebibytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size % (1024 * 1024) else f"{size >> 20} MiB"


def _check_nodes(spec: Spec) -> Iterator[FieldProblem]:
    roles = [node.role for node in spec.nodes.values()]
    if roles and all(role == "worker" for role in roles):
        yield (
            ("x-converge", "cluster", "nodes"),
            "every declared node is a worker; a swarm needs a manager",
        )


def _eligible(spec: Spec) -> dict[str, NodeFacts]:
    return {
        hostname: node_facts_from_spec(hostname, node)
        for hostname, node in spec.nodes.items()
        if node.availability in (None, "active")
    }


def _failing(service: ServiceSpec, node: NodeFacts) -> list[str]:
    return [
        constraint
        for constraint in service.deploy.placement.constraints
        if evaluate_constraint(constraint, node) is False
    ]


def _check_placement(spec: Spec) -> Iterator[FieldProblem]:
    if not spec.nodes:
        return
    eligible = _eligible(spec)
    every_node = {name: node_facts_from_spec(name, node) for name, node in spec.nodes.items()}
    for name, service in spec.services.items():
        deploy = service.deploy
        if not deploy.is_global and deploy.replicas == 0:
            continue
        path = ("services", name, "deploy", "placement", "constraints")
        failures = {hostname: _failing(service, node) for hostname, node in eligible.items()}
        matching = [hostname for hostname, failed in failures.items() if not failed]
        if not matching:
            yield path, _no_node_message(service, failures, every_node)
            continue
        limit = deploy.placement.max_replicas_per_node
        replicas = 1 if deploy.replicas is None else deploy.replicas
        if limit and deploy.mode == "replicated" and replicas > limit * len(matching):
            yield (
                ("services", name, "deploy", "replicas"),
                f"{replicas} replicas cannot fit: max_replicas_per_node is {limit} and "
                f"{len(matching)} node(s) can run the service ({', '.join(matching)})",
            )


def _no_node_message(
    service: ServiceSpec, failures: Mapping[str, list[str]], every_node: Mapping[str, NodeFacts]
) -> str:
    if not failures:
        return "no declared node is active, so no task can run"
    fewest = min(len(failed) for failed in failures.values())
    closest = sorted(hostname for hostname, failed in failures.items() if len(failed) == fewest)
    shown = "; ".join(f"{hostname} fails {', '.join(failures[hostname])}" for hostname in closest)
    message = f"no active declared node satisfies every constraint; closest: {shown}"
    unavailable = [
        hostname
        for hostname, node in every_node.items()
        if hostname not in failures and not _failing(service, node)
    ]
    if unavailable:
        message += f" (would match but is drained or paused: {', '.join(sorted(unavailable))})"
    return message


def _check_loadbalancer(spec: Spec) -> Iterator[FieldProblem]:
    balancer = spec.loadbalancer
    if balancer is None:
        return
    if spec.nodes and balancer.node not in spec.nodes:
        yield (
            ("x-converge", "loadbalancer", "node"),
            f"node {balancer.node!r} is not declared under 'x-converge.cluster.nodes'"
            + _suggestion(balancer.node, spec.nodes),
        )
    ingress_ports = {
        port.published
        for service in spec.services.values()
        for port in service.ports
        if port.published is not None
        and port.effective_mode == "ingress"
        and port.effective_protocol == "tcp"
    }
    listeners: dict[int, str] = {}
    for name, frontend in balancer.frontends.items():
        if frontend.port in listeners:
            yield (
                ("x-converge", "loadbalancer", "frontends", name, "port"),
                f"port {frontend.port} is already used by frontend {listeners[frontend.port]!r}",
            )
        listeners.setdefault(frontend.port, name)
        if frontend.backend not in balancer.backends:
            yield (
                ("x-converge", "loadbalancer", "frontends", name, "backend"),
                f"backend {frontend.backend!r} is not declared under "
                "'x-converge.loadbalancer.backends'"
                + _suggestion(frontend.backend, balancer.backends),
            )
        if frontend.port in ingress_ports:
            yield (
                ("x-converge", "loadbalancer", "frontends", name, "port"),
                f"port {frontend.port} is published by a swarm service on every node, "
                f"including {balancer.node!r}",
            )
    if balancer.stats is not None and balancer.stats.port in listeners:
        yield (
            ("x-converge", "loadbalancer", "stats", "port"),
            f"port {balancer.stats.port} is already used by frontend "
            f"{listeners[balancer.stats.port]!r}",
        )
    for name, backend in balancer.backends.items():
        yield from _check_backend(spec, name, backend.service, backend.port, backend.method)
        if backend.method == "dns":
            yield from _check_backend_network(spec, name)


def _check_rollouts(spec: Spec) -> Iterator[FieldProblem]:
    """blue-green and canary move traffic in the managed load balancer, through a dns backend
    (the new version's tasks are found by name, beside the old ones)."""
    balancer = spec.loadbalancer
    for key, service in spec.services.items():
        if service.x_converge.rollout.strategy == "rolling":
            continue
        path = ("services", key, "x-converge", "rollout", "strategy")
        strategy = service.x_converge.rollout.strategy
        if balancer is None:
            yield path, f"{strategy} moves traffic in the load balancer: declare one"
            continue
        methods = [b.method for b in balancer.backends.values() if b.service == key]
        if not methods:
            yield path, f"{strategy} needs a load-balancer backend for service {key!r}"
        elif any(method != "dns" for method in methods):
            yield path, f"{strategy} needs the service's backends to use method: dns"
        if f"{key}{ROLLOUT_SUFFIX}" in spec.services:
            yield path, f"service {key}{ROLLOUT_SUFFIX!r} would collide with the new version's name"
        if ROLLOUT_RUNTIME_PORT in {f.port for f in balancer.frontends.values()}:
            yield path, f"port {ROLLOUT_RUNTIME_PORT} is the load balancer's runtime API port"


def _check_backend(
    spec: Spec, name: str, service_name: str, port: int, method: str
) -> Iterator[FieldProblem]:
    path = ("x-converge", "loadbalancer", "backends", name)
    service = spec.services.get(service_name)
    if service is None:
        yield (
            (*path, "service"),
            f"service {service_name!r} is not declared under 'services'"
            + _suggestion(service_name, spec.services),
        )
        return
    if method == "dns":
        targets = {published.target for published in service.ports}
        if targets and port not in targets:
            yield (
                (*path, "port"),
                f"service {service_name!r} listens on {_ports(targets)}, not on port {port}",
            )
        return
    published = {item.published: item for item in service.ports if item.published is not None}
    if port not in published:
        yield (
            (*path, "port"),
            f"service {service_name!r} does not publish port {port}"
            + (f" (it publishes {_ports(set(published))})" if published else ""),
        )
    elif method == "tasks" and published[port].effective_mode != "host":
        yield (
            (*path, "method"),
            f"the tasks method needs port {port} of service {service_name!r} published in "
            "host mode (ports: [{target: ..., published: ..., mode: host}])",
        )


def _check_backend_network(spec: Spec, name: str) -> Iterator[FieldProblem]:
    assert spec.loadbalancer is not None
    backend = spec.loadbalancer.backends[name]
    service = spec.services.get(backend.service)
    if service is None:
        return
    path = ("x-converge", "loadbalancer", "backends", name)
    attached = spec.service_networks(backend.service)
    network = backend.network or next(iter(attached), None)
    if network is None:
        yield (
            (*path, "method"),
            f"the dns method needs service {backend.service!r} on an attachable network",
        )
        return
    if network not in attached:
        yield (
            (*path, "network"),
            f"service {backend.service!r} is not attached to network {network!r}",
        )
    declared = spec.stack_networks().get(network)
    if declared is not None and not declared.external and not declared.attachable:
        yield (
            (*path, "network"),
            f"network {network!r} must be attachable for the load balancer to join it "
            "(attachable: true)",
        )


def _suggestion(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _ports(ports: set[int]) -> str:
    return ", ".join(str(port) for port in sorted(ports))
