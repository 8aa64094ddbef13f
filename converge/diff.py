"""Spec + ObservedState -> Diff: field-level changes per object (pure).

The only module that imports deepdiff; its types never leave this module. Both sides are views
(see ``normalize``); the observed view is first ``align``-ed to what the spec manages, so an
unset field is never reported and engine defaults never show as changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from converge.engine_spec import service_engine_spec
from converge.fileobjects import (
    Contents,
    FileKind,
    FileRefs,
    FileVersion,
    file_refs,
    resolve_versions,
    services_using,
    versions_of,
)
from converge.lb.config import container_name, desired_view
from converge.naming import VERSION_OF_LABEL, is_converge_record, object_name, owned_by, spec_key
from converge.normalize import (
    align,
    canonical_image,
    default_service_view,
    desired_network_view,
    desired_node_view,
    service_view,
)
from converge.spec import Spec
from converge.state import ObservedService, ObservedState

__all__ = [
    "OLD_VERSION",
    "Diff",
    "FieldChange",
    "ObjectDiff",
    "compare_views",
    "creation_changes",
    "diff",
]

ObjectKind = Literal["node", "network", "service", "loadbalancer", "secret", "config"]
DiffStatus = Literal[
    "create",
    "update",
    "remove",
    "unchanged",
    "missing",
    "collision",
    "unowned",
    "rotate",
    "unverifiable",
]
"""``unowned``: a service of that name exists outside any stack (``docker service create``);
its changes are those apply makes once it adopted it (``--adopt``). ``rotate``: a secret or
config whose content changed gets a new version; ``unverifiable``: a secret without converge's
fingerprint, whose content cannot be compared. A ``remove`` of a secret or config with detail
``OLD_VERSION`` is an old version, removed whatever ``--prune`` says."""

OLD_VERSION = "an old version no service uses"


@dataclass(frozen=True)
class FieldChange:
    """One managed field that differs; ``None`` on a side means absent there."""

    path: tuple[str, ...]
    before: Any
    after: Any

    @property
    def field(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class ObjectDiff:
    """How one object of the spec (or one owned object left out of it) differs."""

    kind: ObjectKind
    key: str
    name: str
    status: DiffStatus
    changes: tuple[FieldChange, ...] = ()
    detail: str = ""

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.key}"


@dataclass(frozen=True)
class Diff:
    stack: str
    objects: tuple[ObjectDiff, ...] = field(default_factory=tuple)

    def of(self, kind: ObjectKind, key: str) -> ObjectDiff | None:
        return next((item for item in self.objects if item.kind == kind and item.key == key), None)


def compare_views(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> list[FieldChange]:
    """Field changes from ``observed`` to ``desired``; lists are compared whole.

    Both views must already be aligned (see ``normalize.align``).
    """
    # Most objects are unchanged: an exact comparison is ~100x cheaper than DeepDiff.
    if _identical(observed, desired):
        return []
    # Imported here: a no-op plan never gets this far, and deepdiff costs every process
    # about 0.14 s to import.
    from deepdiff import DeepDiff
    from deepdiff.helper import notpresent

    result = DeepDiff(dict(observed), dict(desired), view="tree", verbose_level=2)
    changes: dict[tuple[str, ...], FieldChange] = {}
    for levels in result.values():
        for level in levels:
            full_path = level.path(output_format="list")
            # Report a changed list as a whole: "constraints: [a] -> [a, b]".
            cut = next(
                (index for index, part in enumerate(full_path) if isinstance(part, int)),
                len(full_path),
            )
            path = tuple(str(part) for part in full_path[:cut])
            if path in changes:
                continue
            if cut < len(full_path):
                before, after = _lookup(observed, path), _lookup(desired, path)
            else:
                before = None if level.t1 is notpresent else level.t1
                after = None if level.t2 is notpresent else level.t2
            changes[path] = FieldChange(path, before, after)
    return sorted(changes.values(), key=lambda change: change.path)


_LEAVES = frozenset({str, int, bool, type(None)})
"""Leaf types compared inline by ``_identical`` (``==`` on two of the same one is exact;
floats are not among them: NaN is not equal to itself)."""


def _identical(first: Any, second: Any) -> bool:
    """Equal and of the same types all the way down (1 and 1.0, or True and 1, are not)."""
    # Called for every declared object: plain loops, the usual leaves compared inline.
    if type(first) is not type(second):
        return False
    if isinstance(first, dict):
        if len(first) != len(second):
            return False
        for key, value in first.items():
            if key not in second:
                return False
            other = second[key]
            if type(value) in _LEAVES:
                if type(other) is not type(value) or value != other:
                    return False
            elif type(value) is list and type(other) is list:
                # Lists of strings (env, constraints, aliases) without another call.
                if len(value) != len(other):
                    return False
                for item, other_item in zip(value, other, strict=True):
                    if type(item) in _LEAVES:
                        if type(other_item) is not type(item) or item != other_item:
                            return False
                    elif not _identical(item, other_item):
                        return False
            elif not _identical(value, other):
                return False
        return True
    if isinstance(first, list | tuple):
        if len(first) != len(second):
            return False
        for value, other in zip(first, second, strict=True):
            if type(value) in _LEAVES:
                if type(other) is not type(value) or value != other:
                    return False
            elif not _identical(value, other):
                return False
        return True
    return bool(first == second)


def _managed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _managed(item) for key, item in value.items() if item is not None}
    return value


def creation_changes(
    desired: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> list[FieldChange]:
    """What creating an object sets: every field of its desired view that says more than
    "nothing" (empty collections, false flags, ``None``) or than ``defaults`` (the view of an
    object that sets nothing), nested mappings field by field."""
    changes: list[FieldChange] = []

    def walk(view: Mapping[str, Any], default: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in view.items():
            if key in default and _identical(value, default[key]):
                continue
            inner = default.get(key)
            # Structures (deploy, its policies) are walked; maps of the user's (environment,
            # labels, ports) are one field, as their default is empty.
            if isinstance(value, Mapping) and isinstance(inner, Mapping) and inner:
                walk(value, inner, (*path, key))
            elif value is not False and value not in (None, {}, [], ""):
                changes.append(FieldChange((*path, key), None, _managed(value)))

    walk(desired, defaults or {}, ())
    return changes


def _lookup(view: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = view
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def diff(
    spec: Spec,
    observed: ObservedState,
    contents: Contents | None = None,
    rotate: Collection[str] = (),
    images: Mapping[str, str] | None = None,
    *,
    prune: bool = False,
) -> Diff:
    """Every object of ``spec`` compared with ``observed``, plus owned objects it left out.

    Args:
        contents: the secrets' and configs' contents by (kind, key) (``converge.sources``);
            None when not read: their versions in use are then taken as they are.
        rotate: secret keys to rotate even when their current version cannot be verified.
        images: the image to send per service key, where a tag was pinned to its digest
            (``converge.images.service_images``); others compare as written.
        prune: node labels the cluster spec stopped naming are removed (else kept).
    """
    versions = resolve_versions(spec, observed, contents, rotate)
    objects: list[ObjectDiff] = []
    objects.extend(_diff_nodes(spec, observed, prune))
    objects.extend(_diff_networks(spec, observed))
    objects.extend(_diff_file_objects(spec, observed, versions))
    objects.extend(_diff_services(spec, observed, file_refs(versions), images or {}))
    objects.extend(_diff_loadbalancer(spec, observed))
    return Diff(stack=spec.stack, objects=tuple(objects))


def _diff_nodes(spec: Spec, observed: ObservedState, prune: bool) -> list[ObjectDiff]:
    result: list[ObjectDiff] = []
    for hostname, node in spec.nodes.items():
        current = observed.node(hostname)
        if current is None:
            result.append(
                ObjectDiff(
                    "node",
                    hostname,
                    hostname,
                    "missing",
                    detail="declared in the spec but not part of the swarm",
                )
            )
            continue
        desired = desired_node_view(node, current.labels, current.managed_labels, prune)
        desired["role"] = None  # roles change by promotion and demotion (converge.membership)
        changes = compare_views(align(desired, current.view), desired)
        result.append(
            ObjectDiff(
                "node", hostname, hostname, "update" if changes else "unchanged", tuple(changes)
            )
        )
    return result


def _compare_owned(
    kind: ObjectKind,
    key: str,
    name: str,
    stack: str,
    desired: Mapping[str, Any],
    current_view: Mapping[str, Any] | None,
    name_taken: bool,
    *,
    ignore: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
) -> ObjectDiff:
    """One declared object against its owned counterpart (create, update or unchanged), or a
    collision when an object of that name exists without the stack's ownership label."""
    if current_view is None:
        if name_taken:
            detail = f"{kind} {name} exists and is not owned by stack {stack}"
            return ObjectDiff(kind, key, name, "collision", detail=detail)
        return ObjectDiff(kind, key, name, "create", tuple(creation_changes(desired, defaults)))
    aligned = align(desired, current_view, ignore=ignore, none_unmanaged=kind != "service")
    changes = compare_views(aligned, desired)
    return ObjectDiff(kind, key, name, "update" if changes else "unchanged", tuple(changes))


