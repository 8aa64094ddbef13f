"""The format reference (docs/spec.md), generated from the spec models so it never drifts.

Run ``python -m converge.docgen > docs/spec.md``; a unit test fails when the committed file
differs from what this module renders. Fields, types, defaults and the models' descriptions
come from the Pydantic models; the short-form examples and the sections on interpolation,
secrets, merging and editors are written here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from converge.spec import IGNORED_SERVICE_KEYS, NAME_PATTERN, STACK_PATTERN, Spec
from converge.units import format_duration

__all__ = ["render_spec_reference"]

# Validators that turn a short form into the canonical one, by qualified name, and the type
# a user writes for them.
_USER_TYPES = {
    "parse_duration": "duration",
    "parse_memory": "size",
    "parse_cpus": "number of CPUs",
    "_check_constraint": "constraint",
    "_split_command": "command",
    "_list_to_map.<locals>.convert": "mapping of text, or list of `KEY=VALUE`",
    "_expand_ports": "list of ports",
    "_expand_mounts": "list of volumes",
    "_networks_to_map": "list of network names, or mapping of name to attachment",
    "_healthcheck_test": "test command",
    "_subnet": "subnet (CIDR)",
    "_ip_address": "IP address",
    "_scalar_to_text": "text",
    "_one_or_many": "text, or list of text",
    "_extra_hosts": "list of `HOST:IP`, or mapping of host to IP",
    "_ulimits": "mapping of name to a number or {soft, hard}",
    "_file_references": "list of names, or of long forms",
    "_external": "boolean",
    "_check_ignore_path": "field path",
}

# Where each model is written in a file, for its heading.
_LOCATIONS = {
    "Spec": "the top level of a compose file",
    "ConvergeSpec": "`x-converge` (top level)",
    "ClusterSpec": "`x-converge.cluster`",
    "SwarmSettings": "`x-converge.cluster.swarm`",
    "NodeSpec": "`x-converge.cluster.nodes.<hostname>`",
    "NetworkSpec": "`networks.<name>`",
    "IpamSpec": "`networks.<name>.ipam`",
    "IpamPool": "`networks.<name>.ipam.config[]`",
    "VolumeSpec": "`volumes.<name>`",
    "FileObjectSpec": "`secrets.<name>` and `configs.<name>`",
    "ServiceSpec": "`services.<name>`",
    "ServiceConvergeSpec": "`services.<name>.x-converge`",
    "DeploySpec": "`services.<name>.deploy`",
    "PlacementSpec": "`services.<name>.deploy.placement`",
    "SpreadPreference": "`services.<name>.deploy.placement.preferences[]`",
    "PortSpec": "`services.<name>.ports[]`",
    "MountSpec": "`services.<name>.volumes[]`",
    "BindOptions": "`services.<name>.volumes[].bind`",
    "VolumeOptions": "`services.<name>.volumes[].volume`",
    "TmpfsOptions": "`services.<name>.volumes[].tmpfs`",
    "NetworkAttachment": "`services.<name>.networks.<network>`",
    "FileReference": "`services.<name>.secrets[]` and `.configs[]`",
    "FileObjectConvergeSpec": "`secrets.<name>.x-converge` and `configs.<name>.x-converge`",
    "AgeSourceSpec": "`secrets.<name>.x-converge.age`",
    "UlimitSpec": "`services.<name>.ulimits.<name>`",
    "LoggingSpec": "`services.<name>.logging`",
    "CredentialSpecSpec": "`services.<name>.credential_spec`",
    "UpdateConfigSpec": "`services.<name>.deploy.update_config`",
    "RollbackConfigSpec": "`services.<name>.deploy.rollback_config`",
    "RestartPolicySpec": "`services.<name>.deploy.restart_policy`",
    "ResourcesSpec": "`services.<name>.deploy.resources`",
    "ResourceSpec": "`services.<name>.deploy.resources.limits` and `.reservations`",
    "GenericResource": "`services.<name>.deploy.resources.reservations.generic_resources[]`",
    "DiscreteResource": "`...generic_resources[].discrete_resource_spec`",
    "HealthcheckSpec": "`services.<name>.healthcheck`",
    "LoadBalancerSpec": "`x-converge.loadbalancer`",
    "LoadBalancerFrontend": "`x-converge.loadbalancer.frontends.<name>`",
    "LoadBalancerBackend": "`x-converge.loadbalancer.backends.<name>`",
    "LoadBalancerTimeouts": "`x-converge.loadbalancer.timeouts`",
    "LoadBalancerStats": "`x-converge.loadbalancer.stats`",
}

# Descriptions for fields whose model gives none (a model's own description always wins).
_NOTES = {
    ("Spec", "networks"): "Networks, by name (`<stack>_<name>` in the swarm unless `name`).",
    ("Spec", "volumes"): "Named volumes, by name (`<stack>_<name>` unless `name`).",
    ("Spec", "services"): "Services, by name (`<stack>_<name>` in the swarm).",
    ("Spec", "secrets"): "Swarm secrets, by name: rotated on change (docs/secrets.md).",
    ("Spec", "configs"): "Swarm configs, by name: rotated on change (docs/secrets.md).",
    ("Spec", "x-converge"): "What converge adds: the stack name, the cluster, the load balancer.",
    ("ConvergeSpec", "cluster"): "The cluster spec: one spec owns the nodes (docs/cluster.md).",
    ("ConvergeSpec", "nodes"): "Moved to `x-converge.cluster.nodes`: an error.",
    ("ClusterSpec", "nodes"): "Nodes, by hostname: their role, availability and labels.",
    ("ConvergeSpec", "loadbalancer"): "An HAProxy container outside the swarm.",
    ("NetworkSpec", "attachable"): "Standalone containers (the load balancer) may join it.",
    ("NetworkSpec", "internal"): "No traffic to or from outside the network.",
    ("NetworkSpec", "labels"): "Labels on the network.",
    ("NetworkSpec", "ipam"): "The address pool (default: the engine picks one).",
    ("IpamSpec", "driver"): "The IPAM driver (default: `default`).",
    ("IpamSpec", "config"): "Address pools.",
    ("IpamPool", "subnet"): "The pool's subnet, for example `10.20.0.0/16`.",
    ("VolumeSpec", "driver"): "The volume driver (default: `local`).",
    ("VolumeSpec", "driver_opts"): "Options passed to the driver.",
    ("VolumeSpec", "labels"): "Labels on the volume.",
    ("ServiceSpec", "x-converge"): "Per-service policy: fields left to another tool.",
    ("ServiceSpec", "deploy"): "How swarm runs the service.",
    ("ServiceSpec", "environment"): "Environment variables (a null value sends the bare name).",
    ("ServiceSpec", "ports"): "Published ports.",
    ("ServiceSpec", "volumes"): "Volumes, bind mounts and tmpfs mounts.",
    ("ServiceSpec", "healthcheck"): "The container's healthcheck (default: the image's).",
    ("ServiceSpec", "stop_grace_period"): "Time to stop before a kill (default `10s`).",
    ("ServiceSpec", "stop_signal"): "The signal that stops the container.",
    ("ServiceSpec", "user"): "The user (and group) the process runs as.",
    ("ServiceSpec", "working_dir"): "The working directory.",
    ("ServiceSpec", "hostname"): "The container's hostname (templates such as `{{.Node.ID}}`).",
    ("ServiceSpec", "init"): "Run an init process as PID 1 (default: the daemon's setting).",
    ("ServiceSpec", "read_only"): "Mount the root filesystem read-only.",
    ("ServiceSpec", "tty"): "Allocate a pseudo-TTY.",
    ("ServiceSpec", "stdin_open"): "Keep stdin open.",
    ("ServiceSpec", "dns"): "DNS servers.",
    ("ServiceSpec", "dns_search"): "DNS search domains.",
    ("ServiceSpec", "extra_hosts"): "Extra /etc/hosts entries.",
    ("ServiceSpec", "cap_add"): "Capabilities to add (`NET_ADMIN` or `CAP_NET_ADMIN`).",
    ("ServiceSpec", "cap_drop"): "Capabilities to drop (`ALL` drops all).",
    ("ServiceSpec", "sysctls"): "Kernel parameters of the container.",
    ("ServiceSpec", "ulimits"): "Resource limits of the processes.",
    ("ServiceSpec", "logging"): "The log driver and its options.",
    ("ServiceSpec", "isolation"): "Isolation technology (Windows; `default` elsewhere).",
    ("ServiceSpec", "credential_spec"): "A Windows credential spec (`file` or `registry`).",
    ("ServiceSpec", "secrets"): "Secrets mounted in `/run/secrets/` (short or long form).",
    ("ServiceSpec", "configs"): "Configs mounted as files (short or long form).",
    ("DeploySpec", "update_config"): "How a rolling update proceeds.",
    ("DeploySpec", "rollback_config"): "How a rollback proceeds.",
    ("DeploySpec", "restart_policy"): "When tasks restart (default: always, after `5s`).",
    ("DeploySpec", "resources"): "CPU, memory and pids limits, and reservations.",
    ("DeploySpec", "placement"): "Where tasks may run.",
    ("DeploySpec", "endpoint_mode"): "`vip` (a virtual IP, default) or `dnsrr` (DNS round robin).",
    ("PlacementSpec", "constraints"): "Every constraint must hold on a node to run a task.",
    ("PlacementSpec", "preferences"): "Spread tasks evenly over the values of a label.",
    ("PlacementSpec", "max_replicas_per_node"): "At most this many tasks per node (0: no limit).",
    ("SpreadPreference", "spread"): "The label (or `node.id`, ...) to spread over.",
    ("MountSpec", "type"): "`volume`, `bind` or `tmpfs`.",
    ("MountSpec", "read_only"): "Mount read-only.",
    ("MountSpec", "consistency"): "Passed on to the engine (macOS; ignored on Linux).",
    ("MountSpec", "bind"): "Bind mount options.",
    ("MountSpec", "volume"): "Volume mount options.",
    ("MountSpec", "tmpfs"): "tmpfs mount options.",
    ("BindOptions", "propagation"): "Bind propagation.",
    ("VolumeOptions", "nocopy"): "Do not copy the image's files into a new volume.",
    ("TmpfsOptions", "size"): "The tmpfs size.",
    ("PortSpec", "protocol"): "`tcp` (default), `udp` or `sctp`.",
    ("NetworkAttachment", "aliases"): "More DNS names of the service on this network.",
    ("NetworkAttachment", "driver_opts"): "Options of the attachment.",
    ("FileReference", "source"): "The declared secret or config.",
    ("FileReference", "target"): "The file name in the container.",
    ("FileReference", "uid"): "The file's owner (default `0`).",
    ("FileReference", "gid"): "The file's group (default `0`).",
    ("FileReference", "mode"): "The file's mode (default `0444`).",
    ("FileObjectSpec", "file"): "The file holding the value.",
    ("FileObjectSpec", "environment"): "The variable holding the value.",
    ("FileObjectSpec", "content"): "The value itself.",
    ("FileObjectSpec", "external"): "Exists already; never changed.",
    ("FileObjectSpec", "name"): "The object's real name.",
    ("FileObjectSpec", "labels"): "Labels on the object.",
    ("FileObjectSpec", "driver"): "A secret store driver (not supported by converge yet).",
    ("FileObjectSpec", "x-converge"): "Sources beyond compose (age, command) and retention.",
    ("FileObjectSpec", "driver_opts"): "Options of the driver.",
    ("FileObjectSpec", "template_driver"): "The templating driver.",
    ("UlimitSpec", "soft"): "The soft limit.",
    ("UlimitSpec", "hard"): "The hard limit.",
    ("LoggingSpec", "driver"): "The log driver (default: the daemon's).",
    ("LoggingSpec", "options"): "Options of the driver.",
    ("CredentialSpecSpec", "config"): "A config holding the spec (not supported yet).",
    ("CredentialSpecSpec", "file"): "A file in the engine's CredentialSpecs directory.",
    ("CredentialSpecSpec", "registry"): "A registry value.",
    ("HealthcheckSpec", "test"): "The command; `NONE` disables the image's healthcheck.",
    ("HealthcheckSpec", "interval"): "Time between checks (default `30s`).",
    ("HealthcheckSpec", "timeout"): "Time a check may take (default `30s`).",
    ("HealthcheckSpec", "retries"): "Failures in a row that make it unhealthy (default 3).",
    ("HealthcheckSpec", "start_period"): "Time to start before failures count.",
    ("HealthcheckSpec", "disable"): "Disable the image's healthcheck.",
    ("UpdateConfigSpec", "parallelism"): "Tasks updated at once (default 1; 0: all).",
    ("UpdateConfigSpec", "delay"): "Time between batches.",
    ("UpdateConfigSpec", "failure_action"): "`pause` (default), `continue` or `rollback`.",
    ("UpdateConfigSpec", "monitor"): "Time to watch each task for failure (`0s` when unset).",
    ("UpdateConfigSpec", "max_failure_ratio"): "Failures tolerated during an update.",
    ("UpdateConfigSpec", "order"): "`stop-first` (default) or `start-first`.",
    ("RollbackConfigSpec", "parallelism"): "Tasks rolled back at once (default 1; 0: all).",
    ("RollbackConfigSpec", "delay"): "Time between batches.",
    ("RollbackConfigSpec", "failure_action"): "`pause` (default) or `continue`.",
    ("RollbackConfigSpec", "monitor"): "Time to watch each task for failure (`0s` when unset).",
    ("RollbackConfigSpec", "max_failure_ratio"): "Failures tolerated during a rollback.",
    ("RollbackConfigSpec", "order"): "`stop-first` (default) or `start-first`.",
    ("RestartPolicySpec", "condition"): "`any` (default), `on-failure` or `none`.",
    ("RestartPolicySpec", "delay"): "Time between restarts (default `5s`).",
    ("RestartPolicySpec", "max_attempts"): "Restarts before giving up (0: no limit).",
    ("RestartPolicySpec", "window"): "Time a restart takes to count as a success.",
    ("ResourcesSpec", "limits"): "Limits.",
    ("ResourcesSpec", "reservations"): "Reservations: what the scheduler sets aside.",
    ("ResourceSpec", "cpus"): "CPUs.",
    ("ResourceSpec", "memory"): "Memory.",
    ("GenericResource", "discrete_resource_spec"): "A named resource, counted.",
    ("DiscreteResource", "kind"): "The resource's name (`gpu`).",
    ("DiscreteResource", "value"): "How many.",
    ("LoadBalancerSpec", "name"): "The container is named `<stack>_<name>`.",
    ("LoadBalancerSpec", "image"): "The HAProxy image.",
    ("LoadBalancerSpec", "mode"): "Proxy HTTP or plain TCP.",
    ("LoadBalancerSpec", "frontends"): "What HAProxy listens on.",
    ("LoadBalancerSpec", "backends"): "Where HAProxy sends traffic.",
    ("LoadBalancerSpec", "timeouts"): "HAProxy's timeouts.",
    ("LoadBalancerSpec", "stats"): "HAProxy's statistics page.",
    ("LoadBalancerFrontend", "port"): "The port HAProxy listens on.",
    ("LoadBalancerBackend", "balance"): "HAProxy's balance algorithm.",
    ("LoadBalancerTimeouts", "connect"): "Time to connect to a server.",
    ("LoadBalancerTimeouts", "client"): "Inactivity time of a client.",
    ("LoadBalancerTimeouts", "server"): "Inactivity time of a server.",
    ("LoadBalancerStats", "port"): "The port of the statistics page.",
    ("LoadBalancerStats", "uri"): "Its path.",
}


def _code(value: object) -> str:
    return f"`{value}`"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0], True
    return annotation, False


def _validator_names(metadata: list[Any]) -> list[str]:
    return [
        getattr(item.func, "__qualname__", "")
        for item in metadata
        if isinstance(item, BeforeValidator)
    ]


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for name, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, name, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                parts.append(f"{symbol} {value}")
    return f" ({', '.join(parts)})" if parts else ""


def _describe(annotation: Any, metadata: list[Any]) -> str:
    """The type of a field in the words a spec author uses."""
    annotation, _ = _unwrap_optional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        flat = [
            item
            for entry in extra
            for item in (entry.metadata if isinstance(entry, FieldInfo) else [entry])
        ]
        return _describe(inner, [*flat, *metadata])
    for name in _validator_names(metadata):
        if name in _USER_TYPES:
            return _USER_TYPES[name]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        options = [_code(option) for option in typing.get_args(annotation)]
        return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]
    if origin is dict:
        value = typing.get_args(annotation)[1]
        return f"mapping of name to {_describe(value, [])}"
    if origin is tuple:
        return f"list of {_describe(typing.get_args(annotation)[0], [])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        bounds = _bounds(metadata)
        return "port (1 to 65535)" if bounds == " (>= 1, <= 65535)" else f"integer{bounds}"
    if annotation is float:
        return f"number{_bounds(metadata)}"
    if annotation is str:
        patterns = {getattr(item, "pattern", None) for item in metadata}
        if STACK_PATTERN in patterns:
            return "stack name"
        if NAME_PATTERN in patterns:
            return "name"
        if "^/" in patterns:
            return "absolute path"
        return "text"
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return _code("true" if value else "false")
    if value in ({}, ()):
        return "empty"
    if isinstance(value, BaseModel):
        return "all defaults"
    names = _validator_names(list(field.metadata))
    if "parse_duration" in names and isinstance(value, int):
        return _code(format_duration(value))
    return _code(value)


def _models() -> Iterator[type[BaseModel]]:
    """Every spec model, breadth first from ``Spec``, each once."""
    seen: list[type[BaseModel]] = [Spec]
    index = 0
    while index < len(seen):
        model = seen[index]
        index += 1
        yield model
        for field in model.model_fields.values():
            for found in _models_in(field.annotation):
                if found not in seen:
                    seen.append(found)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _one_line(text: str) -> str:
    """One Markdown line: reST ``code`` becomes `code`, and <words> outside code stay text."""
    text = " ".join(text.split()).replace("``", "`")
    parts = text.split("`")
    for index in range(0, len(parts), 2):  # the even parts are outside backticks
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _is_ignored(field: FieldInfo) -> bool:
    """A compose key swarm ignores: listed in its own section, not in the field tables."""
    return field.annotation is typing.Any or (
        typing.get_origin(field.annotation) is typing.Annotated
        and typing.get_args(field.annotation)[0] is typing.Any
    )


def _model_section(model: type[BaseModel]) -> list[str]:
    name = model.__name__
    lines = [f"### {name}", ""]
    lines.append(f"Written at {_LOCATIONS.get(name, 'a nested mapping')}.")
    if model.__doc__:
        lines.append(_one_line(model.__doc__.strip().split("\n\n")[0]))
    lines += ["", "| Field | Type | Default | Description |", "|---|---|---|---|"]
    ignored = []
    for field_name, field in model.model_fields.items():
        key = field.alias or field_name
        if _is_ignored(field):
            ignored.append(key)
            continue
        kind = _describe(field.annotation, list(field.metadata))
        description = field.description or _NOTES.get((name, key), "")
        row = [_code(key), kind, _default(field), _one_line(description)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    if ignored:
        lines += ["", "Accepted and ignored, as by swarm: " + ", ".join(map(_code, ignored)) + "."]
    return [*lines, ""]


_INTRODUCTION = """\
# The converge spec reference: a compose file

