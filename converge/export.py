"""A running stack -> a compose file that means exactly it (pure).

The inverse of ``converge.engine_spec``: each service's Engine API spec written back in compose's
long forms, with what equals the engine's default left out, so that ``converge plan`` of the
exported file against the same swarm is empty. Networks and named volumes come from what the
services use. Nodes are not exported: they belong to the cluster spec (``x-converge.cluster``),
which a stack reads from the swarm and never writes.

Secrets and configs are declared as the stack's (or ``external``, when the stack does not own
them) under the key their versions are of. A config's content is written in the file; a
secret's never can be (the engine does not return it), so it is read from
``./secrets/<key>``, which the operator fills in (``fill_in_notes`` says which).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from converge.errors import ConvergeError
from converge.fileobjects import FileKind, services_using, version_base
from converge.naming import (
    STACK_IMAGE_LABEL,
    VERSION_OF_LABEL,
    is_converge_record,
    is_internal_label,
    object_name,
    owned_by,
    spec_key,
)
from converge.normalize import (
    DEFAULT_RESTART_POLICY,
    DEFAULT_UPDATE_CONFIG,
    canonical_image,
    service_view,
)
from converge.state import ObservedFileObject, ObservedState
from converge.units import format_cpus, format_duration, format_memory

__all__ = ["FileMode", "export_compose", "fill_in_notes"]

Json = dict[str, Any]
_ENGINE_NETWORK_OPTIONS = ("com.docker.network.driver.overlay.vxlanid_list",)
_FILE_KINDS: tuple[FileKind, ...] = ("secret", "config")


class FileMode(int):
    """A secret's or config's file mode: written in octal (``0400``), as compose files do."""


def export_compose(observed: ObservedState) -> Json:
    """The compose document of ``observed.stack``'s services, networks, volumes, secrets and
    configs.

    Raises:
        ConvergeError: a service references a secret or config the swarm does not list.
    """
    stack = observed.stack
    network_names = {network.id: network.name for network in observed.networks}
    files = _FileObjects(observed)
    services: Json = {}
    volumes: Json = {}
    used_networks: set[str] = set()
    for key, service in sorted(observed.owned_services().items()):
        document, service_volumes, service_networks = _service(
            service.raw_spec, stack, key, network_names, files
        )
        services[key] = document
        volumes.update(service_volumes)
        used_networks.update(service_networks)
    result: Json = {"x-converge": {"stack": stack}}
    networks = _networks(observed, used_networks)
    if networks:
        result["networks"] = networks
    if volumes:
        result["volumes"] = dict(sorted(volumes.items()))
    for kind in _FILE_KINDS:
        declared = files.declarations(kind)
        if declared:
            result[f"{kind}s"] = declared
    result["services"] = services
    return result


def fill_in_notes(document: Mapping[str, Any]) -> list[str]:
    """What the operator must add before planning an exported ``document``: the files its
    secrets (and configs whose content is not text) are read from."""
    notes = []
    for kind, what in (("secrets", "secret"), ("configs", "config")):
        for key, declared in (document.get(kind) or {}).items():
            path = (declared or {}).get("file")
            if path is None:
                continue
            why = (
                "the engine never gives a secret's value back"
                if what == "secret"
                else "its content is not text"
            )
            notes.append(
                f"{what} {key}: {why}; put it in {path} (beside the exported file) "
                f"before planning, or change its source"
            )
    return notes


class _FileObjects:
    """The secrets and configs the stack's services use, and the stack's own others: each
    under the key its versions are of, declared once, whichever version is current."""

    def __init__(self, observed: ObservedState) -> None:
        self._keys: dict[tuple[FileKind, str], str] = {}
        """(kind, object id) -> the key the services' references use."""
        self._declared: dict[FileKind, Json] = {"secret": {}, "config": {}}
        for kind in _FILE_KINDS:
            self._read(observed, kind)

    def _read(self, observed: ObservedState, kind: FileKind) -> None:
        stack = observed.stack
        objects = observed.secrets if kind == "secret" else observed.configs
        used = _used_ids(observed, kind)
        owned: dict[str, list[ObservedFileObject]] = {}
        for item in objects:
            if owned_by(item.labels, stack) and not is_converge_record(item.name, stack):
                key = item.labels.get(VERSION_OF_LABEL) or spec_key(stack, item.name)
                owned.setdefault(key, []).append(item)
        declared = self._declared[kind]
        for key, versions in sorted(owned.items()):
            # The version the services use, else the newest: the plan keeps that one.
            versions.sort(key=lambda item: (item.id in used, item.version), reverse=True)
            for item in versions:
                self._keys[kind, item.id] = key
            declared[key] = _owned_declaration(kind, key, versions, stack)
        for item in objects:
            if item.id in used and (kind, item.id) not in self._keys:
                key = item.name
                while key in declared:
                    key += "_external"
                self._keys[kind, item.id] = key
                declared[key] = {
                    "external": True,
                    **({"name": item.name} if key != item.name else {}),
                }

    def key(self, kind: FileKind, object_id: str, name: str) -> str:
        found = self._keys.get((kind, object_id))
        if found is None:
            raise ConvergeError(f"{kind} {name} is used by a service but not in the swarm")
        return found

    def declarations(self, kind: FileKind) -> Json:
        return dict(sorted(self._declared[kind].items()))


