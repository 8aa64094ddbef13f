"""The spec reference (docs/spec.md), generated from the spec models so that it never drifts.

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

from converge.spec import NAME_PATTERN, STACK_PATTERN, Spec
from converge.units import format_duration

__all__ = ["render_spec_reference"]

# Validators that turn a short form into the canonical one, by qualified name, and the type
# a user writes for them.
_USER_TYPES = {
    "parse_duration": "duration",
    "parse_memory": "size",
    "parse_cpus": "number of CPUs",
    "_canonical_constraint": "constraint",
    "_split_command": "command",
    "_key_value_list_to_map.<locals>.convert": "mapping of text, or list of `KEY=VALUE`",
    "_expand_ports": "list of ports",
    "_expand_mounts": "list of mounts",
    "_networks_to_map": "list of network names, or mapping of name to attachment",
    "_healthcheck_test": "test command",
    "_subnet": "subnet (CIDR)",
    "_ip_address": "IP address",
    "_scalar_to_text": "text",
}

# Where each model is written in a spec, for its heading.
_LOCATIONS = {
    "Spec": "the top level of a spec file",
    "NodeSpec": "`nodes.<hostname>`",
    "NetworkSpec": "`networks.<name>`",
    "VolumeSpec": "`volumes.<name>`",
    "ServiceSpec": "`services.<name>`",
    "PlacementSpec": "`services.<name>.placement`",
    "SpreadPreference": "`services.<name>.placement.preferences[]`",
    "PortSpec": "`services.<name>.ports[]`",
    "MountSpec": "`services.<name>.mounts[]`",
    "BindOptions": "`services.<name>.mounts[].bind`",
    "VolumeOptions": "`services.<name>.mounts[].volume`",
    "TmpfsOptions": "`services.<name>.mounts[].tmpfs`",
    "NetworkAttachment": "`services.<name>.networks.<network>`",
    "UpdateConfigSpec": "`services.<name>.update_config`",
    "RollbackConfigSpec": "`services.<name>.rollback_config`",
    "RestartPolicySpec": "`services.<name>.restart_policy`",
    "ResourcesSpec": "`services.<name>.resources`",
    "ResourceSpec": "`services.<name>.resources.limits` and `.reservations`",
    "HealthcheckSpec": "`services.<name>.healthcheck`",
    "LoadBalancerSpec": "`loadbalancer`",
    "LoadBalancerFrontend": "`loadbalancer.frontends.<name>`",
    "LoadBalancerBackend": "`loadbalancer.backends.<name>`",
    "LoadBalancerTimeouts": "`loadbalancer.timeouts`",
    "LoadBalancerStats": "`loadbalancer.stats`",
}

# Descriptions for fields whose model gives none (a model's own description always wins).
_NOTES = {
    ("NetworkSpec", "driver"): "The network driver.",
    ("NetworkSpec", "attachable"): "Standalone containers (the load balancer) may join it.",
    ("NetworkSpec", "internal"): "No traffic to or from outside the network.",
    ("NetworkSpec", "encrypted"): "Encrypt overlay traffic between nodes (IPsec).",
    ("NetworkSpec", "driver_opts"): "Options passed to the driver.",
    ("NetworkSpec", "labels"): "Labels on the network.",
    ("NetworkSpec", "subnet"): "The network's subnet, for example `10.20.0.0/16`.",
    ("NetworkSpec", "gateway"): "The gateway; needs `subnet` and must lie inside it.",
    ("VolumeSpec", "driver"): "The volume driver.",
    ("VolumeSpec", "driver_opts"): "Options passed to the driver.",
    ("VolumeSpec", "labels"): "Labels on the volume.",
    ("PortSpec", "protocol"): "tcp, udp or sctp.",
    ("MountSpec", "type"): "volume, bind or tmpfs.",
    ("MountSpec", "read_only"): "Mount read-only.",
    ("MountSpec", "bind"): "Options of a bind mount.",
    ("MountSpec", "volume"): "Options of a volume mount.",
    ("MountSpec", "tmpfs"): "Options of a tmpfs mount.",
    ("BindOptions", "propagation"): "Bind propagation mode.",
    ("VolumeOptions", "nocopy"): "Do not copy the image's files into an empty volume.",
    ("TmpfsOptions", "size"): "Size limit of the tmpfs.",
    ("TmpfsOptions", "mode"): "File mode of the tmpfs root (YAML octal: `01777`).",
    ("NetworkAttachment", "aliases"): "Extra DNS names of the service on this network.",
    ("PlacementSpec", "constraints"): "Every constraint must hold on a node to run a task.",
    ("PlacementSpec", "preferences"): "Spread tasks evenly over the values of a label.",
    ("PlacementSpec", "max_replicas_per_node"): "At most this many tasks on one node.",
    ("SpreadPreference", "spread"): "`node.labels.NAME`, `engine.labels.NAME` or a node field.",
    ("ServiceSpec", "mode"): "replicated (a number of tasks) or global (one task per node).",
    ("ServiceSpec", "placement"): "Where tasks may run.",
    ("ServiceSpec", "ports"): "Published ports.",
    ("ServiceSpec", "mounts"): "Volumes, bind mounts and tmpfs mounts.",
    ("ServiceSpec", "env"): "Environment variables of the containers.",
    ("ServiceSpec", "networks"): "Networks the service joins.",
    ("ServiceSpec", "container_labels"): "Labels on the service's containers.",
    ("ServiceSpec", "endpoint_mode"): "vip (one virtual IP) or dnsrr (DNS round-robin).",
    ("ServiceSpec", "update_config"): "How rolling updates proceed.",
    ("ServiceSpec", "rollback_config"): "How rollbacks proceed.",
    ("ServiceSpec", "restart_policy"): "When the swarm restarts a task.",
    ("ServiceSpec", "resources"): "CPU and memory limits and reservations.",
    ("ServiceSpec", "healthcheck"): "Overrides the image's HEALTHCHECK.",
    ("ServiceSpec", "stop_grace_period"): "Time between SIGTERM (or stop_signal) and SIGKILL.",
    ("ServiceSpec", "stop_signal"): "The signal that stops a container.",
    ("ServiceSpec", "user"): "The user the command runs as.",
    ("ServiceSpec", "workdir"): "The working directory of the command.",
    ("ServiceSpec", "hostname"): "The containers' hostname (Go templates allowed).",
    ("ServiceSpec", "init"): "Run an init process as PID 1.",
    ("ServiceSpec", "read_only"): "Mount the container's root filesystem read-only.",
    ("UpdateConfigSpec", "parallelism"): "Tasks updated at once (0: all).",
    ("UpdateConfigSpec", "delay"): "Wait between batches.",
    ("UpdateConfigSpec", "failure_action"): "What to do when an update fails.",
    ("UpdateConfigSpec", "monitor"): "How long to watch a task for failure after updating it.",
    ("UpdateConfigSpec", "max_failure_ratio"): "Failures tolerated, as a fraction of tasks.",
    ("UpdateConfigSpec", "order"): "Stop the old task first, or start the new one first.",
    ("RollbackConfigSpec", "parallelism"): "Tasks rolled back at once (0: all).",
    ("RollbackConfigSpec", "delay"): "Wait between batches.",
    ("RollbackConfigSpec", "failure_action"): "What to do when a rollback fails.",
    ("RollbackConfigSpec", "monitor"): "How long to watch a task for failure.",
    ("RollbackConfigSpec", "max_failure_ratio"): "Failures tolerated, as a fraction of tasks.",
    ("RollbackConfigSpec", "order"): "Stop the old task first, or start the new one first.",
    ("RestartPolicySpec", "condition"): "Restart never, on failure, or always.",
    ("RestartPolicySpec", "delay"): "Wait between restarts.",
    ("RestartPolicySpec", "max_attempts"): "Give up after this many restarts (0: never).",
    ("RestartPolicySpec", "window"): "How long a restart must run to count as a success.",
    ("ResourcesSpec", "limits"): "The most a task may use.",
    ("ResourcesSpec", "reservations"): "What a node must have free to run a task.",
    ("ResourceSpec", "cpus"): "CPUs, for example `0.5`.",
    ("ResourceSpec", "memory"): "Memory, for example `512M`.",
    ("HealthcheckSpec", "test"): "The check; a string runs in a shell (CMD-SHELL).",
    ("HealthcheckSpec", "interval"): "Time between checks.",
    ("HealthcheckSpec", "timeout"): "A check that takes longer fails.",
    ("HealthcheckSpec", "retries"): "Failures in a row before the task is unhealthy.",
    ("HealthcheckSpec", "start_period"): "Failures during this start-up time do not count.",
    ("HealthcheckSpec", "disable"): "Disable the image's healthcheck.",
    ("LoadBalancerSpec", "name"): "Name of the HAProxy container.",
    ("LoadBalancerSpec", "image"): "The HAProxy image.",
    ("LoadBalancerSpec", "mode"): "Proxy HTTP or plain TCP.",
    ("LoadBalancerSpec", "frontends"): "The ports HAProxy listens on.",
    ("LoadBalancerSpec", "backends"): "Where the frontends send traffic.",
    ("LoadBalancerSpec", "timeouts"): "HAProxy's connect, client and server timeouts.",
    ("LoadBalancerSpec", "stats"): "Serve HAProxy's statistics page.",
    ("LoadBalancerFrontend", "port"): "The port HAProxy listens on, on its node.",
    ("LoadBalancerBackend", "balance"): "HAProxy's balance algorithm.",
    ("LoadBalancerTimeouts", "connect"): "Time to connect to a server.",
    ("LoadBalancerTimeouts", "client"): "Idle time allowed on the client side.",
    ("LoadBalancerTimeouts", "server"): "Idle time allowed on the server side.",
    ("LoadBalancerStats", "port"): "The port of the statistics page.",
    ("LoadBalancerStats", "uri"): "The path of the statistics page.",
    ("Spec", "nodes"): "The swarm's nodes, by hostname. Leave out to manage no node.",
    ("Spec", "networks"): "Networks, by name (`<stack>_<name>` in the swarm).",
    ("Spec", "volumes"): "Named volumes, by name (`<stack>_<name>` in the swarm).",
    ("Spec", "services"): "Services, by name (`<stack>_<name>` in the swarm).",
    ("Spec", "loadbalancer"): "An HAProxy container outside the swarm.",
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
        return _describe(inner, [*extra, *metadata])
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


def _model_section(model: type[BaseModel]) -> list[str]:
    name = model.__name__
    lines = [f"### {name}", ""]
    lines.append(f"Written at {_LOCATIONS.get(name, 'a nested mapping')}.")
    if model.__doc__:
        lines.append(_one_line(model.__doc__.strip().split("\n\n")[0]))
    lines += ["", "| Field | Type | Default | Description |", "|---|---|---|---|"]
    for field_name, field in model.model_fields.items():
        kind = _describe(field.annotation, list(field.metadata))
        description = field.description or _NOTES.get((name, field_name), "")
        row = [_code(field_name), kind, _default(field), _one_line(description)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return [*lines, ""]


_INTRODUCTION = """\
# The converge spec reference

