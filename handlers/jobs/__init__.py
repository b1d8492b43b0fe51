"""Scheduled jobs: plain functions that open their own session; each is safe to run twice."""
from __future__ import annotations

from .deadlines import deadline_scan
from .digest import weekly_digest
from .housekeeping import housekeeping
from ..retention import retention

JOBS = {
    "deadlines": deadline_scan,
    "housekeeping": housekeeping,
    "digest": weekly_digest,
    "retention": retention,
}

__all__ = ["JOBS", "deadline_scan", "housekeeping", "weekly_digest"]