def _diff_networks(spec: Spec, observed: ObservedState) -> list[ObjectDiff]:
    """The networks the stack uses (as stack deploy: those its services join), and owned
    networks it no longer uses."""
    result: list[ObjectDiff] = []
    used: set[str] = set()
    for key, network in spec.stack_networks().items():
        name = spec.network_name(key)
        used.add(name)
        current = observed.network_named(name)
        if network.external:
            if current is None:
                result.append(
                    ObjectDiff("network", key, name, "missing", detail="external network not found")
                )
            continue
        owned = current is not None and current.owned and current.stack == spec.stack
        result.append(
            _compare_owned(
                "network",
                key,
                name,
                spec.stack,
                desired_network_view(network),
                current.view if owned and current is not None else None,
                current is not None,
            )
        )
    result.extend(
        ObjectDiff("network", spec_key(spec.stack, current.name), current.name, "remove")
        for current in observed.networks
        if current.owned and current.stack == spec.stack and current.name not in used
    )
    return result


def _diff_file_objects(
    spec: Spec, observed: ObservedState, versions: Mapping[tuple[FileKind, str], FileVersion]
) -> list[ObjectDiff]:
    """Each declared secret and config (a new version, or as it is), the old versions to
    remove (beyond those kept), and the stack's secrets and configs no longer declared."""
    result: list[ObjectDiff] = []
    kinds: tuple[FileKind, ...] = ("secret", "config")
    spec_services: set[str] = set()
    for kind in kinds:
        declared = spec.secrets if kind == "secret" else spec.configs
        # Both walk every service: only worth it when the spec declares objects of the kind.
        users = services_using(observed, kind) if declared else {}
        if declared and not spec_services:
            spec_services = {object_name(spec.stack, key) for key in spec.services}
        known: set[str] = set()
        for key, item in declared.items():
            version = versions[kind, key]
            statuses: dict[str, DiffStatus] = {
                "unchanged": "unchanged",
                "external": "unchanged",
                "create": "create",
                "rotate": "rotate",
                "unverifiable": "unverifiable",
                "missing": "missing",
            }
            status = statuses[version.status]
            detail = ""
            if version.collision:
                status = "collision"
                detail = f"{kind} {version.name} exists and is not owned by stack {spec.stack}"
            elif status == "missing":
                detail = f"external {kind} not found"
            elif status == "unverifiable":
                detail = (
                    f"{kind} {version.name} was made without converge's fingerprint (by docker "
                    f"stack deploy or by hand): its content cannot be compared; --rotate {key} "
                    "gives it a new version"
                )
            result.append(ObjectDiff(kind, key, version.name, status, detail=detail))
            if item.external:
                continue
            old = versions_of(spec, observed, kind, key)
            known.update(entry.id for entry in old)
            if status in ("unverifiable", "collision"):
                continue
            kept = 0
            for entry in sorted(old, key=lambda entry: entry.version, reverse=True):
                if entry.name == version.name:
                    continue
                if users.get(entry.id, set()) - spec_services:
                    continue  # used by a service outside the spec: the engine keeps it
                if kept < item.x_converge.keep:
                    kept += 1
                    continue
                result.append(ObjectDiff(kind, key, entry.name, "remove", detail=OLD_VERSION))
        observed_objects = observed.secrets if kind == "secret" else observed.configs
        for entry in observed_objects:
            if entry.id in known or not owned_by(entry.labels, spec.stack):
                continue
            if is_converge_record(entry.name, spec.stack):
                continue
            key = entry.labels.get(VERSION_OF_LABEL) or spec_key(spec.stack, entry.name)
            result.append(ObjectDiff(kind, key, entry.name, "remove"))
    return result