converge reads the file you give `docker stack deploy -c`: a compose file, as the compose
specification defines it, with `deploy:` sections. The same file deploys with
`docker stack deploy -c FILE STACK` and with `converge apply -c FILE STACK`, and passes
`docker compose config`. converge's own additions live in compose extension fields
(`x-converge`), which the other tools ignore. `converge validate -c FILE` checks a file without
touching a swarm; `converge schema` prints the JSON Schema that editors use to complete and
check it.

This file is generated from the spec models by `python -m converge.docgen > docs/spec.md`;
do not edit it by hand.

Every mapping refuses unknown keys (with a "did you mean" suggestion, which knows compose's
names: `replicas` -> `deploy.replicas`). Errors name the file, line, column and field, all of
them at once:

```
specs/prod.yml:14:7: services.mvc.deploy.replicas: expected a whole number, got 'five'
```

## A small file

```yaml
# yaml-language-server: $schema=../docs/converge.schema.json
x-converge:
  stack: exampleapp          # optional: the STACK argument, or the top-level name
  cluster:
    nodes:
      manager: {role: manager}
      worker1: {role: worker, labels: {type: mvc}}
  loadbalancer:
    image: haproxy:2.8
    node: manager
    frontends:
      web: {port: 80, backend: mvc}
    backends:
      mvc: {service: mvc, port: 3000, method: ingress}

networks:
  backend: {attachable: true}

services:
  mvc:
    image: apress/exampleapp:swarm-1.0
    ports: ["3000:80"]
    environment:
      DBHOST: mysql
      DB_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}
    networks: [backend]
    deploy:
      replicas: 3
      placement:
        constraints: [node.labels.type == mvc]
```