A spec is a YAML file (or several, merged) that describes a whole Docker Swarm: its nodes,
networks, volumes, services, and an HAProxy load balancer that runs outside the swarm.
`converge validate FILE...` checks specs without touching a swarm; `converge schema` prints
the JSON Schema that editors use to complete and check them.

This file is generated from the spec models by `python -m converge.docgen > docs/spec.md`;
do not edit it by hand.

Every mapping refuses unknown keys (with a "did you mean" suggestion). A field left unset is
not managed: converge leaves whatever the swarm has. Errors name the file, line, column and
field, all of them at once:

```
specs/prod.yml:14:5: services.mvc.replicas: expected a whole number, got 'five'
```

## A small spec

```yaml
# yaml-language-server: $schema=../docs/converge.schema.json
version: 1
stack: exampleapp

nodes:
  manager: {role: manager}
  worker1: {role: worker, labels: {type: mvc}}

networks:
  backend: {attachable: true}

services:
  mvc:
    image: apress/exampleapp:swarm-1.0
    replicas: 3
    placement:
      constraints: [node.labels.type == mvc]
    ports: ["3000:80"]
    env:
      DBHOST: mysql
      DB_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}
    networks: [backend]

loadbalancer:
  image: haproxy:2.8
  node: manager
  frontends:
    web: {port: 80, backend: mvc}
  backends:
    mvc: {service: mvc, port: 3000, method: ingress}
```

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
        "`node.labels.type == mvc`",
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
        "every object converge creates is named `<stack>_<name>`, as `docker stack deploy` "
        "names them",
        "string",
    ),
]


