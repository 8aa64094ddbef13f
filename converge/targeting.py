"""``--target``: a plan limited to the named objects and what they need (pure).

Like terraform's ``-target``, for exceptional situations (recovering from a mistake, one urgent
service while another is broken): a targeted plan is not the whole spec's plan. A target is an
address, ``<kind>.<key>``: ``service.web``, ``network.backend``, ``node.worker1``,
``loadbalancer.loadbalancer``, ``secret.db_password``, ``config.site``. A service brings the
networks it attaches to and the creation of the secrets' and configs' versions it references
(not the removal of old versions, which other services may still use); nodes come only when
named (their labels may move tasks of every service).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from converge.actions import Plan
from converge.errors import PlanError
from converge.naming import spec_key
from converge.spec import Spec
from converge.state import ObservedState

__all__ = ["known_addresses", "needed_addresses", "target_plan"]


def known_addresses(spec: Spec, observed: ObservedState) -> frozenset[str]:
    """Every address a target may name: the spec's objects and the stack's in the swarm."""
    addresses = {f"service.{key}" for key in spec.services}
    addresses |= {f"service.{key}" for key in observed.owned_services()}
    addresses |= {f"network.{key}" for key in {*spec.networks, *spec.stack_networks()}}
    addresses |= {f"network.{key}" for key in observed.owned_networks()}
    addresses |= {f"secret.{key}" for key in spec.secrets}
    addresses |= {f"config.{key}" for key in spec.configs}
    addresses |= {f"node.{name}" for name in spec.nodes}
    addresses |= {f"node.{node.hostname}" for node in observed.nodes}
    if spec.loadbalancer is not None:
        addresses.add(f"loadbalancer.{spec.loadbalancer.name}")
    addresses |= {
        f"loadbalancer.{spec_key(observed.stack, item.name)}"
        for item in observed.loadbalancers
        if item.owned
    }
    return frozenset(addresses)


def needed_addresses(spec: Spec, targets: Iterable[str]) -> frozenset[str]:
    """The targets and what they need: a service's networks."""
    needed = set(targets)
    for target in list(needed):
        kind, _, key = target.partition(".")
        if kind == "service" and key in spec.services:
            needed |= {f"network.{name}" for name in spec.service_networks(key)}
    return frozenset(needed)


def target_plan(plan: Plan, targets: Sequence[str], spec: Spec, observed: ObservedState) -> Plan:
    """``plan`` with only the actions and findings of the targets and what they need.

    The versions stay whole: a saved targeted plan is still refused when anything moved.

    Raises:
        PlanError: a target names nothing in the spec or the swarm.
    """
    known = known_addresses(spec, observed) | {action.address for action in plan.actions}
    unknown = [target for target in targets if target not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "nothing"
        raise PlanError(
            f"--target {', '.join(unknown)}: no such object in the spec or the swarm "
            f"(addresses are kind.key; known: {listed})"
        )
    needed = needed_addresses(spec, targets)
    created = _referenced_files(spec, targets)
    return replace(
        plan,
        actions=tuple(
            action
            for action in plan.actions
            if action.address in needed or (action.address in created and action.kind == "create")
        ),
        findings=tuple(finding for finding in plan.findings if finding.address in needed),
    )


def _referenced_files(spec: Spec, targets: Iterable[str]) -> frozenset[str]:
    """The secrets and configs the targeted services reference (their new versions come too)."""
    found: set[str] = set()
    for target in targets:
        kind, _, key = target.partition(".")
        service = spec.services.get(key) if kind == "service" else None
        if service is not None:
            found |= {f"secret.{ref.source}" for ref in service.secrets}
            found |= {f"config.{ref.source}" for ref in service.configs}
    return frozenset(found)
