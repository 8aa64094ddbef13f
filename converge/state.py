"""Observed-state models: what the swarm is, in the spec's vocabulary plus ids and versions.

Every object keeps its engine id and ``Version.Index`` aside (for version-checked writes), and
the raw engine spec a write must be built on. ``view`` is the normalised form that the diff
compares (see ``normalize``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from converge.naming import ROLLOUT_LABEL, spec_key

__all__ = [
    "ClusterOwner",
    "ObservedFileObject",
    "ObservedLoadBalancer",
    "ObservedLoadBalancerCheck",
    "ObservedNetwork",
    "ObservedNode",
    "ObservedService",
    "ObservedState",
    "ObservedTask",
    "template_digest",
]


def template_digest(template: Mapping[str, Any]) -> str:
    """Identifies a task template: a task runs its service's current spec when they match.

    ``Runtime`` is left out: the engine fills it in on the service, never on its tasks.
    """
    significant = {key: value for key, value in template.items() if key != "Runtime"}
    return hashlib.sha256(json.dumps(significant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ObservedNode:
    id: str
    version: int
    hostname: str
    role: str
    availability: str
    labels: Mapping[str, str]
    state: str
    address: str
    engine_labels: Mapping[str, str]
    os: str
    arch: str
    view: Mapping[str, Any]
    raw_spec: Mapping[str, Any]
    nano_cpus: int = 0
    """The node's CPUs (``Description.Resources``), in billionths; 0 when unknown."""
    memory_bytes: int = 0
    managed_labels: frozenset[str] = frozenset()
    """The label keys the cluster spec manages here (``naming.CLUSTER_LABELS_LABEL``)."""
    manager_reachability: str = ""
    """A manager's Raft reachability (reachable, unreachable); "" for a worker."""

    @property
    def is_ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class ClusterOwner:
    """Which cluster spec owns the swarm's nodes: the config object ``converge-cluster``."""

    name: str
    config_id: str
    since: str = ""
    by: str = ""


@dataclass(frozen=True)
class ObservedNetwork:
    id: str
    name: str
    driver: str
    scope: str
    owned: bool
    stack: str | None
    view: Mapping[str, Any]


@dataclass(frozen=True)
class ObservedService:
    id: str
    version: int
    name: str
    owned: bool
    stack: str | None
    view: Mapping[str, Any]
    raw_spec: Mapping[str, Any]
    running_tasks: int
    desired_tasks: int
    update_state: str | None = None
    update_message: str | None = None
    update_started: str = ""
    job_iteration: int | None = None
    """A job's current run (``JobStatus.JobIteration.Index``); None for other services."""
    completed_tasks: int = 0

    @cached_property
    def template_digest(self) -> str:
        """Identifies the service's current task template (computed only when asked)."""
        return template_digest(self.raw_spec.get("TaskTemplate") or {})

    @property
    def rollout_of(self) -> str | None:
        """The spec key whose new version this service is, during a rollout (else None)."""
        return (self.raw_spec.get("Labels") or {}).get(ROLLOUT_LABEL)

    @property
    def is_job(self) -> bool:
        return self.job_iteration is not None

    @property
    def published_ports(self) -> frozenset[tuple[int, str]]:
        endpoint = self.raw_spec.get("EndpointSpec") or {}
        return frozenset(
            (port["PublishedPort"], port.get("Protocol") or "tcp")
            for port in endpoint.get("Ports") or []
            if port.get("PublishedPort")
        )


@dataclass(frozen=True)
class ObservedFileObject:
    """A swarm secret or config. ``data`` is a config's content (the engine never returns a
    secret's); ``templating`` the template driver's name, if any."""

    kind: str
    id: str
    version: int
    name: str
    labels: Mapping[str, str]
    created: str = ""
    data: bytes | None = field(default=None, repr=False)
    templating: str | None = None


@dataclass(frozen=True)
class ObservedTask:
    id: str
    service_id: str
    node_id: str
    slot: int | None
    state: str
    desired_state: str
    message: str
    error: str
    image: str
    timestamp: str
    template: Mapping[str, Any] = field(default_factory=dict, repr=False)
    job_iteration: int | None = None
    """The run of its job this task belongs to; None for other services' tasks."""
    exit_code: int | None = None

    @cached_property
    def template_digest(self) -> str:
        """Identifies the task template this task runs (computed only when asked)."""
        return template_digest(self.template)