def _types_section() -> str:
    lines = ["## Types", "", "| Type | Written as | Kept as |", "|---|---|---|"]
    lines += [f"| {kind} | {written} | {kept} |" for kind, written, kept in _TYPES]
    return "\n".join(lines) + "\n"


_SHORT_FORMS = """\
## Short forms

Each short form below is the same spec as the long form beside it; converge turns short
forms into long ones while loading.

### Ports

```yaml
ports:
  - "3000:80"             # {target: 80, published: 3000}
  - "5353:53/udp"         # {target: 53, published: 5353, protocol: udp}
  - 9000                  # {target: 9000} (the swarm picks the published port)
  - "7000-7001:8000-8001" # two ports: 7000 -> 8000 and 7001 -> 8001
  - {target: 80, published: 8080, mode: host}  # long form only: host mode
```

A host IP (`127.0.0.1:80:80`) cannot be given in swarm mode.

### Mounts

```yaml
mounts:
  - productdata:/var/lib/mysql        # {type: volume, source: productdata, target: /var/lib/mysql}
  - productdata:/srv/data:ro          # ... read_only: true
  - /etc/localtime:/etc/localtime:ro  # {type: bind, source: /etc/localtime, ...}
  - /scratch                          # an anonymous volume: {type: volume, target: /scratch}
  - {type: tmpfs, target: /run, tmpfs: {size: 64M}}  # long form only: tmpfs
```

A source starting with `/` is a bind mount; any other source names a declared volume. A
relative path (`./site`) is refused: the swarm would resolve it on each node.

### Environment and labels

```yaml
env:                 # the same as  env: {MODE: production, EMPTY: ""}
  - MODE=production
  - EMPTY=
labels: [team=web]   # the same as  labels: {team: web}
```

### Networks

```yaml
networks: [backend, frontend]         # the same as the mapping below
networks:
  backend: {}
  frontend: {aliases: [web, www]}     # long form only: aliases
```

### Healthcheck

```yaml
healthcheck:
  test: curl -f http://localhost/      # the same as [CMD-SHELL, "curl -f http://localhost/"]
  test: [CMD, curl, -f, http://localhost/]  # no shell
```

### Empty entries

```yaml
nodes:
  manager:          # the same as  manager: {}
volumes:
  productdata:      # every setting at its default
```
"""

