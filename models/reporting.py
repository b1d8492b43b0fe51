"""Aggregate queries behind the console's dashboard, assessment and inbox counts, and their indexes.

Each figure is one SQL statement over an index range: the indexes below hold every column the
queries touch (covering), lead with the column they group or range on, and the queries pivot
with SUM(CASE …) rather than GROUP BY on a computed key, so SQLite and PostgreSQL answer a park
of a million requests from the index alone without sorting it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Index, and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from .request import OPEN_STATUSES, TYPES, ServiceRequest
from .resident import Resident
from .volunteer import Volunteer

_r = ServiceRequest.__table__.c
_OUTCOME = (_r.status, _r.answered_at, _r.deadline_at, _r.resolved_at, _r.reopen_count, _r.rating)
# Charts over time: months by type, first-answer times.
Index("ix_requests_report_time", _r.created_at, _r.type, _r.answered_at)
# Charts by community and the stewards' assessment.
Index("ix_requests_report_community", _r.community_id, _r.created_at, _r.type, *_OUTCOME)
# The handlers' assessment.
Index("ix_requests_report_handler", _r.handler_id, _r.created_at, *_OUTCOME)

# The console inbox's counts per status (and overdue) within a steward's or a liaison's scope.
Index("ix_requests_inbox_community", _r.community_id, _r.status, _r.deadline_at)
Index("ix_requests_inbox_handler", _r.handler_id, _r.status, _r.deadline_at)
# The headline's counts of residents.
Index("ix_residents_report_verified", Resident.__table__.c.verified_at)
Index("ix_residents_report_party", Resident.__table__.c.party_member)

# Response-time buckets in hours: (upper bound, key); the last one is open-ended.
RESPONSE_BUCKETS = ((1, "lt1h"), (4, "lt4h"), (24, "lt1d"), (72, "lt3d"), (168, "lt7d"), (None, "ge7d"))
SERIES = (*TYPES, None)


def _sum(cond):
    """SUM(CASE WHEN cond THEN 1 ELSE 0 END), 0 when there are no rows."""
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _type_columns():
    """One count per request type, and one for requests not yet classified."""
    return [_sum(ServiceRequest.type == t) for t in TYPES] + [_sum(ServiceRequest.type.is_(None))]


def _hours_between(session: Session, start, end):
    """SQL for the hours from start to end, on SQLite or PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def headline(session: Session, now: datetime) -> dict[str, int]:
    """The programme's figures: residents, verified, Party members, volunteers, requests, overdue."""
    count = func.count()
    figures = {
        "residents": select(count).select_from(Resident),
        "verified": select(count).select_from(Resident).where(Resident.verified_at.is_not(None)),
        "party_members": select(count).select_from(Resident).where(Resident.party_member == "confirmed"),
        "volunteers": select(count).select_from(Volunteer).where(Volunteer.status == "approved"),
        "requests": select(count).select_from(ServiceRequest),
        "closed": select(count).select_from(ServiceRequest).where(ServiceRequest.status == "closed"),
        "overdue": select(count).select_from(ServiceRequest).where(
            ServiceRequest.status.in_(OPEN_STATUSES), ServiceRequest.deadline_at < now),
    }
    return {name: session.scalar(stmt) or 0 for name, stmt in figures.items()}


def by_month_and_type(session: Session, months: list[tuple[str, datetime, datetime]]) -> dict:
    """{(month label, type): count} of requests filed in each [start, end) month, one statement."""
    if not months:
        return {}
    parts = [select(literal(label).label("month"), *_type_columns())
             .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end)
             for label, start, end in months]
    out = {}
    for label, *counts in session.execute(union_all(*parts)):
        out.update({(label, key): int(n) for key, n in zip(SERIES, counts) if n})
    return out


def by_community_and_type(session: Session, start: datetime, end: datetime) -> dict:
    """{(community id, type): count} of requests filed in [start, end)."""
    stmt = (select(ServiceRequest.community_id, *_type_columns())
            .where(ServiceRequest.community_id.is_not(None),
                   ServiceRequest.created_at >= start, ServiceRequest.created_at < end)
            .group_by(ServiceRequest.community_id))
    out = {}
    for community_id, *counts in session.execute(stmt):
        out.update({(community_id, key): int(n) for key, n in zip(SERIES, counts) if n})
    return out


