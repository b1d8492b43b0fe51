"""Figures operators watch, read straight from the tables: backlog, failures, overdue, the scheduler."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from .outbox import OutboxMessage
from .request import OPEN_STATUSES, ServiceRequest
from .schedule import JobRun

# The scheduler's persistent job store (APScheduler): the leader keeps next_run_time fresh.
JOBSTORE_TABLE = "apscheduler_jobs"
HEARTBEAT_JOB = "outbox"
_CODE = re.compile(r"^wechat (-?\d+)|^(smtp)|^(HTTP \d{3})|^([A-Za-z]+Error|[A-Za-z]+Exception)")


def outbox_backlog(session: Session) -> int:
    """Messages waiting to go out (pending, or being sent)."""
    return session.scalar(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.status.in_(("pending", "sending")))) or 0


def outbox_failures(session: Session) -> dict[str, int]:
    """Messages given up on, by error code (WeChat errcode, smtp, HTTP status, exception name)."""
    prefix = func.substr(OutboxMessage.last_error, 1, 40)
    rows = session.execute(select(prefix, func.count()).where(OutboxMessage.status == "failed")
                           .group_by(prefix))
    out: dict[str, int] = {}
    for error, count in rows:
        out[error_code(error)] = out.get(error_code(error), 0) + count
    return out


def error_code(error: str | None) -> str:
    """A short, low-cardinality code for an outbox error text ('43004', 'smtp', 'other')."""
    m = _CODE.match(error or "")
    if not m:
        return "other"
    return next(g for g in m.groups() if g)


def overdue_requests(session: Session, now: datetime) -> int:
    """Open requests past their deadline."""
    return session.scalar(select(func.count()).select_from(ServiceRequest)
                          .where(ServiceRequest.status.in_(OPEN_STATUSES),
                                 ServiceRequest.deadline_at < now)) or 0


def job_runs(session: Session) -> dict[str, int]:
    """Daily and weekly job runs recorded by the scheduler, by job."""
    return dict(session.execute(select(JobRun.job, func.count()).group_by(JobRun.job)).all())


def scheduler_lag(session: Session, now: datetime) -> float | None:
    """Seconds the leader is behind on the outbox job; None when no scheduler ever ran here.

    The active scheduler reschedules the job after every run, so its next run time
    stays in the near future; when no scheduler leads, it falls into the past.
    """
    if not inspect(session.connection()).has_table(JOBSTORE_TABLE):
        return None
    next_run = session.execute(text(f"SELECT next_run_time FROM {JOBSTORE_TABLE} WHERE id = :id"),
                               {"id": HEARTBEAT_JOB}).scalar()
    if next_run is None:
        return None
    return max(0.0, now.timestamp() - float(next_run))
