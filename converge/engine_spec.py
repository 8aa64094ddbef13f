"""Compose file -> Engine API bodies, exactly as ``docker stack deploy`` converts it (pure).

The conversion mirrors docker/cli's ``cli/compose/convert`` (``service.go``, ``compose.go``,
``volume.go``) and ``cli/compose/loader`` as of docker CLI 28, checked against the requests
that ``docker stack deploy`` sends (tests/unit/test_engine_spec.py holds those requests), so
that a stack deployed by either tool is the same stack: adopting one made by
``docker stack deploy`` plans no change, and ``docker stack deploy`` after ``converge apply``
changes no service. A field the file leaves unset is left out of the body, and the engine
fills in its default, as with stack deploy.

Service (``services.<key>`` -> ``ServiceSpec``):

===================================  ====================================================
compose                              Engine API ServiceSpec
===================================  ====================================================
key                                  ``Name`` = ``<stack>_<key>``
deploy.labels                        ``Labels`` + ``com.docker.stack.namespace=<stack>``
                                     + ``com.docker.stack.image=<image as written>``
image                                ``ContainerSpec.Image``: as written, or pinned to the
                                     digest its registry gives (``converge.images``)
entrypoint / command                 ``ContainerSpec.Command`` / ``Args``; a string is split
                                     as a POSIX shell does (shlex)
environment (+ env_file)             ``ContainerSpec.Env``: ``K=V``, a bare ``K`` for a null
                                     value, sorted as strings; ``env_file`` first, then
                                     ``environment``; a null or empty value takes the
                                     variable's value when it is set
labels                               ``ContainerSpec.Labels`` + the namespace label
hostname, user, working_dir          ``Hostname``, ``User``, ``Dir``
init, read_only, tty, stdin_open     ``Init`` (sent only when set), ``ReadOnly``, ``TTY``,
                                     ``OpenStdin``
stop_grace_period, stop_signal       ``StopGracePeriod`` (ns), ``StopSignal``
healthcheck                          ``Healthcheck``: a string test is
                                     ``[CMD-SHELL, test]``; ``disable`` is ``[NONE]``;
                                     durations in ns, unset ones 0 (left out)
extra_hosts ``host:ip``              ``Hosts``: ``"ip host"``, in the file's order
dns, dns_search, dns_opt             ``DNSConfig`` {Nameservers, Search, Options}, only when
                                     one is set (stack deploy refuses ``dns_opt``)
cap_add, cap_drop                    ``CapabilityAdd``/``Drop``: upper case, ``CAP_`` added,
                                     ``ALL`` wins, added beats dropped, sorted, deduplicated
sysctls                              ``Sysctls``
ulimits (n, or {soft, hard})         ``Ulimits`` [{Name, Soft, Hard}] sorted by name
logging {driver, options}            ``TaskTemplate.LogDriver`` {Name, Options}
isolation                            ``Isolation``
credential_spec {file|registry}      ``Privileges.CredentialSpec``; ``Privileges`` is always
                                     sent
volumes (short and long)             ``Mounts`` in the file's order; a named volume's
                                     ``Source`` is ``<stack>_<name>`` (or its ``name``) with
                                     ``VolumeOptions`` {NoCopy, Labels + namespace,
                                     DriverConfig when driver or driver_opts is set}; an
                                     external one gets no labels; an anonymous one no
                                     options; ``bind.propagation`` -> ``BindOptions``;
                                     ``tmpfs.size`` -> ``TmpfsOptions.SizeBytes`` (the mode
                                     is not sent); ``consistency`` is passed on
ports                                ``EndpointSpec.Ports`` sorted by published port (stable);
                                     the short form sets Protocol and PublishMode, the long
                                     form only what it gives
deploy.endpoint_mode                 ``EndpointSpec.Mode``
networks (none: ``default``)         ``TaskTemplate.Networks`` sorted by target:
                                     ``<stack>_<name>`` (or its ``name``), ``Aliases`` = the
                                     file's aliases then the service's key, ``DriverOpts``
deploy.mode / replicas               ``Mode``: Replicated {Replicas}, Global, ReplicatedJob
                                     {MaxConcurrent, TotalCompletions = replicas}, GlobalJob
deploy.placement                     ``Placement`` {Constraints as written, Preferences
                                     (Spread), MaxReplicas}
deploy.resources                     ``Resources`` (always sent): Limits {NanoCPUs,
                                     MemoryBytes, Pids}, Reservations {NanoCPUs,
                                     MemoryBytes, GenericResources}
deploy.restart_policy                ``RestartPolicy`` {Condition, Delay, MaxAttempts,
                                     Window}; when unset, ``restart``: always /
                                     unless-stopped -> {Condition: any}, on-failure[:N] ->
                                     {on-failure, MaxAttempts N}, no -> none sent
deploy.update_config /               ``UpdateConfig`` / ``RollbackConfig``: Parallelism
rollback_config                      (default 1), Delay, FailureAction, Monitor,
                                     MaxFailureRatio, Order
(always)                             ``TaskTemplate.ForceUpdate``: kept from the swarm
===================================  ====================================================

Networks (``networks.<key>`` -> NetworkCreate), only those a service uses: Name
``<stack>_<key>`` (or ``name``), Driver (default overlay), Options = driver_opts, Internal,
Attachable, IPAM {Driver, Config [{Subnet}]} when ``ipam`` is set, Labels + namespace. An
external network is never created. converge goes further in one place: ``ipam`` gateways are
sent (stack deploy refuses them).

Fields under a service's ``x-converge.ignore`` are taken from the swarm's current spec on
update (``IGNORED_ENGINE_PATHS``), so the tool that owns them keeps its values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from converge.fileobjects import FileKind, FileRefs, stack_name
from converge.naming import STACK_IMAGE_LABEL, object_name, ownership_labels
from converge.spec import FileReference, MountSpec, NetworkSpec, ServiceSpec, Spec

__all__ = [
    "IGNORED_ENGINE_PATHS",
    "effective_capabilities",
    "network_create_body",
    "service_engine_spec",
]

Json = dict[str, Any]
EnginePath = tuple[str, ...]

_TASK = ("TaskTemplate",)
_CONTAINER = ("TaskTemplate", "ContainerSpec")

# x-converge.ignore path -> the parts of the engine's ServiceSpec it stands for.
IGNORED_ENGINE_PATHS: dict[str, tuple[EnginePath, ...]] = {
    "image": ((*_CONTAINER, "Image"), ("Labels", STACK_IMAGE_LABEL)),
    "command": ((*_CONTAINER, "Args"),),
    "entrypoint": ((*_CONTAINER, "Command"),),
    "environment": ((*_CONTAINER, "Env"),),
    "labels": ((*_CONTAINER, "Labels"),),
    "hostname": ((*_CONTAINER, "Hostname"),),
    "user": ((*_CONTAINER, "User"),),
    "working_dir": ((*_CONTAINER, "Dir"),),
    "init": ((*_CONTAINER, "Init"),),
    "read_only": ((*_CONTAINER, "ReadOnly"),),
    "tty": ((*_CONTAINER, "TTY"),),
    "stdin_open": ((*_CONTAINER, "OpenStdin"),),
    "stop_grace_period": ((*_CONTAINER, "StopGracePeriod"),),
    "stop_signal": ((*_CONTAINER, "StopSignal"),),
    "healthcheck": ((*_CONTAINER, "Healthcheck"),),
    "dns": ((*_CONTAINER, "DNSConfig", "Nameservers"),),
    "dns_search": ((*_CONTAINER, "DNSConfig", "Search"),),
    "dns_opt": ((*_CONTAINER, "DNSConfig", "Options"),),
    "extra_hosts": ((*_CONTAINER, "Hosts"),),
    "cap_add": ((*_CONTAINER, "CapabilityAdd"),),
    "cap_drop": ((*_CONTAINER, "CapabilityDrop"),),
    "sysctls": ((*_CONTAINER, "Sysctls"),),
    "ulimits": ((*_CONTAINER, "Ulimits"),),
    "logging": ((*_TASK, "LogDriver"),),
    "isolation": ((*_CONTAINER, "Isolation"),),
    "credential_spec": ((*_CONTAINER, "Privileges", "CredentialSpec"),),
    "ports": (("EndpointSpec", "Ports"),),
    "volumes": ((*_CONTAINER, "Mounts"),),
    "networks": ((*_TASK, "Networks"),),
    "deploy.replicas": (
        ("Mode", "Replicated", "Replicas"),
        ("Mode", "ReplicatedJob", "MaxConcurrent"),
        ("Mode", "ReplicatedJob", "TotalCompletions"),
    ),
    "deploy.labels": (("Labels",),),
    "deploy.update_config": (("UpdateConfig",),),
    "deploy.rollback_config": (("RollbackConfig",),),
    "deploy.restart_policy": ((*_TASK, "RestartPolicy"),),
    "deploy.resources": ((*_TASK, "Resources"),),
    "deploy.resources.limits": ((*_TASK, "Resources", "Limits"),),
    "deploy.resources.reservations": ((*_TASK, "Resources", "Reservations"),),
    "deploy.placement": ((*_TASK, "Placement"),),
    "deploy.placement.constraints": ((*_TASK, "Placement", "Constraints"),),
    "deploy.placement.preferences": ((*_TASK, "Placement", "Preferences"),),
    "deploy.placement.max_replicas_per_node": ((*_TASK, "Placement", "MaxReplicas"),),
    "deploy.endpoint_mode": (("EndpointSpec", "Mode"),),
}


def service_engine_spec(
    spec: Spec,
    key: str,
    base: Mapping[str, Any] | None = None,
    force_update: bool = False,
    files: FileRefs | None = None,
    image: str | None = None,
) -> Json:
    """The Engine API ServiceSpec that ``docker stack deploy`` would send for a service.

    Args:
        spec: the whole spec (names of networks and volumes are resolved against it).
        key: the service's key in ``spec.services``.
        base: the observed ServiceSpec to update, or ``None`` to create: its ``ForceUpdate``
            counter and the fields under ``x-converge.ignore`` are kept.
        force_update: increment ``ForceUpdate`` so every task is replaced (rebalancing).
        files: the version (name, id) of each secret and config to reference, by (kind, key)
            (``converge.fileobjects.resolve_versions``); stack deploy's names, without ids,
            for those not given.
        image: the ``ContainerSpec.Image`` to send, when not the image as written (a tag
            pinned to its digest, ``converge.images``); the label keeps the image as written.
    """
    service = spec.services[key]
    stack = spec.stack
    deploy = service.deploy
    result: Json = {
        "Name": object_name(stack, key),
        "Labels": {**deploy.labels, **ownership_labels(stack), STACK_IMAGE_LABEL: service.image},
        "TaskTemplate": {
            "ContainerSpec": _container_spec(spec, key, service, files, image or service.image),
            "Resources": _resources(service),
            "Placement": _placement(service),
            "Networks": _networks(spec, key),
            "ForceUpdate": 0,
        },
        "Mode": _mode(service),
        "EndpointSpec": _endpoint(service),
    }
    task = result["TaskTemplate"]
    restart = _restart_policy(service)
    if restart is not None:
        task["RestartPolicy"] = restart
    if service.logging is not None:
        task["LogDriver"] = _without_none(
            {"Name": service.logging.driver or "", "Options": dict(service.logging.options) or None}
        )
    for field, config in (
        ("UpdateConfig", deploy.update_config),
        ("RollbackConfig", deploy.rollback_config),
    ):
        if config is not None:
            result[field] = _update_config(config)
    if base is not None:
        task["ForceUpdate"] = int((base.get("TaskTemplate") or {}).get("ForceUpdate") or 0)
        for ignored in service.x_converge.ignore:
            for path in IGNORED_ENGINE_PATHS[ignored]:
                _copy_path(base, result, path)
    if force_update:
        task["ForceUpdate"] = int(task["ForceUpdate"]) + 1
    return result


def _container_spec(
    spec: Spec, key: str, service: ServiceSpec, files: FileRefs | None, image: str
) -> Json:
    container: Json = {
        "Image": image,
        "Labels": {**service.labels, **ownership_labels(spec.stack)},
        "Privileges": {"CredentialSpec": _credential_spec(service), "SELinuxContext": None},
    }
    # Each field only when set (most services set few), in this order.
    if service.entrypoint:
        container["Command"] = list(service.entrypoint)
    if service.command:
        container["Args"] = list(service.command)
    if service.hostname is not None:
        container["Hostname"] = service.hostname
    if service.environment:
        container["Env"] = sorted(
            name if value is None else f"{name}={value}"
            for name, value in service.environment.items()
        )
    if service.working_dir is not None:
        container["Dir"] = service.working_dir
    if service.user is not None:
        container["User"] = service.user
    if service.volumes:
        container["Mounts"] = [_engine_mount(spec, mount) for mount in service.volumes]
    if service.stop_grace_period is not None:
        container["StopGracePeriod"] = service.stop_grace_period
    if service.stop_signal is not None:
        container["StopSignal"] = service.stop_signal
    if service.tty:
        container["TTY"] = service.tty
    if service.stdin_open:
        container["OpenStdin"] = service.stdin_open
    if service.read_only:
        container["ReadOnly"] = service.read_only
    if service.init is not None:
        container["Init"] = service.init
    healthcheck = _healthcheck(service)
    if healthcheck is not None:
        container["Healthcheck"] = healthcheck
    if service.extra_hosts:
        container["Hosts"] = [
            f"{ip} {host}" for host, _, ip in map(_split_host, service.extra_hosts)
        ]
    dns = _dns_config(service)
    if dns is not None:
        container["DNSConfig"] = dns
    if service.isolation is not None:
        container["Isolation"] = service.isolation
    if service.secrets:
        container["Secrets"] = _file_references(spec, "secret", service.secrets, files)
    if service.configs:
        container["Configs"] = _file_references(spec, "config", service.configs, files)
    if service.sysctls:
        container["Sysctls"] = dict(service.sysctls)
    if service.ulimits:
        container["Ulimits"] = [
            {"Name": name, "Hard": limit.hard, "Soft": limit.soft}
            for name, limit in sorted(service.ulimits.items())
        ]
    cap_add, cap_drop = effective_capabilities(service.cap_add, service.cap_drop)
    if cap_add:
        container["CapabilityAdd"] = cap_add
    if cap_drop:
        container["CapabilityDrop"] = cap_drop
    return container


def _file_references(
    spec: Spec, kind: FileKind, references: Iterable[FileReference], files: FileRefs | None
) -> list[Json]:
    """``Secrets``/``Configs`` as stack deploy sends them (``convertFileObject``): the target
    defaults to the key, uid and gid to "0", the mode to 0444; sorted by name."""
    name_field, id_field = (
        ("SecretName", "SecretID") if kind == "secret" else ("ConfigName", "ConfigID")
    )
    result = []
    for reference in references:
        name, object_id = (files or {}).get((kind, reference.source)) or (
            stack_name(spec, kind, reference.source),
            "",
        )
        result.append(
            {
                "File": {
                    "Name": reference.target or reference.source,
                    "UID": reference.uid or "0",
                    "GID": reference.gid or "0",
                    "Mode": 0o444 if reference.mode is None else reference.mode,
                },
                id_field: object_id,
                name_field: name,
            }
        )
    return sorted(result, key=lambda item: str(item[name_field]))


def _split_host(entry: str) -> tuple[str, str, str]:
    return entry.partition(":")


def _credential_spec(service: ServiceSpec) -> Json | None:
    credential = service.credential_spec
    if credential is None:
        return None
    return _without_none({"File": credential.file, "Registry": credential.registry}) or None


def _healthcheck(service: ServiceSpec) -> Json | None:
    check = service.healthcheck
    if check is None:
        return None
    if check.disable:
        return {"Test": ["NONE"]}
    return _without_none(
        {
            "Test": list(check.test) or None,
            "Interval": check.interval or None,
            "Timeout": check.timeout or None,
            "StartPeriod": check.start_period or None,
            "StartInterval": check.start_interval or None,
            "Retries": check.retries or None,
        }
    )


def _dns_config(service: ServiceSpec) -> Json | None:
    if service.dns is None and service.dns_search is None and service.dns_opt is None:
        return None
    return _without_none(
        {
            "Nameservers": list(service.dns) if service.dns is not None else None,
            "Search": list(service.dns_search) if service.dns_search is not None else None,
            "Options": list(service.dns_opt) if service.dns_opt is not None else None,
        }
    )


def effective_capabilities(add: Iterable[str], drop: Iterable[str]) -> tuple[list[str], list[str]]:
    """``cap_add``/``cap_drop`` as docker/cli sends them (``opts.EffectiveCapAddCapDrop``)."""
    if not add and not drop:
        return [], []  # the usual case, asked once per service and plan

    def normalised(capabilities: Iterable[str]) -> set[str]:
        result = set()
        for capability in capabilities:
            name = capability.strip().upper()
            if name not in ("ALL", "RESET") and not name.startswith("CAP_"):
                name = "CAP_" + name
            result.add(name)
        return {"ALL"} if "ALL" in result else result

    added, dropped = normalised(add), normalised(drop)
    return (
        sorted(name for name in added if name != "RESET"),
        sorted(name for name in dropped if name not in added and name != "RESET"),
    )


def _resources(service: ServiceSpec) -> Json:
    resources = service.deploy.resources
    result: Json = {}
    if resources.limits is not None:
        limits = resources.limits
        result["Limits"] = _without_none(
            {"NanoCPUs": limits.cpus, "MemoryBytes": limits.memory, "Pids": limits.pids}
        )
    if resources.reservations is not None:
        reservations = resources.reservations
        result["Reservations"] = _without_none(
            {
                "NanoCPUs": reservations.cpus,
                "MemoryBytes": reservations.memory,
                "GenericResources": [
                    {
                        "DiscreteResourceSpec": {
                            "Kind": item.discrete_resource_spec.kind,
                            "Value": item.discrete_resource_spec.value,
                        }
                    }
                    for item in reservations.generic_resources
                ]
                or None,
            }
        )
    return result


def _placement(service: ServiceSpec) -> Json:
    placement = service.deploy.placement
    if not placement.preferences and not placement.max_replicas_per_node:  # the usual one
        return {"Constraints": list(placement.constraints)} if placement.constraints else {}
    return _without_none(
        {
            "Constraints": list(placement.constraints) or None,
            "Preferences": [
                {"Spread": {"SpreadDescriptor": preference.spread}}
                for preference in placement.preferences
            ]
            or None,
            "MaxReplicas": placement.max_replicas_per_node or None,
        }
    )


def _networks(spec: Spec, key: str) -> list[Json]:
    attachments = []
    for name, attachment in spec.service_networks(key).items():
        target = spec.network_name(name)
        entry: Json = {"Target": target}
        aliases = list(attachment.aliases)
        # As stack deploy: the service's name is an alias on user-defined networks only.
        if target not in ("host", "bridge", "none", "default"):
            aliases.append(key)
        if aliases:
            entry["Aliases"] = aliases
        if attachment.driver_opts:
            entry["DriverOpts"] = dict(attachment.driver_opts)
        attachments.append(entry)
    return sorted(attachments, key=lambda item: str(item["Target"]))


def _mode(service: ServiceSpec) -> Json:
    deploy = service.deploy
    replicas = {} if deploy.replicas is None else {"Replicas": deploy.replicas}
    if deploy.mode == "global":
        return {"Global": {}}
    if deploy.mode == "global-job":
        return {"GlobalJob": {}}
    if deploy.mode == "replicated-job":
        if deploy.replicas is None:
            return {"ReplicatedJob": {}}
        return {
            "ReplicatedJob": {
                "MaxConcurrent": deploy.replicas,
                "TotalCompletions": deploy.replicas,
            }
        }
    return {"Replicated": replicas}


def _endpoint(service: ServiceSpec) -> Json:
    mode = service.deploy.endpoint_mode
    if not service.ports:  # the usual one
        return {} if mode is None else {"Mode": mode}
    ports = [
        _without_none(
            {
                "Protocol": port.protocol,
                "TargetPort": port.target,
                "PublishedPort": port.published,
                "PublishMode": port.mode,
            }
        )
        for port in service.ports
    ]
    # Stable, as Go's sort.Slice is on the short lists compose files have.
    ports.sort(key=lambda port: int(port.get("PublishedPort", 0)))
    return _without_none({"Mode": mode, "Ports": ports})


def _restart_policy(service: ServiceSpec) -> Json | None:
    policy = service.deploy.restart_policy
    if policy is not None:
        return _without_none(
            {
                "Condition": policy.condition,
                "Delay": policy.delay,
                "MaxAttempts": policy.max_attempts,
                "Window": policy.window,
            }
        )
    restart = service.restart
    if restart is None or restart == "no":
        return None
    if restart in ("always", "unless-stopped"):
        return {"Condition": "any"}
    _, _, attempts = restart.partition(":")
    return {"Condition": "on-failure", "MaxAttempts": int(attempts or 0)}


def _update_config(config: Any) -> Json:
    # MaxFailureRatio and Order are always sent (no omitempty in docker's types): the engine
    # reads "" as its default order.
    return _without_none(
        {
            "Parallelism": 1 if config.parallelism is None else config.parallelism,
            "Delay": config.delay or None,
            "FailureAction": config.failure_action,
            "Monitor": config.monitor or None,
            "MaxFailureRatio": config.max_failure_ratio or 0,
            "Order": config.order or "",
        }
    )


def _engine_mount(spec: Spec, mount: MountSpec) -> Json:
    result: Json = _without_none(
        {
            "Type": mount.type,
            "Source": mount.source,
            "Target": mount.target,
            "ReadOnly": mount.read_only or None,
            "Consistency": mount.consistency,
        }
    )
    if mount.type == "volume" and mount.source:
        declared = spec.volumes[mount.source]
        result["Source"] = spec.volume_name(mount.source)
        options: Json = {}
        if mount.volume is not None and mount.volume.nocopy:
            options["NoCopy"] = True
        if not declared.external:
            options["Labels"] = {**dict(declared.labels), **ownership_labels(spec.stack)}
            if declared.driver is not None or declared.driver_opts is not None:
                options["DriverConfig"] = _without_none(
                    {
                        "Name": declared.driver,
                        "Options": dict(declared.driver_opts)
                        if declared.driver_opts is not None
                        else None,
                    }
                )
        result["VolumeOptions"] = options
    elif mount.type == "bind" and mount.bind is not None:
        result["BindOptions"] = _without_none({"Propagation": mount.bind.propagation})
    elif mount.type == "tmpfs" and mount.tmpfs is not None:
        result["TmpfsOptions"] = _without_none({"SizeBytes": mount.tmpfs.size or None})
    # An anonymous volume gets no options at all (nocopy included), as with stack deploy.
    return result


def _without_none(values: Mapping[str, Any]) -> Json:
    return {key: value for key, value in values.items() if value is not None}


def _copy_path(source: Mapping[str, Any], target: Json, path: EnginePath) -> None:
    """Set ``target`` at ``path`` to ``source``'s value there, or remove it if ``source`` has
    none (so an ignored field is exactly what the swarm has)."""
    value: Any = source
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    parent: Any = target
    for part in path[:-1]:
        if value is None and not isinstance(parent.get(part), dict):
            return
        parent = parent.setdefault(part, {})
    if value is None:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = copy.deepcopy(value)


def network_create_body(spec: Spec, key: str) -> Json:
    """The Engine API NetworkCreate body (without the name) for network ``key``, as stack
    deploy creates it (``key`` may be the implicit ``default``)."""
    network: NetworkSpec = spec.stack_networks()[key]
    body: Json = {
        "Driver": network.driver or "overlay",
        "Scope": "swarm",
        "Attachable": network.attachable,
        "Internal": network.internal,
        "Options": dict(network.driver_opts),
        "Labels": {**dict(network.labels), **ownership_labels(spec.stack)},
    }
    if network.ipam is not None and (network.ipam.driver or network.ipam.config):
        body["IPAM"] = {
            "Driver": network.ipam.driver or "default",
            "Config": [
                _without_none({"Subnet": pool.subnet, "Gateway": pool.gateway})
                for pool in network.ipam.config
            ],
        }
    return body