def response_times(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """How many requests filed in [start, end) got their first answer within each bucket."""
    # The hours are computed once per row into a materialised CTE; inline, the database
    # would recompute them for every bucket's comparison.
    hours = (select(_hours_between(session, ServiceRequest.created_at, ServiceRequest.answered_at).label("h"))
             .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end,
                    ServiceRequest.answered_at.is_not(None))
             .cte("answer_hours").prefix_with("MATERIALIZED"))
    columns, lower = [], None
    for upper, key in RESPONSE_BUCKETS:
        conds = [hours.c.h >= lower] if lower is not None else []
        if upper is not None:
            conds.append(hours.c.h < upper)
        columns.append(_sum(and_(*conds)).label(key))
        lower = upper
    row = session.execute(select(*columns).select_from(hours)).one()
    return {key: int(row[i]) for i, (_, key) in enumerate(RESPONSE_BUCKETS)}


@dataclass
class Assessed:
    """One handler's (or steward's) figures for a period, and the derived rates."""

    key: int
    name: str
    total: int = 0
    answered: int = 0
    on_time: int = 0
    overdue_open: int = 0
    resolved: int = 0
    resolved_first_time: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0
    unrated: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def timeliness(self) -> float | None:
        """On time ÷ (answered + still open past the deadline): late open items count against."""
        base = self.answered + self.overdue_open
        return self.on_time / base if base else None

    @property
    def effectiveness(self) -> float | None:
        """Resolved without ever being reopened ÷ resolved."""
        return self.resolved_first_time / self.resolved if self.resolved else None

    @property
    def rated(self) -> int:
        """Requests the resident rated."""
        return self.satisfied + self.basically_satisfied + self.unsatisfied

    @property
    def satisfaction(self) -> float | None:
        """(满意 + 基本满意) ÷ rated."""
        return (self.satisfied + self.basically_satisfied) / self.rated if self.rated else None

    @property
    def sample(self) -> int:
        """The figure the minimum sample applies to: requests that were due or done."""
        return self.answered + self.overdue_open

    def score(self, weights: dict[str, float]) -> float | None:
        """The weighted combination of the rates present (weights renormalised over them)."""
        parts = {"timeliness": self.timeliness, "effectiveness": self.effectiveness,
                 "satisfaction": self.satisfaction}
        used = {k: w for k, w in weights.items() if parts.get(k) is not None and w > 0}
        total = sum(used.values())
        if not total:
            return None
        return sum(parts[k] * w for k, w in used.items()) / total


def assessment_columns(now: datetime) -> list:
    """The aggregate columns, in Assessed's field order."""
    r = ServiceRequest
    answered = r.answered_at.is_not(None)
    return [
        func.count(),
        _sum(answered),
        _sum(and_(answered, (r.deadline_at.is_(None)) | (r.answered_at <= r.deadline_at))),
        _sum(and_(r.answered_at.is_(None), r.status.in_(OPEN_STATUSES), r.deadline_at < now)),
        _sum(r.resolved_at.is_not(None)),
        _sum(and_(r.resolved_at.is_not(None), r.reopen_count == 0)),
        _sum(r.rating == "satisfied"),
        _sum(r.rating == "basically_satisfied"),
        _sum(r.rating == "unsatisfied"),
        _sum(and_(r.resolved_at.is_not(None), r.rating.is_(None))),
    ]


FIELDS = ("total", "answered", "on_time", "overdue_open", "resolved", "resolved_first_time",
          "satisfied", "basically_satisfied", "unsatisfied", "unrated")


def assess(session: Session, group_column, start: datetime, end: datetime, now: datetime,
           where=()) -> dict[int, dict[str, int]]:
    """Per group (handler id or community id): the counts of requests filed in [start, end)."""
    stmt = (select(group_column, *assessment_columns(now))
            .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end,
                   group_column.is_not(None), *where)
            .group_by(group_column))
    return {row[0]: dict(zip(FIELDS, (int(v) for v in row[1:]))) for row in session.execute(stmt)}