_GUIDE = """\
## Variable interpolation

Values (never keys) may use variables from the environment, as compose files do:

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

- every value under a service's `env` that used a variable is secret
  (`MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD}` is shown as `***`);
- any other value is secret when one of its variables has a secret-looking name: one
  containing `PASS`, `SECRET`, `TOKEN`, `KEY`, `CREDENTIAL` or `PRIVATE` (in any case).
  `image: app:${TAG}` is shown; `image: registry/app:${DEPLOY_TOKEN}` is not.

Keep secrets in the environment rather than in spec files.

## Several files

`converge validate --merge base.yml prod.yml` (and `plan` and `apply`, which always merge)
reads the files in order; later files win, as compose overrides do:

- mappings merge key by key (a service's `env` from `prod.yml` adds to and overrides the
  one from `base.yml`);
- lists and scalars are replaced whole (`ports`, `constraints`, `networks` in list form);
- an error points at the file and line that gave the value.

Only the first file needs `version` and `stack`.

## `x-` keys and anchors

Top-level keys starting with `x-` are ignored, so they can hold YAML anchors to reuse, and
`<<` merges a mapping in:

```yaml
x-service-defaults: &service-defaults
  restart_policy: {condition: on-failure}
  networks: [backend]

services:
  api:
    <<: *service-defaults
    image: example/api:1.0
```

An anchor that contains an alias to itself, or aliases that expand into an enormous
document, are refused.

## Editors

`docs/converge.schema.json` is the JSON Schema of the spec (`converge schema` prints it).
With the YAML language server (VS Code's YAML extension, and others), put this first line in
a spec to get completion, hover help and checking; the path is relative to the spec file:

```yaml
# yaml-language-server: $schema=../docs/converge.schema.json
```

The schema checks types and shapes; references between objects, placement and the load
balancer are checked by `converge validate`.
"""


def render_spec_reference() -> str:
    """The spec reference in Markdown, as committed in docs/spec.md."""
    sections = [_INTRODUCTION, _types_section(), _SHORT_FORMS, "## Fields\n"]
    for model in _models():
        sections.append("\n".join(_model_section(model)))
    sections.append(_GUIDE)
    return "\n".join(sections)


if __name__ == "__main__":
    print(render_spec_reference(), end="")
