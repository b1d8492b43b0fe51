"""Scheduled jobs: plain functions that open their own session; each is safe to run twice."""
from __future__ import annotations

from .housekeeping import housekeeping

JOBS = {
    "housekeeping": housekeeping,
}

__all__ = ["JOBS", "housekeeping"]