## What a file means

The file is the full desired state of each service it lists: converge makes each service
exactly what `docker stack deploy` of the file would make it (`converge.engine_spec` mirrors
docker/cli's conversion, field by field, and is tested against the requests stack deploy
sends). A field the file leaves unset means the engine's default, as stack deploy would send
it: a hand change to any field of a listed service (a user, a healthcheck, a DNS server, a
capability ...) shows in `converge plan` and `converge drift`, and `converge apply` restores
it. The exceptions are the fields a service lists under `x-converge.ignore`.

What stack deploy does implicitly, converge does too:

- objects are named `<stack>_<name>`, unless a network or volume sets `name`;
- a service that names no network joins `<stack>_default`, an overlay network created only
  when a service uses it; a declared network no service uses is not created;
- `external: true` networks and volumes are used as they are, by their `name` (or key);
- every service, container, network and named volume carries the label
  `com.docker.stack.namespace=<stack>`, and each service `com.docker.stack.image` (the image as
  written); converge adds no label of its own, so either tool can take over from the other;
- a service's key is a DNS alias on each of its networks;
- a `restart:` value is used when `deploy.restart_policy` is unset (`always` -> any,
  `on-failure[:N]`, `no` -> the engine's default).

## What converge adds: x-converge

At the top level, `x-converge` holds:

- `stack`: the stack's name. Optional: `converge plan -c FILE STACK` names it, as
  `docker stack deploy` does, and so may the file's top-level `name` (compose's project name,
  which `x-converge.stack` overrides). The command line's STACK wins over both, as with
  docker stack deploy, with a warning when it differs from `x-converge.stack`; files that name
  different stacks are an error, not a merge into the last one;