def _used_ids(observed: ObservedState, kind: FileKind) -> set[str]:
    """The ids of the secrets or configs the stack's services reference."""
    owned = {service.name for service in observed.owned_services().values()}
    return {
        object_id for object_id, users in services_using(observed, kind).items() if users & owned
    }


def _owned_declaration(
    kind: FileKind, key: str, versions: list[ObservedFileObject], stack: str
) -> Json:
    current = versions[0]
    base = version_base(current)
    declaration: Json = {}
    if kind == "config" and current.data is not None and _is_text(current.data):
        declaration["content"] = current.data.decode("utf-8").replace("$", "$$")
    else:
        declaration["file"] = f"./{kind}s/{key}"
    if base != object_name(stack, key):
        declaration["name"] = base
    labels = _user_labels(current.labels)
    if labels:
        declaration["labels"] = labels
    if current.templating:
        declaration["template_driver"] = current.templating
    if len(versions) > 2:  # the plan removes old versions beyond x-converge.keep (default 1)
        declaration["x-converge"] = {"keep": len(versions) - 1}
    return declaration


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _user_labels(labels: Mapping[str, str] | None) -> Json:
    return {
        name: value for name, value in sorted((labels or {}).items()) if not is_internal_label(name)
    }


def _duration(value: int) -> str:
    return format_duration(int(value))


def _service(
    spec: Mapping[str, Any],
    stack: str,
    key: str,
    network_names: Mapping[str, str],
    files: _FileObjects,
) -> tuple[Json, Json, set[str]]:
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    document: Json = {"image": _image(spec, container)}
    for field, engine in (("entrypoint", "Command"), ("command", "Args")):
        if container.get(engine):
            document[field] = list(container[engine])
    environment = {
        entry.partition("=")[0]: entry.partition("=")[2] if "=" in entry else None
        for entry in container.get("Env") or []
    }
    if environment:
        document["environment"] = environment
    labels = _user_labels(container.get("Labels"))
    if labels:
        document["labels"] = labels
    for field, engine in (
        ("hostname", "Hostname"),
        ("user", "User"),
        ("working_dir", "Dir"),
        ("stop_signal", "StopSignal"),
    ):
        if container.get(engine):
            document[field] = container[engine]
    if container.get("Init") is not None:
        document["init"] = bool(container["Init"])
    for field, engine in (("read_only", "ReadOnly"), ("tty", "TTY"), ("stdin_open", "OpenStdin")):
        if container.get(engine):
            document[field] = True
    if container.get("StopGracePeriod") is not None:
        document["stop_grace_period"] = _duration(container["StopGracePeriod"])
    healthcheck = _healthcheck(container.get("Healthcheck"))
    if healthcheck is not None:
        document["healthcheck"] = healthcheck
    if container.get("Hosts"):
        document["extra_hosts"] = service_view(spec, stack, {})["extra_hosts"]
    dns = container.get("DNSConfig")
    if dns is not None:
        for field, engine in (
            ("dns", "Nameservers"),
            ("dns_search", "Search"),
            ("dns_opt", "Options"),
        ):
            if dns.get(engine):
                document[field] = list(dns[engine])
    for field, engine in (("cap_add", "CapabilityAdd"), ("cap_drop", "CapabilityDrop")):
        if container.get(engine):
            document[field] = list(container[engine])
    if container.get("Sysctls"):
        document["sysctls"] = dict(container["Sysctls"])
    if container.get("Ulimits"):
        document["ulimits"] = {
            item["Name"]: {"soft": item.get("Soft", 0), "hard": item.get("Hard", 0)}
            for item in container["Ulimits"]
        }
    if task.get("LogDriver") is not None:
        driver = task["LogDriver"]
        logging: Json = {"driver": driver.get("Name", "")}
        if driver.get("Options"):
            logging["options"] = dict(driver["Options"])
        document["logging"] = logging
    if container.get("Isolation") not in (None, "", "default"):
        document["isolation"] = container["Isolation"]
    credential = (container.get("Privileges") or {}).get("CredentialSpec")
    if credential:
        document["credential_spec"] = {
            field.lower(): value for field, value in credential.items() if value
        }
    ports = [_port(port) for port in (spec.get("EndpointSpec") or {}).get("Ports") or []]
    if ports:
        document["ports"] = ports
    for kind in _FILE_KINDS:
        references = _file_references(container, kind, files)
        if references:
            document[f"{kind}s"] = references
    mounts, volumes = _mounts(container.get("Mounts") or [], stack)
    if mounts:
        document["volumes"] = mounts
    networks = _attachments(task, spec, key, network_names, stack)
    document["networks"] = networks
    deploy = _deploy(spec, task)
    if deploy:
        document["deploy"] = deploy
    return document, volumes, set(networks)


