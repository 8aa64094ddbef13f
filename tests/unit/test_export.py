"""``converge export``: a running stack written as a compose file that plans no change.

On the recorded lab swarm (tests/fixtures/recorded/): exported, loaded back and planned against
the same recording, the file plans nothing; and what equals the engine's default is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from fake_engine import FakeSwarm

from converge.api import export_stack
from converge.diff import diff
from converge.engine import Engine
from converge.errors import ConvergeError
from converge.export import export_compose
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import plan

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def _recorded(stack: str = "fxrec") -> Any:
    engine = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
    return state_from_engine_json(
        stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )


def test_the_exported_file_plans_no_change() -> None:
    observed = _recorded()
    text = yaml.safe_dump(export_compose(observed), sort_keys=False)
    loaded = load_spec_text(text, "exported.yml", environ={})
    result = plan(loaded.spec, diff(loaded.spec, observed), observed)
    assert [action.description for action in result.actions] == []
    assert loaded.warnings == ()


def test_defaults_are_left_out_and_what_is_set_is_written() -> None:
    document = export_compose(_recorded())
    services = document["services"]
    assert set(services) == {"agent", "db", "labelled", "latest", "pinned", "web"}  # not hand
    assert services["latest"] == {
        "image": "mysql",
        "networks": {"default": None},
        "deploy": {"replicas": 0},
    }
    web = services["web"]
    assert web["environment"] == {"DBHOST": "db", "MODE": "web"}
    assert web["deploy"]["update_config"]["monitor"] == "0s"  # as stack deploy made it
    assert web["deploy"]["resources"] == {"limits": {"cpus": "0.5", "memory": "64M"},
                                          "reservations": {"memory": "16M"}}  # fmt: skip
    assert web["networks"] == {"backend": {"aliases": ["frontend"]}}
    # The image as written (stack deploy's label), not the digest it was pinned to by hand.
    assert services["pinned"]["image"] == "converge-lab/app:v2"
    assert document["networks"]["backend"] == {"attachable": True}
    assert document["volumes"] == {"data": None} or document["volumes"] == {"data": {}}
    # Nodes belong to the cluster spec: an exported stack reads them, never declares them.
    assert document["x-converge"] == {"stack": "fxrec"}


def test_secrets_cannot_be_exported_yet() -> None:
    engine = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
    web = next(s for s in engine["services"] if s["Spec"]["Name"] == "fxrec_web")
    web["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"] = [{"SecretName": "x"}]
    observed = state_from_engine_json(
        "fxrec", engine["manager"], nodes=engine["nodes"], networks=engine["networks"],
        services=engine["services"], tasks=engine["tasks"],
    )  # fmt: skip
    with pytest.raises(ConvergeError, match="fxrec_web uses swarm secrets or configs"):
        export_compose(observed)


def test_export_stack_reads_the_swarm_and_writes_yaml() -> None:
    text = export_stack("fxrec", cast(Engine, FakeSwarm.recorded("fxrec")))
    assert text.startswith("# Exported by converge from the running stack fxrec")
    assert yaml.safe_load(text)["x-converge"]["stack"] == "fxrec"
