"""Masking, the one place secrets are taken out of what converge shows."""

from __future__ import annotations

from converge.actions import Action, Phase
from converge.diff import FieldChange
from converge.loader import load_spec_text
from converge.masking import MASK, Masker, scrub, secret_texts

SPEC = """\
x-converge:
  stack: shop
services:
  web:
    image: nginx
    command: [serve, --token, '${TOKEN}']
    environment: {TOKEN: '${TOKEN}', MODE: web, PIN: '${PIN}'}
"""
TOKEN = "t0ken-value"
LOADED = load_spec_text(SPEC, "spec.yml", environ={"TOKEN": TOKEN, "PIN": "42"})
ACTION = Action(Phase.SERVICES, "update", "service", "web", "shop_web", "settings differ")


def test_secret_texts_skip_values_too_short_to_hunt() -> None:
    assert secret_texts(LOADED) == {TOKEN}
    assert secret_texts(None) == frozenset()


def test_text_is_scrubbed_wherever_a_secret_shows() -> None:
    assert scrub(f"task failed: bad token {TOKEN}", LOADED) == f"task failed: bad token {MASK}"
    assert scrub(f"bad token {TOKEN}", None) == f"bad token {TOKEN}"


def test_values_are_masked_by_path_and_by_content() -> None:
    masker = Masker(LOADED)
    env = {"TOKEN": TOKEN, "MODE": "web", "PIN": "42"}
    assert masker.value(ACTION, ("environment",), env) == {
        "TOKEN": MASK,
        "MODE": "web",
        "PIN": MASK,
    }
    assert masker.value(ACTION, ("command",), ["serve", "--token", TOKEN]) == MASK
    assert masker.value(ACTION, ("image",), "nginx") == "nginx"
    assert masker.value(ACTION, ("environment", "PIN"), None) is None


def test_an_action_is_masked_on_both_sides_of_each_change() -> None:
    action = Action(
        Phase.SERVICES,
        "update",
        "service",
        "web",
        "shop_web",
        "settings differ",
        (
            FieldChange(("environment", "TOKEN"), "old-value", TOKEN),
            FieldChange(("deploy", "replicas"), 1, 2),
        ),
    )
    masked = Masker(LOADED).action(action)
    assert masked.changes == (
        FieldChange(("environment", "TOKEN"), MASK, MASK),
        FieldChange(("deploy", "replicas"), 1, 2),
    )
    assert TOKEN not in masked.description
    assert masked.address == action.address