- `nodes`: the swarm's nodes by hostname, with their role, availability and labels (placement
  constraints are checked against them before anything is written);
- `loadbalancer`: an HAProxy container outside the swarm, in front of a service;
- `with_registry_auth` and `resolve_image`: `--with-registry-auth` and `--resolve-image` for
  every run (docs/registries.md).

In a service, `x-converge.ignore` lists fields another tool owns, like Terraform's
`ignore_changes` and Argo CD's `ignoreDifferences`: replicas driven by an autoscaler or
swarm-cronjob (`deploy.replicas`), an image bumped by an updater (`image`). They never show as
drift, and an update keeps their values in the swarm:

```yaml
services:
  worker:
    image: example/worker:1.4
    deploy: {replicas: 2}
    x-converge:
      ignore: [deploy.replicas, image]
```

Other `x-` keys are allowed in every mapping compose defines, and ignored.

## Keys swarm ignores

These compose keys are accepted and ignored, each with a warning naming its file and line
(docker stack deploy ignores or refuses them), so that a file shared with `docker compose up`
works: {ignored}. Also ignored with a warning: a host IP in a port (`127.0.0.1:80:80`), a
long-form port's `host_ip`, a tmpfs mount's `mode`, and a network attachment's
`ipv4_address`, `ipv6_address`, `link_local_ips` and `priority`.