def _file_references(
    container: Mapping[str, Any], kind: FileKind, files: _FileObjects
) -> list[Any]:
    """Compose's short form where stack deploy's defaults hold (target the key, uid and gid
    "0", mode 0444), the long form otherwise."""
    name_field, id_field = (
        ("SecretName", "SecretID") if kind == "secret" else ("ConfigName", "ConfigID")
    )
    written: list[Any] = []
    for reference in container.get(f"{kind.capitalize()}s") or []:
        name = reference.get(name_field, "")
        if "File" not in reference:  # a Runtime config: credential_spec.config (Windows)
            raise ConvergeError(
                f"{kind} {name} is used as a credential spec, which converge does not support"
            )
        source = files.key(kind, reference.get(id_field, ""), name)
        target = reference["File"]
        long_form: Json = {"source": source}
        if target.get("Name", source) != source:
            long_form["target"] = target["Name"]
        for field_name, engine in (("uid", "UID"), ("gid", "GID")):
            if target.get(engine, "0") != "0":
                long_form[field_name] = target[engine]
        if target.get("Mode", 0o444) != 0o444:
            long_form["mode"] = FileMode(target["Mode"])
        written.append(source if len(long_form) == 1 else long_form)
    return written


def _image(spec: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    """The image as written (stack deploy's label), unless the running one is another."""
    written = (spec.get("Labels") or {}).get(STACK_IMAGE_LABEL)
    running = str(container.get("Image", ""))
    if written and canonical_image(written) == canonical_image(running, keep_digest=False):
        return str(written)
    return running


def _healthcheck(check: Mapping[str, Any] | None) -> Json | None:
    if check is None:
        return None
    if list(check.get("Test") or []) == ["NONE"]:
        return {"disable": True}
    result: Json = {}
    if check.get("Test"):
        result["test"] = list(check["Test"])
    for field, engine in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
    ):
        if check.get(engine):
            result[field] = _duration(check[engine])
    if check.get("Retries"):
        result["retries"] = check["Retries"]
    return result


def _port(port: Mapping[str, Any]) -> Json:
    result: Json = {"target": port.get("TargetPort")}
    if port.get("PublishedPort"):
        result["published"] = port["PublishedPort"]
    if port.get("Protocol"):
        result["protocol"] = port["Protocol"]
    if port.get("PublishMode"):
        result["mode"] = port["PublishMode"]
    return result


def _mounts(mounts: Iterable[Mapping[str, Any]], stack: str) -> tuple[list[Json], Json]:
    written: list[Json] = []
    volumes: Json = {}
    for mount in mounts:
        kind = mount.get("Type") or "volume"
        result: Json = {"type": kind}
        if mount.get("Source"):
            result["source"] = mount["Source"]
        result["target"] = mount.get("Target")
        if mount.get("ReadOnly"):
            result["read_only"] = True
        if mount.get("Consistency") not in (None, "", "default"):
            result["consistency"] = mount["Consistency"]
        if kind == "volume" and mount.get("Source"):
            key = spec_key(stack, mount["Source"])
            result["source"] = key
            options = mount.get("VolumeOptions") or {}
            if options.get("NoCopy"):
                result["volume"] = {"nocopy": True}
            volumes[key] = _volume(key, mount["Source"], stack, options)
        elif kind == "bind" and (mount.get("BindOptions") or {}).get("Propagation"):
            result["bind"] = {"propagation": mount["BindOptions"]["Propagation"]}
        elif kind == "tmpfs" and (mount.get("TmpfsOptions") or {}).get("SizeBytes"):
            result["tmpfs"] = {"size": mount["TmpfsOptions"]["SizeBytes"]}
        written.append(result)
    return written, volumes


def _volume(key: str, name: str, stack: str, options: Mapping[str, Any]) -> Json:
    if not owned_by(options.get("Labels"), stack):
        # No stack labels on the mount: a volume the stack does not create (external).
        return {"external": True, **({"name": name} if name != key else {})}
    volume: Json = {}
    if name != object_name(stack, key):
        volume["name"] = name
    labels = _user_labels(options.get("Labels"))
    if labels:
        volume["labels"] = labels
    driver = options.get("DriverConfig")
    if driver is not None:
        if driver.get("Name"):
            volume["driver"] = driver["Name"]
        volume["driver_opts"] = dict(driver.get("Options") or {})
    return volume