def _diff_services(
    spec: Spec,
    observed: ObservedState,
    files: FileRefs | None = None,
    images: Mapping[str, str] | None = None,
) -> list[ObjectDiff]:
    result: list[ObjectDiff] = []
    owned = observed.owned_services()
    defaults = default_service_view(spec.stack)
    network_names = {network.id: network.name for network in observed.networks}
    aligned_images: dict[str, bool] = {}  # most services share an image with others
    for key, service in spec.services.items():
        name = object_name(spec.stack, key)
        current = owned.get(key)
        payload = service_engine_spec(spec, key, files=files, image=(images or {}).get(key))
        if current is not None and _unchanged_service(
            spec, service.x_converge.ignore, payload, current, network_names, aligned_images
        ):
            result.append(ObjectDiff("service", key, name, "unchanged"))
            continue
        taken = observed.service_named(name)
        unowned = current is None and taken is not None and not taken.owned
        compared = _compare_owned(
            "service",
            key,
            name,
            spec.stack,
            service_view(payload, spec.stack, {}),  # = desired_service_view
            taken.view if unowned and taken is not None else current.view if current else None,
            taken is not None,
            ignore=service.x_converge.ignore,
            defaults=defaults,
        )
        if unowned:
            detail = f"service {name} exists and is not owned by stack {spec.stack}"
            compared = replace(compared, status="unowned", detail=detail)
        result.append(compared)
    result.extend(
        ObjectDiff("service", key, current.name, "remove")
        for key, current in owned.items()
        if key not in spec.services
    )
    return result