## Differences from docker stack deploy

Where converge goes further, or stops short:

- Variables: converge reads a `.env` file beside the first file (or the files given with
  `--env-file`) for interpolation, as `docker compose` does; the environment wins over it.
  `docker stack deploy` reads neither (moby/moby#29133).
- Several files merge by the compose specification's rules (see below); docker stack deploy's
  own merge differs in places (it merges ports by published port alone). `!override` and
  `!reset` work as in compose.
- `dns_opt`, `deploy.resources.limits.pids` and an `ipam` pool's `gateway` are sent to the
  engine; docker stack deploy's schema refuses them.
- Networks: a network whose settings changed is replaced (its services detached and
  reattached); docker stack deploy never updates a network. With `--prune`, owned networks
  the stack no longer uses are removed too, not only services.
- An update changes nothing but what differs, waits until the swarm converged, and a plan shows
  it first; docker stack deploy sends every service again, whatever changed.
- `endpoint_mode: dnsrr` with a port on the routing mesh is an error when the file is
  loaded; the engine refuses it only when it creates the service, after other objects of the
  stack were written.
- Image tags are pinned to digests as with stack deploy's `--resolve-image` (default
  `always`, also `changed` and `never`); a re-pushed tag shows in the plan as its digest
  moving; a tag no registry knows is used as written, with a warning; a service whose tag is
  unchanged keeps the digest it runs where no new digest is resolved (docs/registries.md).
  `--with-registry-auth` sends the docker client's credentials, as stack deploy does.
