"""Plan fixtures: a spec and real recorded engine JSON in, the planned actions out.

A case is a directory ``tests/fixtures/plans/<case>/`` holding:

- ``spec.yml``, a whole spec; or ``override.yml``, merged (as a second spec file would be) over
  ``tests/fixtures/recorded/fxrec.yml``, the spec that made the recording, so that a case
  states only what it changes;
- ``observed.json``: the engine's ``nodes``, ``networks``, ``services`` and ``tasks`` list
  responses and the ``manager``'s name, or ``{"recorded": "<name>"}`` naming one of the real
  recordings in ``tests/fixtures/recorded/`` (made on the lab by ``scripts/record_state.py``),
  with optional ``"node_patches": {"<hostname>": {...}}`` deep-merged into those nodes: what
  ``docker node update`` would have done, which the recorder may not do to the shared lab; and
  ``"service_patches": {"<service name>": {...}}`` and ``"network_patches"`` likewise (an update
  state the engine left, a label ``docker stack deploy`` would not set); a ``null`` removes a
  key;
- ``options.json`` (optional): ``PlanOptions`` fields, such as ``{"prune": true}``;
- ``expected.json``: the summary line, the actions as ``plan_json`` renders them (address,
  phase, kind, forced_by, and each changed field with its before and after) and the findings.

After changing the planner on purpose, rewrite the expected files with
``CONVERGE_UPDATE_FIXTURES=1 pytest tests/unit/test_planner.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from converge.actions import Phase
from converge.api import resolved_spec_hash
from converge.diff import diff
from converge.loader import LoadedSpec, load_spec, load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from converge.render import plan_document, summary_line
from converge.state import ObservedState
from tests.document_schemas import assert_valid

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "tests" / "fixtures" / "plans"
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
BASE_SPEC = RECORDED / "fxrec.yml"
# The whole environment the specs see (the recorder used the same value).
ENVIRON = {"DB_PASSWORD": "s3cret-fixture-password"}

CASES = sorted(entry.name for entry in PLANS.iterdir() if entry.is_dir())


def load_recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def patched_recording(observed: dict[str, Any]) -> dict[str, Any]:
    """The engine JSON a case observes: a recording with its node and service patches."""
    if "recorded" not in observed:
        return observed
    recording = load_recording(observed["recorded"])
    node_patches = observed.get("node_patches", {})
    for node in recording["nodes"]:
        _deep_merge(node, node_patches.get(node["Description"]["Hostname"], {}))
    service_patches = observed.get("service_patches", {})
    for service in recording["services"]:
        _deep_merge(service, service_patches.get(service["Spec"]["Name"], {}))
    network_patches = observed.get("network_patches", {})
    for network in recording["networks"]:
        _deep_merge(network, network_patches.get(network["Name"], {}))
    return recording


def observed_state(stack: str, engine_json: dict[str, Any]) -> ObservedState:
    engine_json = patched_recording(engine_json)
    return state_from_engine_json(
        stack,
        engine_json["manager"],
        nodes=engine_json["nodes"],
        networks=engine_json["networks"],
        services=engine_json["services"],
        tasks=engine_json["tasks"],
    )


def load_case_spec(case: Path) -> LoadedSpec:
    if (case / "spec.yml").exists():
        files = [case / "spec.yml"]
    else:
        files = [BASE_SPEC, case / "override.yml"]
    return load_spec(files, environ=ENVIRON)


def run_case(case: Path) -> tuple[LoadedSpec, ObservedState, dict[str, Any]]:
    loaded = load_case_spec(case)
    observed_json = json.loads((case / "observed.json").read_text(encoding="utf-8"))
    observed = observed_state(loaded.spec.stack, observed_json)
    options_file = case / "options.json"
    options = (
        PlanOptions(**json.loads(options_file.read_text(encoding="utf-8")))
        if options_file.exists()
        else PlanOptions()
    )
    result = plan(
        loaded.spec,
        diff(loaded.spec, observed),
        observed,
        options,
        spec_digest=resolved_spec_hash(loaded),
        spec_files=loaded.files,
    )
    rendered = json.loads(json.dumps(plan_document(result, loaded), default=str))
    assert_valid("plan", rendered)
    return loaded, observed, {"summary": summary_line(result), **_essentials(rendered)}


def _essentials(document: dict[str, Any]) -> dict[str, Any]:
    """What a fixture pins down: no ids, versions or wording of reasons."""
    return {
        "actions": [
            {
                "address": action["address"],
                "phase": action["phase"],
                "kind": action["kind"],
                **({"forced_by": action["forced_by"]} if action["forced_by"] else {}),
                "changes": [
                    {"field": change["field"], "before": change["before"], "after": change["after"]}
                    for change in action["changes"]
                ],
            }
            for action in document["actions"]
        ],
        "findings": document["findings"],
    }


@pytest.mark.parametrize("name", CASES)
def test_plan_fixture(name: str) -> None:
    case = PLANS / name
    _, observed, actual = run_case(case)
    expected_file = case / "expected.json"
    if os.environ.get("CONVERGE_UPDATE_FIXTURES"):
        expected_file.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    assert actual == json.loads(expected_file.read_text(encoding="utf-8"))

    # Whatever the case: phases run in order, and nothing converge does not own is touched.
    phases = [Phase[action["phase"].upper()] for action in actual["actions"]]
    assert phases == sorted(phases)
    unowned = {service.name for service in observed.services if not service.owned} | {
        network.name for network in observed.networks if not network.owned
    }
    loaded = load_case_spec(case)
    # Except what --adopt takes over, and then only through an ``adopt`` action.
    touched = {
        f"{loaded.spec.stack}_{action['address'].split('.', 1)[1]}"
        for action in actual["actions"]
        if action["kind"] != "adopt"
    }
    assert not touched & unowned


def test_every_case_is_complete() -> None:
    for name in CASES:
        case = PLANS / name
        assert (case / "observed.json").exists(), name
        assert (case / "expected.json").exists(), name
        assert (case / "spec.yml").exists() != (case / "override.yml").exists(), name


def test_recordings_are_real_engine_json() -> None:
    """The recordings hold what the lab's engine returned, including our ownership labels."""
    recording = load_recording("fxrec")
    names = {service["Spec"]["Name"] for service in recording["services"]}
    assert {"fxrec_db", "fxrec_web", "fxrec_agent", "fxrec_hand"} <= names
    hand = next(s for s in recording["services"] if s["Spec"]["Name"] == "fxrec_hand")
    assert "com.docker.stack.namespace" not in hand["Spec"].get("Labels", {})
    web = next(s for s in recording["services"] if s["Spec"]["Name"] == "fxrec_web")
    # The engine keeps network ids, not the names the payload sent.
    targets = [n["Target"] for n in web["Spec"]["TaskTemplate"]["Networks"]]
    assert all(not target.startswith("fxrec_") for target in targets)
    assert {node["Description"]["Hostname"] for node in recording["nodes"]} == {
        "manager",
        "dbhost",
        "worker1",
        "worker2",
        "worker3",
    }