def _unchanged_service(
    spec: Spec,
    ignore: tuple[str, ...],
    payload: Mapping[str, Any],
    current: ObservedService,
    network_names: Mapping[str, str],
    aligned_images: dict[str, bool] | None = None,
) -> bool:
    """Whether the owned ``current`` is what ``payload`` would make, told without views.

    True only where ``_compare_owned`` would find no change: the two engine specs are
    identical once what no view shows is set aside (``normalize.comparable_service_spec``),
    so the views are identical; both views are of the same stack; no ``x-converge.ignore``
    path (``align`` writes those into the observed view); and the image reads the same once
    ``align`` has dropped an unpinned digest (``aligned_images`` keeps that answer per image
    for the next service). Anything else is compared view against view.
    """
    if ignore or (current.stack or "") != spec.stack:
        return False
    task = payload.get("TaskTemplate") or {}
    written = (task.get("ContainerSpec") or {}).get("Image", "")
    known = aligned_images if aligned_images is not None else {}
    if written not in known:
        image = canonical_image(written)
        known[written] = "@" in image or canonical_image(image, keep_digest=False) == image
    if not known[written]:
        return False
    return _same_comparable(current.raw_spec, payload, network_names)


def _same_comparable(
    observed: Mapping[str, Any], desired: Mapping[str, Any], network_names: Mapping[str, str]
) -> bool:
    """``comparable_service_spec(observed, network_names)`` and
    ``comparable_service_spec(desired, {})`` are both made and ``_identical``: told in one walk
    over the two specs, without making either form (each rule below is one of
    ``comparable_service_spec``'s; ``tests/unit/test_diff_fast_path.py`` holds the two ways
    to the same answers)."""
    if type(observed) is not dict or type(desired) is not dict or len(observed) != len(desired):
        return False
    for key, value in observed.items():
        if key not in desired:
            return False
        other = desired[key]
        if key == "TaskTemplate":
            same = _same_task(value, other, network_names)
        elif key == "Networks":
            same = _same_attachments(value, other, network_names)
        elif key == "Mode":
            same = _same_mode(value, other)
        elif key in _SECTION_DEFAULTS:
            same = _same_without(value, other, _SECTION_DEFAULTS[key])
        else:
            same = _same_leaf(value, other) if type(value) in _LEAVES else _identical(value, other)
        if not same:
            return False
    return True


def _same_leaf(first: Any, second: Any) -> bool:
    return type(second) is type(first) and first == second


# What the view reads as absent, per part: field -> (its type, the values that mean absent).
_Absent = Mapping[str, tuple[type, tuple[Any, ...]]]
_ISOLATION: _Absent = {"Isolation": (str, ("default", ""))}
_ONE_REPLICA: _Absent = {"Replicas": (int, (1,))}  # type: int, so True and 1.0 stay
_SECTION_DEFAULTS: dict[str, _Absent] = {
    "EndpointSpec": {"Mode": (str, ("vip", ""))},
    "UpdateConfig": {"FailureAction": (str, ("pause", "")), "Order": (str, ("stop-first", ""))},
    "RollbackConfig": {
        "FailureAction": (str, ("pause", "")),
        "Order": (str, ("stop-first", "")),
    },
}
_TASK_UNREAD = frozenset({"ForceUpdate", "Runtime"})