@dataclass(frozen=True)
class ObservedLoadBalancer:
    """A load-balancer container of the stack, seen through its node's engine.

    ``view`` holds image, node, ports, networks and running (see ``converge.lb.config``);
    ``config`` is the haproxy.cfg read back from the container (None if unreadable).
    """

    id: str
    name: str
    owned: bool
    view: Mapping[str, Any]
    config: str | None
    started_at: str = ""
    pid: int = 0


@dataclass(frozen=True)
class ObservedLoadBalancerCheck:
    """A throwaway ``haproxy -c`` container of the stack (``naming.LB_CHECK_LABEL``).

    Apply removes each one it creates before it returns: one that is seen was left by an
    interrupted apply.
    """

    id: str
    name: str


@dataclass(frozen=True)
class ObservedState:
    """The swarm as observed by one manager, for one stack."""

    stack: str
    manager: str
    nodes: tuple[ObservedNode, ...] = ()
    networks: tuple[ObservedNetwork, ...] = ()
    services: tuple[ObservedService, ...] = ()
    tasks: tuple[ObservedTask, ...] = ()
    secrets: tuple[ObservedFileObject, ...] = ()
    configs: tuple[ObservedFileObject, ...] = ()
    api_calls: int = 0
    """Requests ``observe`` made through the manager's engine (not a balancer's own engine)."""
    # The load balancer, observed through the engine of its node (converge.lb.container).
    loadbalancers: tuple[ObservedLoadBalancer, ...] = ()
    loadbalancer_checks: tuple[ObservedLoadBalancerCheck, ...] = ()
    loadbalancer_engine: str = ""
    """Hostname of the engine the load balancer is observed through ("" if built from JSON)."""
    cluster_owner: ClusterOwner | None = None
    """Who owns the nodes; read only for a spec with a cluster section (None otherwise)."""

    def node(self, hostname: str) -> ObservedNode | None:
        return next((node for node in self.nodes if node.hostname == hostname), None)

    def node_by_id(self, node_id: str) -> ObservedNode | None:
        return next((node for node in self.nodes if node.id == node_id), None)

    def owned_services(self) -> Mapping[str, ObservedService]:
        """This stack's services, by spec key (computed once: the planner asks per service).

        The new version of a service during a rollout is not among them: it belongs to its
        service's spec entry (``rollout_candidates``), it is neither drift nor a removal.
        """
        return self._owned_services

    def rollout_candidates(self) -> Mapping[str, ObservedService]:
        """The new versions of this stack's services in a rollout, by the spec key they replace."""
        return self._rollout_candidates

    @cached_property
    def _owned_services(self) -> Mapping[str, ObservedService]:
        return MappingProxyType(
            {
                spec_key(self.stack, service.name): service
                for service in self.services
                if service.owned and service.stack == self.stack and service.rollout_of is None
            }
        )

    @cached_property
    def _rollout_candidates(self) -> Mapping[str, ObservedService]:
        return MappingProxyType(
            {
                service.rollout_of: service
                for service in self.services
                if service.owned and service.stack == self.stack and service.rollout_of
            }
        )

    def owned_networks(self) -> dict[str, ObservedNetwork]:
        """This stack's networks, by spec key."""
        return {
            spec_key(self.stack, network.name): network
            for network in self.networks
            if network.owned and network.stack == self.stack
        }

    def service_named(self, name: str) -> ObservedService | None:
        return self._services_by_name.get(name)

    def network_named(self, name: str) -> ObservedNetwork | None:
        return self._networks_by_name.get(name)

    # The diff asks for every declared name: indexes built once per observation, not scans.
    @cached_property
    def _services_by_name(self) -> Mapping[str, ObservedService]:
        found: dict[str, ObservedService] = {}
        for service in self.services:
            found.setdefault(service.name, service)
        return found

    @cached_property
    def _networks_by_name(self) -> Mapping[str, ObservedNetwork]:
        found: dict[str, ObservedNetwork] = {}
        for network in self.networks:
            found.setdefault(network.name, network)
        return found

    def tasks_of(self, service_id: str) -> list[ObservedTask]:
        return list(self._tasks_by_service.get(service_id, ()))

    @cached_property
    def _tasks_by_service(self) -> Mapping[str, tuple[ObservedTask, ...]]:
        grouped: dict[str, list[ObservedTask]] = {}
        for task in self.tasks:
            grouped.setdefault(task.service_id, []).append(task)
        return {key: tuple(tasks) for key, tasks in grouped.items()}
