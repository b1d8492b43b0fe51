"""Names that menus.yaml may refer to: flow completers, menu actions, validators, choice lists."""
from __future__ import annotations

from typing import Callable

COMPLETERS: dict[str, Callable] = {}
ACTIONS: dict[str, Callable] = {}
VALIDATORS: dict[str, Callable] = {}
CHOICES: dict[str, Callable] = {}
# Flow hooks (the privacy notice and consent): fn(ctx, flow) -> text shown above the first
# question, or None; fn(ctx, flow, step) called when a step's answer is accepted.
BEFORE_START: list[Callable] = []
ON_ANSWER: list[Callable] = []

KINDS = {"handler": COMPLETERS, "action": ACTIONS, "validator": VALIDATORS, "choices_from": CHOICES}


def _register(table: dict, name: str):
    """Returns a decorator that files a function under a name, refusing duplicates."""
    def decorate(fn):
        if name in table and table[name] is not fn:
            raise ValueError(f"{name!r} registered twice")
        table[name] = fn
        return fn
    return decorate


def completer(name: str):
    """Registers fn(ctx, answers) -> Reply, called when a flow is confirmed."""
    return _register(COMPLETERS, name)


def action(name: str):
    """Registers fn(ctx) -> Reply, called by a menu button or keyword."""
    return _register(ACTIONS, name)


def validator(name: str):
    """Registers fn(ctx, value) -> value, raising Invalid with a hint."""
    return _register(VALIDATORS, name)


def choices(name: str):
    """Registers fn(ctx, answers) -> list of (value, label) for a choice step."""
    return _register(CHOICES, name)


def before_start(fn):
    """Registers fn(ctx, flow) -> str | None, a note shown above a flow's first question."""
    if fn not in BEFORE_START:
        BEFORE_START.append(fn)
    return fn


def on_answer(fn):
    """Registers fn(ctx, flow, step), called after an answer to a step is accepted."""
    if fn not in ON_ANSWER:
        ON_ANSWER.append(fn)
    return fn


class Invalid(ValueError):
    """Input that does not fit a step; the message is the hint shown to the resident."""


def load_all() -> None:
    """Imports every handler module so their names are registered."""
    from . import builtin  # noqa: F401  (registers on import)
