"""Saved plans: written whole, read back, bound to a converge version, their options and their
spec files' contents, which they find again from another directory or checkout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import stat
from pathlib import Path
from typing import cast

import pytest
from fake_engine import FakeSwarm
from test_planner import BASE_SPEC, ENVIRON

from converge.actions import Plan
from converge.api import (
    PlanResult,
    check_saved_plan,
    load_apply_input,
    make_plan,
    read_saved_plan,
    save_plan,
    saved_plan_options,
)
from converge.engine import Engine
from converge.errors import PlanError
from converge.loader import LoadedSpec, load_spec
from converge.planner import PlanOptions
from converge.render.plan import plan_text
from converge.state import ObservedState
from converge.version import converge_version

ROOT = Path(__file__).resolve().parents[2]


def test_save_plan_replaces_the_file_whole_and_reads_back(tmp_path: Path) -> None:
    loaded = load_spec([ROOT / "specs" / "exampleapp-lab.yml"], environ={})
    plan = Plan(stack=loaded.spec.stack, spec_digest="abc", versions={"service.mvc": 7})
    target = tmp_path / "plan.json"
    target.write_text("an older plan", encoding="utf-8")

    save_plan(PlanResult(loaded, ObservedState(loaded.spec.stack, "manager"), plan), target)

    document = read_saved_plan(target)
    assert document["stack"] == loaded.spec.stack
    assert document["spec"]["digest"] == "abc"
    assert document["versions"] == {"service.mvc": 7}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["plan.json"]


# -- what a saved plan records, and where it finds its spec again -------------------------------


def _project(root: Path) -> Path:
    """A checkout: the spec in ``spec/``, plans to be saved in ``plans/``."""
    (root / "spec").mkdir(parents=True)
    (root / "plans").mkdir()
    spec = root / "spec" / "stack.yml"
    shutil.copy(BASE_SPEC, spec)
    return spec


def _saved(root: Path, options: PlanOptions = PlanOptions()) -> Path:
    spec = _project(root)
    loaded = load_spec([spec], environ=ENVIRON)
    target = root / "plans" / "plan.json"
    save_plan(make_plan(loaded, cast(Engine, FakeSwarm.recorded("empty")), options), target)
    return target


def test_a_saved_plan_records_version_options_and_each_spec_file(tmp_path: Path) -> None:
    target = _saved(tmp_path, PlanOptions(prune=True, targets=("service.db",)))
    document = read_saved_plan(target)
    assert document["converge_version"] == converge_version()
    assert document["options"] == {
        "prune": True,
        "rebalance": False,
        "adopt": False,
        "take_over": False,
        "targets": ["service.db"],
        "rotate": [],
        "rerun": [],
    }
    spec = tmp_path / "spec" / "stack.yml"
    assert document["spec_files"] == [
        {
            "path": str(spec),
            "relative_to_plan": "../spec/stack.yml",
            "sha256": hashlib.sha256(spec.read_bytes()).hexdigest(),
        }
    ]
    assert saved_plan_options(document) == PlanOptions(prune=True, targets=("service.db",))


def test_a_saved_plan_works_from_another_directory_and_in_another_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _saved(tmp_path / "first")
    monkeypatch.chdir("/")
    loaded, saved = load_apply_input([target], environ=ENVIRON)
    assert saved is not None
    assert loaded.files == (str(tmp_path / "first" / "spec" / "stack.yml"),)
    shutil.copytree(tmp_path / "first", tmp_path / "second")
    shutil.rmtree(tmp_path / "first")
    loaded, _ = load_apply_input([tmp_path / "second" / "plans" / "plan.json"], environ=ENVIRON)
    assert loaded.files == (str(tmp_path / "second" / "spec" / "stack.yml"),)


def test_a_plan_moved_away_from_its_spec_finds_it_at_its_absolute_path(tmp_path: Path) -> None:
    target = _saved(tmp_path)
    moved = tmp_path / "elsewhere.json"
    target.rename(moved)
    loaded, _ = load_apply_input([moved], environ=ENVIRON)
    assert loaded.files == (str(tmp_path / "spec" / "stack.yml"),)


def test_a_spec_file_changed_or_gone_since_the_plan_is_refused(tmp_path: Path) -> None:
    target = _saved(tmp_path)
    spec = tmp_path / "spec" / "stack.yml"
    spec.write_text(spec.read_text() + "\n# edited\n")
    with pytest.raises(PlanError, match=r"spec/stack.yml changed since the plan was saved"):
        load_apply_input([target], environ=ENVIRON)
    spec.unlink()
    with pytest.raises(PlanError, match=r"spec file is not found: looked for .*stack.yml"):
        load_apply_input([target], environ=ENVIRON)


def test_a_plan_of_another_converge_version_is_refused(tmp_path: Path) -> None:
    target = _saved(tmp_path)
    document = json.loads(target.read_text())
    document["converge_version"] = "0.0.1"
    target.write_text(json.dumps(document))
    with pytest.raises(
        PlanError,
        match=rf"saved by converge 0\.0\.1; this is converge {re.escape(converge_version())}",
    ):
        load_apply_input([target], environ=ENVIRON)
    del document["converge_version"]
    target.write_text(json.dumps(document))
    with pytest.raises(PlanError, match="saved by an older converge"):
        load_apply_input([target], environ=ENVIRON)


def test_a_fresh_plan_that_differs_from_the_saved_one_is_refused(tmp_path: Path) -> None:
    target = _saved(tmp_path, PlanOptions(targets=("service.db",)))
    document = read_saved_plan(target)
    loaded, _ = load_apply_input([target], environ=ENVIRON)
    engine = cast(Engine, FakeSwarm.recorded("empty"))
    check_saved_plan(document, make_plan(loaded, engine, saved_plan_options(document)))
    with pytest.raises(PlanError, match="the plan made now differs from the saved one"):
        check_saved_plan(document, make_plan(loaded, engine))


# -- the spec digest is computed when first read ------------------------------------------------


def test_the_spec_digest_is_computed_only_when_read_and_is_the_spec_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import converge.api

    spec = _project(tmp_path)
    loaded = load_spec([spec], environ=ENVIRON)
    engine = cast(Engine, FakeSwarm.recorded("empty"))
    computed: list[str] = []
    real = converge.api.resolved_spec_hash

    def counted(loaded: LoadedSpec) -> str:
        computed.append(real(loaded))
        return computed[-1]

    monkeypatch.setattr(converge.api, "resolved_spec_hash", counted)
    planned = make_plan(loaded, engine)
    plan_text(planned.plan, planned.loaded)  # a plan shown as text never reads it
    assert computed == []
    assert planned.plan.spec_digest == real(loaded)
    assert planned.plan.spec_digest == real(loaded)
    assert len(computed) == 1  # once, then kept
    target = tmp_path / "plans" / "plan.json"
    save_plan(planned, target)
    assert read_saved_plan(target)["spec"]["digest"] == computed[0]
    # The same value as a plan given its digest (and as the saved plan's check reads it).
    check_saved_plan(read_saved_plan(target), make_plan(loaded, engine))


def test_a_plan_given_its_digest_or_a_function_of_it_is_the_same_value() -> None:
    made: list[int] = []

    def digest() -> str:
        made.append(1)
        return "d" * 64

    lazy = Plan(stack="s", spec_digest=digest)
    assert made == []
    assert dataclasses.replace(lazy, stack="t").spec_digest == "d" * 64  # replace reads it
    assert lazy == Plan(stack="s", spec_digest="d" * 64)
    assert made == [1]
    assert Plan(stack="s").spec_digest == ""
    assert lazy != Plan(stack="s", spec_digest="e" * 64)


def test_the_spec_digest_is_what_it_was_the_spec_as_json_and_the_contents() -> None:
    from converge.api import _spec_material

    loaded = load_spec([BASE_SPEC], environ=ENVIRON)
    loaded = dataclasses.replace(loaded, contents={("secret", "db_password"): b"s3cret"})
    material = hashlib.sha256(loaded.spec.model_dump_json().encode())
    material.update(b"\0secret\0db_password\x006\0s3cret")
    assert _spec_material(loaded) == material.digest()