- Secrets and configs are named, labelled and referenced as docker stack deploy does (first
  version `<stack>_<name>` or `name`; target the key, uid and gid `0`, mode `0444` unless given),
  plus two labels of converge's (`io.converge.version-of` and, on secrets, a salted scrypt
  `io.converge.fingerprint`). Where stack deploy fails on changed content (swarm secrets are
  immutable), converge creates a new version, rolls the services onto it and removes old
  versions beyond `x-converge.keep` (docs/secrets.md). `environment` and `content` sources and
  converge's `x-converge.age` and `x-converge.command` are read by converge; secret drivers
  (plugins) are refused.
- A service of the file that exists outside any stack (made with `docker service create`) is
  a collision unless `--adopt` is given: then converge adds the stack's label to it (no task
  restarts) and converges it like any other (docs/apply.md). docker stack deploy looks only
  at labelled services, so the engine refuses its creation of a second service of that name.
- `depends_on` is honoured: apply creates and updates services in waves, each service once
  what it depends on reached its condition (`service_started`, `service_healthy`,
  `service_completed_successfully`); a cycle or an unknown name is an error when the file is
  loaded. docker stack deploy ignores `depends_on` and starts every service at once (see
  [apply.md](apply.md#order-and-jobs-depends_on-and-swarm-jobs)).
- Jobs (`deploy.mode: replicated-job` or `global-job`) are waited for until every task
  completed, a failed task fails the apply (with its exit code and last log lines), and a
  re-apply of an unchanged job does not run it again (`--rerun JOB` does); docker stack deploy
  creates jobs but waits for none of it.
- A `version` key is accepted and ignored; docker stack deploy uses it to pick its schema.
- `healthcheck.start_interval` is refused: converge speaks Engine API 1.41, which lacks it
  (docker stack deploy sends it, and an engine older than API 1.44 drops it silently).

"""

_TYPES = [
    (
        "duration",
        "`10s`, `1m30s`, `500ms`, `1h`, `250us`, `7ns`, or a number of seconds (`10`, `0.5`)",
        "nanoseconds",
    ),
    (
        "size",
        "`512M`, `1G`, `64MiB`, `1.5GB`, `100b`, or a number of bytes; units are binary "
        "(`1K` = 1024)",
        "bytes",
    ),
    ("number of CPUs", '`0.5`, `2`, `"1.5"` (more than 0, at most 4096)', "nano-CPUs"),
    (
        "constraint",
        "`KEY == VALUE` or `KEY != VALUE`; KEY is `node.id`, `node.hostname`, `node.role` "
        "(`manager` or `worker`), `node.platform.os`, `node.platform.arch`, "
        "`node.labels.NAME` or `engine.labels.NAME`; spaces around the operator are optional",
        "as written (compared in one spelling)",
    ),
    (
        "command",
        'a string, split as a shell would (`nginx -g "daemon off;"`), or a list of words',
        "list of words",
    ),
    ("text", "a string; numbers and booleans become their text (`true`, `3`)", "string"),
    (
        "name",
        "letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 63 long",
        "string",
    ),
    (
        "stack name",
        "at most 40 lowercase letters, digits, `_` and `-`, starting with a letter or digit; "
        "every object of a stack is named `<stack>_<name>`, as `docker stack deploy` names "
        "them",
        "string",
    ),
]


def _types_section() -> str:
    lines = ["## Types", "", "| Type | Written as | Kept as |", "|---|---|---|"]
    lines += [f"| {kind} | {written} | {kept} |" for kind, written, kept in _TYPES]
    return "\n".join(lines) + "\n"


_SHORT_FORMS = """\
## Short forms

Each short form below is the same file as the long form beside it; converge turns short
forms into long ones while loading, as docker stack deploy does.

### Ports

```yaml
ports:
  - "3000:80"             # {target: 80, published: 3000, protocol: tcp, mode: ingress}
  - "5353:53/udp"         # {target: 53, published: 5353, protocol: udp, mode: ingress}
  - 9000                  # {target: 9000, protocol: tcp, mode: ingress}: not published
  - "7000-7001:8000-8001" # two ports: 7000 -> 8000 and 7001 -> 8001
  - "8000-8001:80"        # two ports: 8000 -> 80 and 8001 -> 80
  - {target: 80, published: 8080, mode: host}  # long form only: host mode
```

The short form sets the protocol and mode; the long form only what it says (the engine's
defaults, tcp and ingress, for the rest). A host IP (`127.0.0.1:80:80`) is ignored with a
warning: a swarm service listens on every address.

### Volumes

```yaml
volumes:
  - productdata:/var/lib/mysql        # {type: volume, source: productdata, target: /var/lib/mysql}
  - productdata:/srv/data:ro,nocopy   # ... read_only: true, volume: {nocopy: true}
  - /etc/localtime:/etc/localtime:ro  # {type: bind, source: /etc/localtime, ...}
  - ./site:/srv/site                  # a bind mount of the first file's directory's site
  - /var/log:/logs:rslave             # ... bind: {propagation: rslave}
  - /scratch                          # an anonymous volume: {type: volume, target: /scratch}
  - {type: tmpfs, target: /run, tmpfs: {size: 64M}}  # long form only: tmpfs
```

A source starting with `/`, `.` or `~` is a bind mount; any other source names a declared
volume. A service-level `tmpfs:` key is ignored by swarm: write a `tmpfs` volume instead.

### Environment and labels

```yaml
environment:         # the same as  environment: {MODE: production, EMPTY: "", FROM_SHELL: null}
  - MODE=production
  - EMPTY=
  - FROM_SHELL       # the variable's value when it is set, else sent bare
labels: [team=web]   # the same as  labels: {team: web}
sysctls: [net.core.somaxconn=1024]
extra_hosts: ["db.local:10.0.0.5", "cache.local=10.0.0.6"]
```

### Commands

```yaml
command: nginx -g "daemon off;"   # the same as [nginx, -g, "daemon off;"] (split as a shell)
entrypoint: [/sbin/tini, --]
```

### Networks

```yaml
networks: [backend, frontend]         # the same as the mapping below
networks:
  backend: {}
  frontend: {aliases: [web, www]}     # long form only: aliases
```

### Healthcheck, ulimits, DNS

```yaml
healthcheck:
  test: curl -f http://localhost/      # the same as [CMD-SHELL, "curl -f http://localhost/"]
ulimits:
  nproc: 512                           # the same as {soft: 512, hard: 512}
dns: 10.0.0.2                          # the same as [10.0.0.2]
```

### Empty entries

```yaml
volumes:
  productdata:      # every setting at its default
x-converge:
  cluster:
    nodes:
      manager:        # the same as  manager: {}
```
"""

_GUIDE = """\
## Variable interpolation

Values (never keys) may use variables, as compose files do. They come from the environment,
then from the `.env` file beside the first file (or the `--env-file` files); the environment
wins:

| Written | Gives |
|---|---|
| `${VAR}` or `$VAR` | the value of VAR; an unset VAR gives an empty string and a warning |
| `${VAR:-default}` | `default` when VAR is unset or empty |
| `${VAR-default}` | `default` when VAR is unset |
| `${VAR:?message}` | an error saying `message` when VAR is unset or empty |
| `${VAR?message}` | an error saying `message` when VAR is unset |
| `${VAR:+alternative}` | `alternative` when VAR is set and not empty, else an empty string |
| `${VAR+alternative}` | `alternative` when VAR is set, else an empty string |
| `$$` | a literal `$` |

A default or alternative may itself hold a variable: `${TAG:-${DEFAULT_TAG}}`.

## Secrets

converge remembers which values came from the environment, so that plans, diffs and errors
can mask them:

- every value under a service's `environment` that used a variable, came from an `env_file`
  or from the environment (a bare `- NAME` entry) is secret
  (`MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD}` is shown as `(sensitive)`);
- any other value is secret when one of its variables has a secret-looking name: one
  containing `PASS`, `SECRET`, `TOKEN`, `KEY`, `CREDENTIAL` or `PRIVATE` (in any case).
  `image: app:${TAG}` is shown; `image: registry/app:${DEPLOY_TOKEN}` is not.

Keep secrets in the environment rather than in spec files.

## Environment files

A service's `env_file` (one file, a list, or long forms `{path, required}`) is read as docker
stack deploy reads it, in docker's `--env-file` format: `KEY=VALUE` lines taken as written
(quotes included), `#` comments, and a bare `KEY` that takes its value from the environment
(or is dropped). Paths are relative to the first file's directory. `environment` wins over
`env_file`; an entry without a value (`- NAME`, `NAME:`) or with an empty one takes the
variable's value when it is set, and is otherwise sent as the bare name.

## Several files

`converge plan -c base.yml -c prod.yml STACK` (and apply, drift, status, destroy, and
`converge validate -c base.yml -c prod.yml`) reads the files in order and merges them by the compose
specification's rules:

- mappings merge key by key, the later file winning;
- sequences are appended (`dns`, `cap_add`, `deploy.placement.constraints` ...);
- `command`, `entrypoint` and `healthcheck.test` are replaced;
- `ports`, `volumes`, `secrets` and `configs` entries are unique by their key (a port's
  target, published port and protocol; a volume's target; a secret's target): a later entry
  with the same key replaces the earlier one;
- `environment`, `labels`, `deploy.labels`, `sysctls`, `extra_hosts` and `networks` merge
  as mappings, in list form or not;
- `!override VALUE` replaces a value instead of merging it, `!reset` removes it;
- an error points at the file and line that gave the value.

Relative paths (bind mounts, `env_file`) are relative to the first file's directory.

## `x-` keys and anchors

Keys starting with `x-` are ignored (except `x-converge`), so they can hold YAML anchors to
reuse, and `<<` merges a mapping in:

```yaml
x-service-defaults: &service-defaults
  networks: [backend]
  deploy:
    restart_policy: {condition: on-failure}

services:
  api:
    <<: *service-defaults
    image: example/api:1.0
```

An anchor that contains an alias to itself, or aliases that expand into an enormous
document, are refused.

## Editors

`docs/converge.schema.json` is the JSON Schema of the format (`converge schema` prints it):
draft 2020-12, ECMA-262 regular expressions only, a `${VAR}` accepted wherever a value is
expected, and no required keys, so that override files check too. With the YAML language
server (VS Code's YAML extension, and others), put this first line in a file to get
completion, hover help and checking; the path is relative to the file:

```yaml
# yaml-language-server: $schema=../docs/converge.schema.json
```

Tell the YAML language server about compose's tags (`"yaml.customTags": ["!reset scalar",
"!reset mapping", "!reset sequence", "!override scalar", "!override mapping",
"!override sequence"]`). The schema checks types and shapes; references between objects,
placement, completeness and the load balancer are checked by `converge validate`.
"""


def render_spec_reference() -> str:
    """The spec reference in Markdown, as committed in docs/spec.md."""
    ignored = ", ".join(f"`{key}`" for key in IGNORED_SERVICE_KEYS)
    sections = [
        _INTRODUCTION.replace("{ignored}", ignored),
        _types_section(),
        _SHORT_FORMS,
        "## Fields\n",
    ]
    for model in _models():
        sections.append("\n".join(_model_section(model)))
    sections.append(_GUIDE)
    return "\n".join(sections)


if __name__ == "__main__":
    print(render_spec_reference(), end="")
