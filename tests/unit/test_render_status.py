"""``converge status`` renderers, from the document ``converge.api.stack_status`` returns."""

from __future__ import annotations

import json
from typing import Any

from converge import __version__
from converge.render import STATUS_FORMAT_VERSION, status_document, status_json, status_text

REPORT: dict[str, Any] = {
    "stack": "shop",
    "services": [
        {
            "key": "web",
            "name": "shop_web",
            "in_spec": True,
            "running": 2,
            "desired": 3,
            "update_state": "updating",
            "converged": False,
            "failure": None,
            "placement": {"worker1": 1, "worker2": 1},
            "errors": ["worker3: failed: no [bold]space[/bold] left"],
        },
        {
            "key": "db",
            "name": "shop_db",
            "in_spec": True,
            "running": 1,
            "desired": 1,
            "update_state": None,
            "converged": True,
            "failure": None,
            "placement": {},
            "errors": [],
        },
    ],
    "missing": ["service.cache", "node.worker9"],
}


def test_status_text_per_service_then_what_is_missing() -> None:
    assert status_text(REPORT).splitlines() == [
        "[bold]shop_web[/bold] 2/3 running, update updating [yellow]not converged[/yellow]",
        "  placement: worker1=1, worker2=1",
        "  [red]error[/red] worker3: failed: no \\[bold]space\\[/bold] left",
        "[bold]shop_db[/bold] 1/1 running [green]ok[/green]",
        "  placement: (no running tasks)",
        "[yellow]service.cache: declared in the spec, not in the swarm[/yellow]",
        "[yellow]node.worker9: declared in the spec, not in the swarm[/yellow]",
    ]


def test_a_stack_with_nothing_to_show_renders_nothing() -> None:
    assert status_text({"stack": "shop", "services": [], "missing": []}) == ""


def test_status_json_is_the_report_with_its_versions_first() -> None:
    document = status_document(REPORT)
    assert list(document)[:2] == ["format_version", "converge_version"]
    assert document == {
        "format_version": STATUS_FORMAT_VERSION,
        "converge_version": __version__,
        **REPORT,
    }
    assert status_json(REPORT) == json.dumps(document, indent=2)


def test_a_failed_service_shows_its_failure() -> None:
    failed = {
        **REPORT["services"][0],
        "update_state": "paused",
        "failure": "update paused: task: non-zero exit (1)",
    }
    lines = status_text({"stack": "shop", "services": [failed], "missing": []}).splitlines()
    assert lines[:2] == [
        "[bold]shop_web[/bold] 2/3 running, update paused [red]failed[/red]",
        "  [red]failure:[/red] update paused: task: non-zero exit (1)",
    ]
