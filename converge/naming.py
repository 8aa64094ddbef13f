"""Names and ownership: the one home of the ``<stack>_<name>`` rule and every ownership label.

As docker/cli's ``convert.Namespace``: a stack's objects are named ``<stack>_<key>`` and carry
``com.docker.stack.namespace=<stack>``, so ``docker stack ls/services/ps`` see them. converge
adds no label of its own to swarm objects (but the new version of a service during a rollout,
``ROLLOUT_LABEL``), so that a stack converge deployed and one
``docker stack deploy`` deployed are the same stack, and either tool can take over from the
other. Only objects carrying the stack label of the stack at hand are ever changed or removed;
every ownership test in converge asks this module.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CLUSTER_BY_LABEL",
    "CLUSTER_LABELS_LABEL",
    "CLUSTER_OWNER_CONFIG",
    "CLUSTER_OWNER_LABEL",
    "CLUSTER_SINCE_LABEL",
    "CONVERGE_IMAGE_LABEL",
    "CONVERGE_MANAGED_LABEL",
    "FINGERPRINT_LABEL",
    "GRAPH_LABEL",
    "LB_CHECK_LABEL",
    "LB_LABEL",
    "LOCK_LABEL_PREFIX",
    "ROLLOUT_LABEL",
    "ROLLOUT_RUNTIME_PORT",
    "ROLLOUT_SUFFIX",
    "STACK_IMAGE_LABEL",
    "STACK_LABEL",
    "VERSION_OF_LABEL",
    "candidate_name",
    "graph_record_name",
    "is_converge_record",
    "is_internal_label",
    "lock_name",
    "name_prefix",
    "object_name",
    "owned_by",
    "owner_of",
    "ownership_labels",
    "spec_key",
]

STACK_LABEL = "com.docker.stack.namespace"
"""docker stack deploy's ownership label; its value is the stack's name."""
STACK_IMAGE_LABEL = "com.docker.stack.image"
"""The image as the user wrote it, before the engine pins a digest (as docker stack deploy)."""
CONVERGE_MANAGED_LABEL = "io.converge.managed-by"
"""Put on swarm objects by converge before it wrote compose files; hidden, never written."""
CONVERGE_IMAGE_LABEL = "io.converge.image"
"""The image as written, on the load-balancer container (not a swarm object)."""
LB_LABEL = "io.converge.loadbalancer"
"""Marks the stack's load-balancer container; the value is its key in the spec."""
LB_CHECK_LABEL = "io.converge.loadbalancer.check"
"""Marks a throwaway container that validates a load-balancer config before it is used."""
LOCK_LABEL_PREFIX = "io.converge.lock."
ROLLOUT_LABEL = "io.converge.rollout.of"
"""Marks the new version of a service during a blue-green or canary rollout; the value is the
spec key of the service it replaces (``<stack>_<key>`` stays the service's home)."""
ROLLOUT_SUFFIX = "-next"
"""``<stack>_<key>-next``: the new version's service beside ``<stack>_<key>``."""
ROLLOUT_RUNTIME_PORT = 19999
"""HAProxy's runtime API inside the balancer container (loopback only) during rollouts."""
CLUSTER_OWNER_CONFIG = "converge-cluster"
"""The config object that records which spec owns the cluster (its nodes)."""
CLUSTER_OWNER_LABEL = "io.converge.cluster.owner"
"""On ``CLUSTER_OWNER_CONFIG``: the owning cluster spec's name."""
CLUSTER_SINCE_LABEL = "io.converge.cluster.since"
CLUSTER_BY_LABEL = "io.converge.cluster.by"
"""On ``CLUSTER_OWNER_CONFIG``: when and by whom (user@host) the owner was recorded."""
CLUSTER_LABELS_LABEL = "io.converge.cluster.labels"
"""On a node: the label keys the cluster spec manages there (comma-separated), written with
them, so a label the spec stops mentioning is known for ``--prune``; never shown as a label."""
VERSION_OF_LABEL = "io.converge.version-of"
"""On a secret or config converge created: the spec key it is a version of."""
FINGERPRINT_LABEL = "io.converge.fingerprint"
"""On a secret converge created: a salted scrypt hash of its data (``converge.fileobjects``)."""
_INTERNAL_LABEL_PREFIXES = ("com.docker.stack.", "io.converge.")


def object_name(stack: str, key: str) -> str:
    """The swarm name of a stack's object, as docker stack deploy names it."""
    return f"{stack}_{key}"


def candidate_name(stack: str, key: str) -> str:
    """The swarm name of the new version of service ``key`` during a rollout."""
    return object_name(stack, f"{key}{ROLLOUT_SUFFIX}")


def name_prefix(stack: str) -> str:
    """How the swarm name of every object of ``stack`` begins: ``<stack>_``."""
    return object_name(stack, "")


def spec_key(stack: str, name: str) -> str:
    """The spec key of an object named ``<stack>_<key>`` (the name itself otherwise)."""
    return name.removeprefix(name_prefix(stack))


GRAPH_LABEL = "io.converge.graph"
"""On a stack's graph record: the ``depends_on`` graph its last apply converged, as JSON."""


def graph_record_name(stack: str) -> str:
    """The name of the config object that records ``stack``'s last applied dependency graph
    (converge's only object of its own besides the lock; labelled with the stack, so
    ``docker stack rm`` removes it too)."""
    return f"converge-graph-{stack}"


def lock_name(stack: str) -> str:
    """The name of the config object that is ``stack``'s apply lock."""
    return f"converge-lock-{stack}"


def ownership_labels(stack: str) -> dict[str, str]:
    """Labels that mark an object as owned by stack ``stack`` (docker stack deploy's)."""
    return {STACK_LABEL: stack}


def owner_of(labels: Mapping[str, str] | None) -> str | None:
    """The stack that owns an object with these labels, if any."""
    return (labels or {}).get(STACK_LABEL)


def owned_by(labels: Mapping[str, str] | None, stack: str) -> bool:
    """Whether an object with these labels belongs to ``stack`` (and so may be changed)."""
    return owner_of(labels) == stack


def is_internal_label(name: str) -> bool:
    """Labels converge and docker stack use for ownership: never shown as user labels."""
    return name.startswith(_INTERNAL_LABEL_PREFIXES)


def is_converge_record(name: str, stack: str) -> bool:
    """Whether a config of ``stack`` is one of converge's own records (the lock, the graph
    record), never one of the spec's configs."""
    return name in (lock_name(stack), graph_record_name(stack))
