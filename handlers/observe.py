"""What the dispatcher tells observers (metrics, access logs) about each message, no I/O here."""
from __future__ import annotations

from typing import Callable

from .flows import CANCEL_WORDS, CONFIRM

# Callables (outcome, msg, flow_event) registered by the adapter; outcome is one of
# handled, retry, rate_limited, error; flow_event is None or (flow name, completed|abandoned).
OBSERVERS: list[Callable] = []


def flow_event(before: tuple, after: tuple, text: str) -> tuple[str, str] | None:
    """(flow, completed|abandoned) when a message ended the flow the resident was in."""
    flow, step = before
    if not flow or after[0] == flow:
        return None
    if step == CONFIRM and after[0] is None and text not in CANCEL_WORDS:
        return flow, "completed"
    return flow, "abandoned"


def notify(outcome: str, msg, event: tuple[str, str] | None = None) -> None:
    """Tells every observer; an observer's failure never costs the resident the reply."""
    for observer in OBSERVERS:
        try:
            observer(outcome, msg, event)
        except Exception:  # noqa: BLE001 - observing must never break handling
            pass
