"""Canonical forms for both sides of a diff, in the spec's vocabulary.

A *view* is a plain JSON-like dict describing one object the way the spec does. The desired
view comes from the spec, the observed view from what the engine reports; after ``align`` the
two compare equal exactly when nothing the spec manages differs. Each quirk of the engine is one
rule here, with its own unit test:

- engine-filled defaults (update/rollback config, restart policy, endpoint mode, protocol tcp,
  publish mode ingress, empty resources and placement) read as their documented values;
- ``replicas`` unset means 1; a value the spec leaves unset (``None``) is not managed;
- images: ``docker.io/library/`` dropped, ``:latest`` added, ``@sha256:`` digests dropped unless
  the spec pins one;
- network ids become the spec's names, and the alias converge adds (the service's key) is hidden;
- the stack prefix of volume and network names is removed; ownership labels are hidden;
- order-insensitive lists (env, ports, mounts, constraints, networks) become sorted maps or lists;
- constraints take one spelling (``node.labels.type == mvc``);
- durations, sizes and CPUs are compared in engine units (ns, bytes, nano-CPUs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from converge.naming import is_internal_label, spec_key
from converge.spec import (
    CONSTRAINT_PATTERN,
    NetworkSpec,
    NodeSpec,
    ServiceSpec,
    Spec,
)

__all__ = [
    "DEFAULT_RESTART_POLICY",
    "DEFAULT_UPDATE_CONFIG",
    "POLICY_ENGINE_FIELDS",
    "align",
    "canonical_constraint",
    "canonical_image",
    "desired_network_view",
    "desired_node_view",
    "desired_service_view",
    "observed_network_view",
    "observed_node_view",
    "observed_service_view",
    "port_key",
]

View = dict[str, Any]

SECOND = 1_000_000_000

# Swarmkit's defaults (api/defaults): what an absent field means.
DEFAULT_UPDATE_CONFIG: View = {
    "parallelism": 1,
    "delay": 0,
    "failure_action": "pause",
    "monitor": 5 * SECOND,
    "max_failure_ratio": 0.0,
    "order": "stop-first",
}
DEFAULT_ROLLBACK_CONFIG: View = dict(DEFAULT_UPDATE_CONFIG)
DEFAULT_RESTART_POLICY: View = {
    "condition": "any",
    "delay": 5 * SECOND,
    "max_attempts": 0,
    "window": 0,
}

# Fields whose value is a struct of independently managed sub-fields: a sub-field the spec
# leaves unset is not compared. Maps (env, labels, ports ...) are managed as a whole.
STRUCT_FIELDS = frozenset(
    {
        "update_config",
        "rollback_config",
        "restart_policy",
        "resources",
        "limits",
        "reservations",
        "healthcheck",
    }
)


def canonical_image(image: str, keep_digest: bool = True) -> str:
    """``mysql`` -> ``mysql:latest``; ``docker.io/library/x`` -> ``x``; digest optional."""
    reference, _, digest = image.partition("@")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix) :]
            break
    last_part = reference.rsplit("/", 1)[-1]
    if ":" not in last_part and not digest:
        reference += ":latest"
    if digest and keep_digest:
        return f"{reference}@{digest}"
    return reference


def canonical_constraint(text: str) -> str:
    """One spelling per constraint: ``node.labels.type==mvc`` -> ``node.labels.type == mvc``."""
    match = CONSTRAINT_PATTERN.fullmatch(text)
    if match is None:
        return text.strip()
    return f"{match['key']} {match['operator']} {match['value']}"


def port_key(published: int | None, target: int, protocol: str) -> str:
    """How a port is named in views and plans: ``3000:80/tcp`` or ``80/tcp``."""
    return f"{published}:{target}/{protocol}" if published else f"{target}/{protocol}"


def _user_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {
        name: value for name, value in sorted((labels or {}).items()) if not is_internal_label(name)
    }


def _without_none(values: Mapping[str, Any]) -> View:
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Services


def desired_service_view(spec: Spec, key: str) -> View:
    """The view of ``spec.services[key]``; ``None`` marks what the spec does not manage."""
    service = spec.services[key]
    return {
        "image": canonical_image(service.image),
        "entrypoint": list(service.entrypoint) if service.entrypoint is not None else None,
        "command": list(service.command) if service.command is not None else None,
        "mode": service.mode,
        "replicas": (1 if service.replicas is None else service.replicas)
        if service.mode == "replicated"
        else None,
        "constraints": sorted(service.placement.constraints),
        "preferences": [preference.spread for preference in service.placement.preferences],
        "max_replicas_per_node": service.placement.max_replicas_per_node or 0,
        "ports": {
            port_key(port.published, port.target, port.protocol): port.mode
            for port in service.ports
        },
        "mounts": {mount.target: _desired_mount(spec, mount) for mount in service.mounts},
        "env": dict(sorted(service.env.items())),
        "networks": dict(
            sorted(
                # converge always adds the key as an alias and the observed side hides it: so here.
                (
                    _attached_network(spec, name),
                    {"aliases": sorted(alias for alias in attachment.aliases if alias != key)},
                )
                for name, attachment in service.networks.items()
            )
        ),
        "labels": dict(sorted(service.labels.items())),
        "container_labels": dict(sorted(service.container_labels.items())),
        "endpoint_mode": service.endpoint_mode,
        "update_config": _struct(service.update_config),
        "rollback_config": _struct(service.rollback_config),
        "restart_policy": _struct(service.restart_policy),
        "resources": _desired_resources(service),
        "healthcheck": _desired_healthcheck(service),
        "stop_grace_period": service.stop_grace_period,
        "stop_signal": service.stop_signal,
        "user": service.user,
        "workdir": service.workdir,
        "hostname": service.hostname,
        "init": service.init,
        "read_only": service.read_only,
    }


def _attached_network(spec: Spec, name: str) -> str:
    """How the observed side names an attached network: an external one by its real name."""
    network = spec.networks.get(name)
    if network is not None and network.external:
        return spec_key(spec.stack, network.name or name)
    return name


def _struct(model: Any) -> View | None:
    return None if model is None else dict(model.model_dump())


def _desired_resources(service: ServiceSpec) -> View | None:
    if service.resources is None:
        return None
    return {
        "limits": _struct(service.resources.limits),
        "reservations": _struct(service.resources.reservations),
    }


def _desired_healthcheck(service: ServiceSpec) -> View | None:
    check = service.healthcheck
    if check is None:
        return None
    if check.disable:
        return {"test": ["NONE"], **dict.fromkeys(_HEALTHCHECK_TIMINGS)}
    return {
        "test": list(check.test) if check.test else None,
        "interval": check.interval,
        "timeout": check.timeout,
        "retries": check.retries,
        "start_period": check.start_period,
    }


def _desired_mount(spec: Spec, mount: Any) -> View:
    view: View = {"type": mount.type, "source": mount.source, "read_only": mount.read_only}
    if mount.type == "bind" and mount.bind is not None and mount.bind.propagation:
        view["propagation"] = mount.bind.propagation
    if mount.type == "volume":
        view["nocopy"] = bool(mount.volume and mount.volume.nocopy)
    if mount.type == "tmpfs" and mount.tmpfs is not None:
        view.update(_without_none({"size": mount.tmpfs.size, "mode": mount.tmpfs.mode}))
    return view


def observed_service_view(
    engine_spec: Mapping[str, Any], stack: str, network_names: Mapping[str, str]
) -> View:
    """The view of a service the engine reports, in the spec's vocabulary.

    Args:
        engine_spec: the service's ``Spec`` as the Engine API returns it.
        stack: the stack it belongs to (to strip name prefixes).
        network_names: network id -> name, from the same observation.
    """
    task = engine_spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    placement = task.get("Placement") or {}
    endpoint = engine_spec.get("EndpointSpec") or {}
    mode = engine_spec.get("Mode") or {}
    key = spec_key(stack, engine_spec.get("Name", ""))
    replicated = "Global" not in mode
    return {
        "image": canonical_image(container.get("Image", "")),
        "entrypoint": container.get("Command"),
        "command": container.get("Args"),
        "mode": "replicated" if replicated else "global",
        "replicas": ((mode.get("Replicated") or {}).get("Replicas", 1)) if replicated else None,
        "constraints": sorted(
            canonical_constraint(text) for text in placement.get("Constraints") or []
        ),
        "preferences": [
            (preference.get("Spread") or {}).get("SpreadDescriptor", "")
            for preference in placement.get("Preferences") or []
        ],
        "max_replicas_per_node": placement.get("MaxReplicas", 0),
        "ports": {
            port_key(
                port.get("PublishedPort"), port["TargetPort"], port.get("Protocol") or "tcp"
            ): port.get("PublishMode") or "ingress"
            for port in endpoint.get("Ports") or []
        },
        "mounts": {
            mount["Target"]: _observed_mount(mount, stack)
            for mount in container.get("Mounts") or []
        },
        "env": dict(
            sorted(
                (item.partition("=")[0], item.partition("=")[2])
                for item in container.get("Env") or []
            )
        ),
        "networks": _observed_networks(task, engine_spec, key, network_names, stack),
        "labels": _user_labels(engine_spec.get("Labels")),
        "container_labels": _user_labels(container.get("Labels")),
        "endpoint_mode": endpoint.get("Mode") or "vip",
        "update_config": _observed_policy(engine_spec.get("UpdateConfig"), DEFAULT_UPDATE_CONFIG),
        "rollback_config": _observed_policy(
            engine_spec.get("RollbackConfig"), DEFAULT_ROLLBACK_CONFIG
        ),
        "restart_policy": _observed_restart(task.get("RestartPolicy")),
        "resources": _observed_resources(task.get("Resources")),
        "healthcheck": _observed_healthcheck(container.get("Healthcheck")),
        "stop_grace_period": container.get("StopGracePeriod", 10 * SECOND),
        "stop_signal": container.get("StopSignal", ""),
        "user": container.get("User", ""),
        "workdir": container.get("Dir", ""),
        "hostname": container.get("Hostname", ""),
        "init": bool(container.get("Init", False)),
        "read_only": bool(container.get("ReadOnly", False)),
    }


def _observed_mount(mount: Mapping[str, Any], stack: str) -> View:
    kind = mount.get("Type", "volume")
    source = mount.get("Source") or None
    if kind == "volume" and source:
        source = spec_key(stack, source)
    view: View = {"type": kind, "source": source, "read_only": bool(mount.get("ReadOnly"))}
    if kind == "bind":
        propagation = (mount.get("BindOptions") or {}).get("Propagation")
        if propagation:
            view["propagation"] = propagation
    if kind == "volume":
        view["nocopy"] = bool((mount.get("VolumeOptions") or {}).get("NoCopy"))
    if kind == "tmpfs":
        options = mount.get("TmpfsOptions") or {}
        view.update(_without_none({"size": options.get("SizeBytes"), "mode": options.get("Mode")}))
    return view


def _observed_networks(
    task: Mapping[str, Any],
    engine_spec: Mapping[str, Any],
    key: str,
    network_names: Mapping[str, str],
    stack: str,
) -> View:
    attachments = task.get("Networks") or engine_spec.get("Networks") or []
    networks: View = {}
    for attachment in attachments:
        target = attachment.get("Target", "")
        name = spec_key(stack, network_names.get(target, target))
        aliases = sorted(alias for alias in attachment.get("Aliases") or [] if alias != key)
        networks[name] = {"aliases": aliases}
    return dict(sorted(networks.items()))


POLICY_ENGINE_FIELDS = {
    "parallelism": "Parallelism",
    "delay": "Delay",
    "failure_action": "FailureAction",
    "monitor": "Monitor",
    "max_failure_ratio": "MaxFailureRatio",
    "order": "Order",
}


def _observed_policy(config: Mapping[str, Any] | None, defaults: View) -> View:
    if config is None:
        return dict(defaults)
    # Present but with zero values omitted (Go's omitempty): absent means zero, not default.
    view: View = {
        field: config.get(engine_field, 0) for field, engine_field in POLICY_ENGINE_FIELDS.items()
    }
    view["max_failure_ratio"] = float(view["max_failure_ratio"])
    view["failure_action"] = config.get("FailureAction") or "pause"
    view["order"] = config.get("Order") or "stop-first"
    return view


def _observed_restart(policy: Mapping[str, Any] | None) -> View:
    if policy is None:
        return dict(DEFAULT_RESTART_POLICY)
    return {
        "condition": policy.get("Condition") or "any",
        "delay": policy.get("Delay", DEFAULT_RESTART_POLICY["delay"]),
        "max_attempts": policy.get("MaxAttempts", 0),
        "window": policy.get("Window", 0),
    }


def _observed_resources(resources: Mapping[str, Any] | None) -> View:
    def side(values: Mapping[str, Any] | None) -> View:
        values = values or {}
        return {
            "cpus": values.get("NanoCPUs") or None,
            "memory": values.get("MemoryBytes") or None,
        }

    resources = resources or {}
    return {
        "limits": side(resources.get("Limits")),
        "reservations": side(resources.get("Reservations")),
    }


_HEALTHCHECK_TIMINGS = ("interval", "timeout", "retries", "start_period")


def _observed_healthcheck(check: Mapping[str, Any] | None) -> View:
    check = check or {}
    return {
        "test": check.get("Test") or [],
        "interval": check.get("Interval", 0),
        "timeout": check.get("Timeout", 0),
        "retries": check.get("Retries", 0),
        "start_period": check.get("StartPeriod", 0),
    }


# ---------------------------------------------------------------------------------------------
# Nodes and networks


def desired_node_view(node: NodeSpec) -> View:
    return {
        "role": node.role,
        "availability": node.availability,
        "labels": dict(sorted(node.labels.items())) if node.labels is not None else None,
    }


def observed_node_view(node: Mapping[str, Any]) -> View:
    spec = node.get("Spec") or {}
    return {
        "role": spec.get("Role", "worker"),
        "availability": spec.get("Availability", "active"),
        "labels": dict(sorted((spec.get("Labels") or {}).items())),
    }


def desired_network_view(network: NetworkSpec) -> View:
    return {
        "driver": network.driver,
        "attachable": network.attachable,
        "internal": network.internal,
        "encrypted": network.encrypted,
        "driver_opts": dict(sorted(network.driver_opts.items())),
        "labels": dict(sorted(network.labels.items())),
        "subnet": network.subnet,
        "gateway": network.gateway,
    }


_ENGINE_NETWORK_OPTIONS = ("com.docker.network.driver.overlay.vxlanid_list",)


def observed_network_view(network: Mapping[str, Any]) -> View:
    options = dict(network.get("Options") or {})
    encrypted = "encrypted" in options
    options.pop("encrypted", None)
    for option in _ENGINE_NETWORK_OPTIONS:
        options.pop(option, None)
    ipam = ((network.get("IPAM") or {}).get("Config") or [{}])[0] or {}
    return {
        "driver": network.get("Driver", ""),
        "attachable": bool(network.get("Attachable")),
        "internal": bool(network.get("Internal")),
        "encrypted": encrypted,
        "driver_opts": dict(sorted(options.items())),
        "labels": _user_labels(network.get("Labels")),
        "subnet": ipam.get("Subnet"),
        "gateway": ipam.get("Gateway"),
    }


# ---------------------------------------------------------------------------------------------
# Aligning the two sides


def align(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> View:
    """The observed view reduced to what the desired view manages.

    A field whose desired value is ``None`` is not managed: it becomes ``None`` on the observed
    side too. Struct fields are aligned field by field. Images keep their digest only when the
    spec pins one.
    """
    # A shallow copy: fields are replaced, never changed in place (struct fields recurse into
    # new dicts), so the observed view is left intact without a deep copy per service.
    aligned = dict(observed)
    for field, wanted in desired.items():
        if wanted is None:
            aligned[field] = None
        elif field in STRUCT_FIELDS and isinstance(wanted, dict):
            current = aligned.get(field)
            aligned[field] = align(wanted, current) if isinstance(current, dict) else current
        elif field == "image" and isinstance(wanted, str) and "@" not in wanted:
            aligned[field] = canonical_image(str(aligned.get(field) or ""), keep_digest=False)
    return aligned
