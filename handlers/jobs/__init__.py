"""Scheduled jobs: plain functions that open their own session; each is safe to run twice."""
from __future__ import annotations

from .deadlines import deadline_scan
from .digest import weekly_digest
from .housekeeping import housekeeping
from .summary import daily_summary, follow_up
from ..points import expire_points
from ..retention import retention

JOBS = {
    "deadlines": deadline_scan,
    "housekeeping": housekeeping,
    "digest": weekly_digest,
    "daily_summary": daily_summary,
    "follow_up": follow_up,
    "retention": retention,
    "points_expiry": expire_points,
}

__all__ = ["JOBS", "daily_summary", "deadline_scan", "follow_up", "housekeeping", "weekly_digest"]