def test_a_second_plan_after_the_recorded_apply_is_empty() -> None:
    """The services made by service_engine_spec plan as unchanged, engine defaults and all."""
    loaded = load_spec([BASE_SPEC], environ=ENVIRON)
    observed = observed_state("fxrec", {"recorded": "fxrec"})
    difference = diff(loaded.spec, observed)
    assert {item.status for item in difference.objects} == {"unchanged"}
    result = plan(loaded.spec, difference, observed, PlanOptions(prune=True))
    assert not result.actions
    assert not result.findings


def test_prune_removes_services_before_networks() -> None:
    _, _, actual = run_case(PLANS / "service_left_out_prune")
    kinds = [(action["phase"], action["address"]) for action in actual["actions"]]
    assert kinds == [
        ("prune_services", "service.agent"),
        ("prune_networks", "network.monitoring"),
    ]


@pytest.mark.parametrize(
    ("case", "address", "reason"),
    [
        ("update_paused", "service.web", "the last update was paused: re-apply resumes it"),
        (
            "update_rolled_back",
            "service.db",
            "the last update was rolled back: re-apply deploys the spec again",
        ),
    ],
)
def test_a_stuck_update_is_re_driven_even_with_rebalance(
    case: str, address: str, reason: str
) -> None:
    """A paused or rolled-back update the engine never leaves by itself: apply re-drives it,
    and --rebalance neither says "No changes" nor adds a second action for it."""
    loaded = load_case_spec(PLANS / case)
    observed = observed_state(
        loaded.spec.stack, json.loads((PLANS / case / "observed.json").read_text())
    )
    for options in (PlanOptions(), PlanOptions(rebalance=True)):
        result = plan(loaded.spec, diff(loaded.spec, observed), observed, options)
        stuck = [action for action in result.actions if action.address == address]
        assert [(action.kind, action.reason) for action in stuck] == [("force", reason)]
        assert stuck[0].description.endswith(f"redeploy every task ({reason})")
        assert summary_line(result) != "No changes. The swarm matches the spec."


def test_an_update_in_flight_or_completed_is_left_alone() -> None:
    loaded = load_spec([BASE_SPEC], environ=ENVIRON)
    for state in ("updating", "rollback_started", "completed"):
        engine_json = {
            "recorded": "fxrec",
            "service_patches": {"fxrec_web": {"UpdateStatus": {"State": state}}},
        }
        observed = observed_state("fxrec", engine_json)
        assert not plan(loaded.spec, diff(loaded.spec, observed), observed).actions, state


def test_a_saved_plan_records_only_the_nodes_the_spec_manages() -> None:
    text = BASE_SPEC.read_text().replace(
        "  stack: fxrec\n",
        "  stack: fxrec\n  cluster:\n    nodes:\n      dbhost: {role: worker}\n      worker2: {}\n",
    )
    loaded = load_spec_text(text, "two-nodes.yml", environ=ENVIRON)
    observed = observed_state("fxrec", {"recorded": "fxrec"})
    versions = plan(loaded.spec, diff(loaded.spec, observed), observed).versions
    nodes = sorted(address for address in versions if address.startswith("node."))
    assert nodes == ["node.dbhost", "node.worker2"]  # not the three other nodes of the swarm
    assert {address for address in versions if address.startswith("service.")} == {
        f"service.{key}" for key in observed.owned_services()
    }
    without_nodes = load_case_spec(PLANS / "service_left_out_prune")
    assert not without_nodes.spec.nodes
    versions = plan(without_nodes.spec, diff(without_nodes.spec, observed), observed).versions
    assert not [address for address in versions if address.startswith("node.")]
