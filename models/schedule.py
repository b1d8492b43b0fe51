"""What the scheduled jobs have done, so a restart, a double run or a catch-up never repeats it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, BigID, UTCDateTime, utcnow


class JobRun(Base):
    """One run of a periodic job for one period (the week of a digest, the day of a summary)."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period"),)
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<JobRun {self.job} {self.period}>"


class Notice(Base):
    """A reminder, escalation or follow-up already issued for one request at one stage."""

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("request_id", "kind", "stage"),
                      Index("ix_notices_kind_created", "kind", "created_at"))
    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # What makes the notice unique within its kind: the deadline it was about, the level reached.
    stage: Mapped[str] = mapped_column(String(64))
    # The deadline a reminder or escalation was about (the resolution, for a follow-up):
    # a new deadline or a new resolution earns new notices.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Notice {self.kind} {self.request_id} {self.stage}>"


def claim_period(session: Session, job: str, period: str) -> JobRun | None:
    """Records that `job` runs for `period`; None when it already ran (or runs elsewhere)."""
    if session.scalar(select(JobRun.id).where(JobRun.job == job, JobRun.period == period)):
        return None
    run = JobRun(job=job, period=period)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        # Another scheduler (or a double run) got there first: its transaction wins.
        return None
    return run


def claim_notice(session: Session, request_id: int, kind: str, stage: str, now: datetime,
                 deadline_at: datetime | None = None) -> bool:
    """Records a notice about a request; False when it was already issued."""
    if session.scalar(select(Notice.id).where(Notice.request_id == request_id, Notice.kind == kind,
                                              Notice.stage == stage)):
        return False
    try:
        with session.begin_nested():
            session.add(Notice(request_id=request_id, kind=kind, stage=stage, created_at=now,
                               deadline_at=deadline_at))
    except IntegrityError:
        return False
    return True
