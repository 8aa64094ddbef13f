"""Masking, the one place secrets are taken out of what converge shows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from converge.actions import Action, Phase, Plan
from converge.diff import FieldChange
from converge.loader import load_spec_text
from converge.masking import (
    MASK,
    SENSITIVE_NAME_WORDS,
    SENSITIVE_NAMES_VARIABLE,
    Masker,
    plan_secret_texts,
    scrub,
    secret_texts,
    sensitive_name,
    sensitive_name_words,
)

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


def test_environment_names_that_look_sensitive_are_masked_whoever_set_them() -> None:
    masker = Masker(None)
    hand_set = FieldChange(("environment", "API_TOKEN"), "hand-set-value-1", None)
    assert masker.change(ACTION, hand_set) == FieldChange(("environment", "API_TOKEN"), MASK, None)
    whole = masker.value(ACTION, ("environment",), {"DB_PASSWORD": "pw-value-123", "MODE": "web"})
    assert whole == {"DB_PASSWORD": MASK, "MODE": "web"}
    assert masker.value(ACTION, ("environment", "MODE"), "web") == "web"
    for name in ("api_key", "Github_Token", "SSL_CERT", "X_AUTH", "PGPASSWD", "AWS_SECRET_ID"):
        assert sensitive_name(name), name
    assert not sensitive_name("NODE")


def test_the_environment_variable_adds_words_and_cannot_remove_any() -> None:
    environ = {SENSITIVE_NAMES_VARIABLE: "pin, Otp ,"}
    words = sensitive_name_words(environ)
    assert words[: len(SENSITIVE_NAME_WORDS)] == SENSITIVE_NAME_WORDS
    assert words[len(SENSITIVE_NAME_WORDS) :] == ("PIN", "OTP")
    assert sensitive_name("SMS_OTP", words)
    assert not sensitive_name("SMS_OTP")


def test_the_variable_is_read_by_every_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    change = FieldChange(("environment", "SMS_OTP"), "123456789", "987654321")
    assert Masker(None).change(ACTION, change) == change
    monkeypatch.setenv(SENSITIVE_NAMES_VARIABLE, "OTP")
    assert Masker(None).change(ACTION, change) == FieldChange(change.path, MASK, MASK)


def test_values_a_plan_saw_at_sensitive_names_are_scrubbed_from_any_text() -> None:
    hand_set = "hand-set-token-0001"
    action = Action(
        Phase.SERVICES,
        "update",
        "service",
        "web",
        "shop_web",
        "settings differ",
        (FieldChange(("environment", "API_TOKEN"), hand_set, None),),
    )
    plan = Plan("shop", (action,))
    assert plan_secret_texts(plan) == {hand_set}
    assert scrub(f"exec failed: {hand_set} rejected", None, plan) == f"exec failed: {MASK} rejected"
    assert scrub(f"exec failed: {hand_set}", None) == f"exec failed: {hand_set}"
    # Short values found by name only are plain words ("basic"): masked by path, not hunted.
    short = Plan(
        "shop", (replace(action, changes=(FieldChange(("environment", "AUTH"), "basic", None),)),)
    )
    assert plan_secret_texts(short) == frozenset()


def test_values_at_sensitive_names_in_the_spec_are_hunted_too() -> None:
    loaded = load_spec_text(
        "x-converge:\n  stack: shop\nservices:\n  web:\n    image: nginx\n"
        "    environment: {API_KEY: literal-key-value, AUTH: basic, MODE: web}\n",
        "spec.yml",
    )
    assert secret_texts(loaded) == {"literal-key-value"}


def test_a_secret_containing_another_is_replaced_whole() -> None:
    loaded = load_spec_text(
        "x-converge:\n  stack: shop\nservices:\n  web:\n    image: nginx\n"
        "    environment: {A: '${A}', B: '${B}'}\n",
        "spec.yml",
        environ={"A": "abcd", "B": "abcdefgh"},
    )
    assert scrub("x abcdefgh y abcd", loaded) == f"x {MASK} y {MASK}"


def test_a_urls_password_is_masked_in_any_value_and_text() -> None:
    masker = Masker(None)
    url = "postgres://app:pw-0001@db:5432/app"
    shown = "postgres://app:(sensitive)@db:5432/app"
    removed = FieldChange(("environment", "DATABASE"), url, None)
    assert masker.change(ACTION, removed) == FieldChange(("environment", "DATABASE"), shown, None)
    assert masker.value(ACTION, ("command",), ["run", url]) == ["run", shown]
    assert masker.text(f"cannot reach {url}: refused") == f"cannot reach {shown}: refused"
    # No password, nothing to mask.
    for plain in ("http://example.com/a@b", "redis://cache:6379", "user@host:path"):
        assert masker.text(plain) == plain