def _is_absent(absent: _Absent, key: str, value: Any) -> bool:
    kind, values = absent[key]
    return type(value) is kind and value in values


def _same_mode(first: Any, second: Any) -> bool:
    """``Mode``: its ``Replicated`` part without ``Replicas: 1``."""
    if type(first) is not dict or type(second) is not dict:
        return _identical(first, second)
    if len(first) != len(second):
        return False
    for key, value in first.items():
        if key not in second:
            return False
        if key == "Replicated":
            same = _same_without(value, second[key], _ONE_REPLICA)
        else:
            same = _identical(value, second[key])
        if not same:
            return False
    return True


def _same_without(first: Any, second: Any, absent: _Absent) -> bool:
    """``_identical`` of the two once each, if a dict, is taken without the entries the view
    reads as absent (``absent``)."""
    if type(first) is not dict or type(second) is not dict:
        return _identical(first, second)
    for key, value in first.items():
        if key in absent and _is_absent(absent, key, value):
            continue
        if key not in second:
            return False
        other = second[key]
        if key in absent and _is_absent(absent, key, other):
            return False
        if type(value) in _LEAVES:
            if type(other) is not type(value) or value != other:
                return False
        elif not _identical(value, other):
            return False
    for key, value in second.items():  # what the second has beyond the first
        if key not in first:
            if not (key in absent and _is_absent(absent, key, value)):
                return False
        elif (
            key in absent
            and _is_absent(absent, key, first[key])
            and not _is_absent(absent, key, value)
        ):
            return False
    return True


def _same_task(first: Any, second: Any, network_names: Mapping[str, str]) -> bool:
    if first is None or second is None:
        return first is None and second is None
    if type(first) is not dict or type(second) is not dict:
        return False  # not the plain shape: compared as views
    for key, value in first.items():
        if key in _TASK_UNREAD:
            continue
        if key not in second:
            return False
        other = second[key]
        if key == "ContainerSpec":
            same = _same_without(value, other, _ISOLATION)
        elif key == "Networks":
            same = _same_attachments(value, other, network_names)
        else:
            same = _same_leaf(value, other) if type(value) in _LEAVES else _identical(value, other)
        if not same:
            return False
    return not (second.keys() - first.keys() - _TASK_UNREAD)  # nothing more in the second


def _same_attachments(first: Any, second: Any, network_names: Mapping[str, str]) -> bool:
    """Network attachments, the first's targets looked up in ``network_names``."""
    if not first or not second:
        return not first and not second and _identical(first, second)
    if type(first) is not list or type(second) is not list or len(first) != len(second):
        return False
    for attachment, other in zip(first, second, strict=True):
        if type(attachment) is not dict or type(other) is not dict:
            return False
        if len(attachment) != len(other):
            return False
        for key, value in attachment.items():
            if key not in other:
                return False
            if key == "Target" and type(value) is str:
                value = network_names.get(value, value)
            if type(value) in _LEAVES:
                if not _same_leaf(value, other[key]):
                    return False
            elif not _identical(value, other[key]):
                return False
    return True


def _diff_loadbalancer(spec: Spec, observed: ObservedState) -> list[ObjectDiff]:
    """The load-balancer container: its settings and its rendered haproxy.cfg (``config``)."""
    result: list[ObjectDiff] = []
    owned = {item.name: item for item in observed.loadbalancers if item.owned}
    balancer = spec.loadbalancer
    if balancer is not None:
        name = container_name(spec.stack, balancer)
        desired = desired_view(spec, observed)
        current = owned.pop(name, None)
        if current is not None:
            changes = compare_views(align(desired, current.view), desired)
            status: DiffStatus = "update" if changes else "unchanged"
            result.append(ObjectDiff("loadbalancer", balancer.name, name, status, tuple(changes)))
        elif any(item.name == name for item in observed.loadbalancers):
            detail = f"container {name} exists and is not owned by stack {spec.stack}"
            result.append(
                ObjectDiff("loadbalancer", balancer.name, name, "collision", detail=detail)
            )
        else:
            changes = creation_changes(desired)
            result.append(ObjectDiff("loadbalancer", balancer.name, name, "create", tuple(changes)))
    for name, current in owned.items():
        key = spec_key(spec.stack, name)
        result.append(ObjectDiff("loadbalancer", key, current.name, "remove"))
    return result
