"""Desired state -> Engine API payloads (pure).

A service update must send a complete spec: the engine drops whatever is missing. So the payload
is built from the observed spec (``base``) with every field the spec manages written over it;
fields the spec leaves unset keep the engine's current values, and the ``ForceUpdate`` counter
is preserved (or incremented, to force a redeploy).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from converge.naming import (
    CONVERGE_IMAGE_LABEL,
    STACK_IMAGE_LABEL,
    object_name,
    ownership_labels,
)
from converge.normalize import (
    DEFAULT_RESTART_POLICY,
    DEFAULT_UPDATE_CONFIG,
    POLICY_ENGINE_FIELDS,
)
from converge.spec import MountSpec, NetworkSpec, ServiceSpec, Spec

__all__ = ["network_create_body", "service_engine_spec"]

Json = dict[str, Any]


def service_engine_spec(
    spec: Spec, key: str, base: Mapping[str, Any] | None = None, force_update: bool = False
) -> Json:
    """The complete Engine API ServiceSpec for ``spec.services[key]``.

    Args:
        spec: the whole spec (names of networks and volumes are resolved against it).
        key: the service's key in ``spec.services``.
        base: the observed ServiceSpec to update, or ``None`` to create.
        force_update: increment ``ForceUpdate`` so every task is replaced (rebalancing).
    """
    service = spec.services[key]
    result: Json = copy.deepcopy(dict(base)) if base is not None else {}
    result["Name"] = object_name(spec.stack, key)
    result["Labels"] = {
        **dict(service.labels),
        **ownership_labels(spec.stack),
        STACK_IMAGE_LABEL: service.image,
        CONVERGE_IMAGE_LABEL: service.image,
    }
    task = result.setdefault("TaskTemplate", {})
    task.pop("Networks", None)
    result.pop("Networks", None)
    container = task.setdefault("ContainerSpec", {})
    _write_container(container, spec, service)
    _write_placement(task, service)
    task["Networks"] = [
        {
            "Target": _network_name(spec, name),
            "Aliases": [key, *sorted(attachment.aliases)],
        }
        for name, attachment in sorted(service.networks.items())
    ]
    if service.restart_policy is not None:
        current = task.get("RestartPolicy") or _engine_restart(DEFAULT_RESTART_POLICY)
        task["RestartPolicy"] = _merge_policy(
            current,
            service.restart_policy.model_dump(),
            {
                "condition": "Condition",
                "delay": "Delay",
                "max_attempts": "MaxAttempts",
                "window": "Window",
            },
        )
    if service.resources is not None:
        resources = task.setdefault("Resources", {})
        for side, values in (
            ("Limits", service.resources.limits),
            ("Reservations", service.resources.reservations),
        ):
            if values is None:
                continue
            current = resources.setdefault(side, {})
            if values.cpus is not None:
                current["NanoCPUs"] = values.cpus
            if values.memory is not None:
                current["MemoryBytes"] = values.memory
    if force_update:
        task["ForceUpdate"] = int(task.get("ForceUpdate", 0)) + 1
    if service.mode == "global":
        result["Mode"] = {"Global": {}}
    else:
        result["Mode"] = {
            "Replicated": {"Replicas": 1 if service.replicas is None else service.replicas}
        }
    for field, config in (
        ("UpdateConfig", service.update_config),
        ("RollbackConfig", service.rollback_config),
    ):
        if config is not None:
            current = result.get(field) or _engine_policy(DEFAULT_UPDATE_CONFIG)
            result[field] = _merge_policy(current, config.model_dump(), POLICY_ENGINE_FIELDS)
    endpoint = result.setdefault("EndpointSpec", {})
    if service.endpoint_mode is not None:
        endpoint["Mode"] = service.endpoint_mode
    endpoint["Ports"] = [
        {
            "Protocol": port.protocol,
            "TargetPort": port.target,
            "PublishMode": port.mode,
            **({"PublishedPort": port.published} if port.published else {}),
        }
        for port in service.ports
    ]
    return result


def _write_container(container: Json, spec: Spec, service: ServiceSpec) -> None:
    container["Image"] = service.image
    container["Env"] = [f"{name}={value}" for name, value in sorted(service.env.items())]
    container["Labels"] = dict(service.container_labels)
    container["Mounts"] = [_engine_mount(spec, mount) for mount in service.mounts]
    optional: dict[str, tuple[str, Any]] = {
        "entrypoint": ("Command", list(service.entrypoint or [])),
        "command": ("Args", list(service.command or [])),
        "stop_grace_period": ("StopGracePeriod", service.stop_grace_period),
        "stop_signal": ("StopSignal", service.stop_signal),
        "user": ("User", service.user),
        "workdir": ("Dir", service.workdir),
        "hostname": ("Hostname", service.hostname),
        "init": ("Init", service.init),
        "read_only": ("ReadOnly", service.read_only),
    }
    for field, (engine_field, value) in optional.items():
        if getattr(service, field) is not None:
            container[engine_field] = value
    if service.healthcheck is not None:
        check = service.healthcheck
        if check.disable:
            container["Healthcheck"] = {"Test": ["NONE"]}
        else:
            current = container.get("Healthcheck") or {}
            for field, engine_field in (
                ("test", "Test"),
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("retries", "Retries"),
                ("start_period", "StartPeriod"),
            ):
                value = getattr(check, field)
                if value not in (None, ()):
                    current[engine_field] = list(value) if field == "test" else value
            container["Healthcheck"] = current


def _write_placement(task: Json, service: ServiceSpec) -> None:
    placement = task.setdefault("Placement", {})
    placement["Constraints"] = list(service.placement.constraints)
    placement["Preferences"] = [
        {"Spread": {"SpreadDescriptor": preference.spread}}
        for preference in service.placement.preferences
    ]
    placement["MaxReplicas"] = service.placement.max_replicas_per_node or 0


def _network_name(spec: Spec, name: str) -> str:
    network = spec.networks[name]
    if network.external:
        return network.name or name
    return object_name(spec.stack, name)


def _engine_mount(spec: Spec, mount: MountSpec) -> Json:
    result: Json = {"Type": mount.type, "Target": mount.target, "ReadOnly": mount.read_only}
    if mount.type == "volume":
        options: Json = {"NoCopy": bool(mount.volume and mount.volume.nocopy)}
        if mount.source:
            volume = spec.volumes[mount.source]
            if volume.external:
                result["Source"] = mount.source
            else:
                result["Source"] = object_name(spec.stack, mount.source)
                options["Labels"] = {**dict(volume.labels), **ownership_labels(spec.stack)}
                options["DriverConfig"] = {
                    "Name": volume.driver,
                    "Options": dict(volume.driver_opts),
                }
        result["VolumeOptions"] = options
    elif mount.type == "bind":
        result["Source"] = mount.source
        if mount.bind is not None and mount.bind.propagation:
            result["BindOptions"] = {"Propagation": mount.bind.propagation}
    elif mount.tmpfs is not None:
        result["TmpfsOptions"] = {
            key: value
            for key, value in (("SizeBytes", mount.tmpfs.size), ("Mode", mount.tmpfs.mode))
            if value is not None
        }
    return result


def _engine_policy(view: Mapping[str, Any]) -> Json:
    return {engine: view[field] for field, engine in POLICY_ENGINE_FIELDS.items()}


def _engine_restart(view: Mapping[str, Any]) -> Json:
    return {
        "Condition": view["condition"],
        "Delay": view["delay"],
        "MaxAttempts": view["max_attempts"],
        "Window": view["window"],
    }


def _merge_policy(
    current: Mapping[str, Any], wanted: Mapping[str, Any], fields: Mapping[str, str]
) -> Json:
    merged = dict(current)
    for field, engine_field in fields.items():
        if wanted.get(field) is not None:
            merged[engine_field] = wanted[field]
    return merged


def network_create_body(spec: Spec, key: str) -> Json:
    """The Engine API NetworkCreate body (without the name) for ``spec.networks[key]``."""
    network: NetworkSpec = spec.networks[key]
    options = dict(network.driver_opts)
    if network.encrypted:
        options["encrypted"] = ""
    body: Json = {
        "Driver": network.driver,
        "Scope": "swarm",
        "Attachable": network.attachable,
        "Internal": network.internal,
        "Options": options,
        "Labels": {**dict(network.labels), **ownership_labels(spec.stack)},
    }
    if network.subnet is not None:
        config = {"Subnet": network.subnet}
        if network.gateway is not None:
            config["Gateway"] = network.gateway
        body["IPAM"] = {"Driver": "default", "Config": [config]}
    return body