def _attachments(
    task: Mapping[str, Any],
    spec: Mapping[str, Any],
    key: str,
    network_names: Mapping[str, str],
    stack: str,
) -> Json:
    result: Json = {}
    for attachment in task.get("Networks") or spec.get("Networks") or []:
        target = attachment.get("Target", "")
        name = spec_key(stack, network_names.get(target, target))
        options: Json = {}
        aliases = [alias for alias in attachment.get("Aliases") or [] if alias != key]
        if aliases:
            options["aliases"] = aliases
        if attachment.get("DriverOpts"):
            options["driver_opts"] = dict(attachment["DriverOpts"])
        result[name] = options or None
    return result


def _deploy(spec: Mapping[str, Any], task: Mapping[str, Any]) -> Json:
    view = service_view(spec, "", {})["deploy"]
    deploy: Json = {}
    if view["mode"] != "replicated":
        deploy["mode"] = view["mode"]
    if view["replicas"] is not None and (view["replicas"] != 1 or view["mode"] != "replicated"):
        deploy["replicas"] = view["replicas"]
    if view["labels"]:
        deploy["labels"] = view["labels"]
    if view["endpoint_mode"] != "vip":
        deploy["endpoint_mode"] = view["endpoint_mode"]
    for field, engine, defaults in (
        ("update_config", "UpdateConfig", DEFAULT_UPDATE_CONFIG),
        ("rollback_config", "RollbackConfig", DEFAULT_UPDATE_CONFIG),
    ):
        if spec.get(engine) is not None and view[field] != defaults:
            deploy[field] = _policy(view[field])
    if task.get("RestartPolicy") is not None and view["restart_policy"] != DEFAULT_RESTART_POLICY:
        policy = view["restart_policy"]
        deploy["restart_policy"] = {
            "condition": policy["condition"],
            "delay": _duration(policy["delay"]),
            "max_attempts": policy["max_attempts"],
            "window": _duration(policy["window"]),
        }
    resources = _resources(view["resources"])
    if resources:
        deploy["resources"] = resources
    placement = _placement(task.get("Placement") or {})
    if placement:
        deploy["placement"] = placement
    return deploy


def _policy(view: Mapping[str, Any]) -> Json:
    """Every field written: a present policy with a field unset means zero, not the default."""
    return {
        "parallelism": view["parallelism"],
        "delay": _duration(view["delay"]),
        "failure_action": view["failure_action"],
        "monitor": _duration(view["monitor"]),
        "max_failure_ratio": view["max_failure_ratio"],
        "order": view["order"],
    }


def _resources(view: Mapping[str, Any]) -> Json:
    result: Json = {}
    for side in ("limits", "reservations"):
        values = view[side]
        written: Json = {}
        if values.get("cpus"):
            written["cpus"] = format_cpus(values["cpus"])
        if values.get("memory"):
            written["memory"] = format_memory(values["memory"])
        if values.get("pids"):
            written["pids"] = values["pids"]
        if values.get("generic_resources"):
            written["generic_resources"] = [
                {"discrete_resource_spec": {"kind": kind, "value": int(value)}}
                for kind, _, value in (item.partition("=") for item in values["generic_resources"])
            ]
        if written:
            result[side] = written
    return result


def _placement(placement: Mapping[str, Any]) -> Json:
    result: Json = {}
    if placement.get("Constraints"):
        result["constraints"] = list(placement["Constraints"])
    if placement.get("Preferences"):
        result["preferences"] = [
            {"spread": (item.get("Spread") or {}).get("SpreadDescriptor", "")}
            for item in placement["Preferences"]
        ]
    if placement.get("MaxReplicas"):
        result["max_replicas_per_node"] = placement["MaxReplicas"]
    return result


def _networks(observed: ObservedState, used: set[str]) -> Json:
    """The stack's networks the services use (``default`` only when it is not plain)."""
    result: Json = {}
    stack = observed.stack
    for name in sorted(used):
        network = observed.network_named(object_name(stack, name)) or observed.network_named(name)
        if network is None:
            continue
        if not (network.owned and network.stack == stack):
            result[name] = {
                "external": True,
                **({"name": network.name} if network.name != name else {}),
            }
            continue
        view = network.view
        written: Json = {}
        if network.name != object_name(stack, name):
            written["name"] = network.name
        if view.get("driver") not in (None, "", "overlay"):
            written["driver"] = view["driver"]
        options = {
            key: value
            for key, value in (view.get("driver_opts") or {}).items()
            if key not in _ENGINE_NETWORK_OPTIONS
        }
        if options:
            written["driver_opts"] = options
        for flag in ("attachable", "internal"):
            if view.get(flag):
                written[flag] = True
        if view.get("labels"):
            written["labels"] = dict(view["labels"])
        if written or name != "default":
            result[name] = written or None
    return result
