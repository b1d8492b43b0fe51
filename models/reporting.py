"""Aggregate queries behind the console's dashboard, assessment and inbox counts, and their indexes.

The figures of a period come from the daily rollups (`models.rollup`) for its whole park days,
and straight from the requests for the part-days at its edges and for what depends on the clock
(past the deadline or not yet). The `direct_*` functions compute the same figures from the
requests alone: they serve the part-days, and prove the rollups in the tests. Their indexes
below hold every column they touch (covering) and lead with the column they range on.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Index, and_, func, literal, select, union_all
from sqlalchemy.orm import Session

from .request import OPEN_STATUSES, TYPES, ServiceRequest
from .rollup import RESPONSE_BUCKETS, conditions, count_of, day_start, park_day, request_rollups
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


SERIES = (*TYPES, None)
_t = request_rollups.c


def _type_columns():
    """One count per request type, and one for requests not yet classified."""
    return [count_of(ServiceRequest.type == t) for t in TYPES] + [count_of(ServiceRequest.type.is_(None))]


def _dialect(session: Session) -> str:
    """The database's dialect name: sqlite or postgresql."""
    return session.get_bind().dialect.name


def _split(start: datetime, end: datetime) -> tuple[list[tuple[datetime, datetime]], tuple[date, date] | None]:
    """[start, end) as its part-day edges (read live) and the whole park days between them [first, last)."""
    first, last = park_day(start), park_day(end)
    if day_start(first) < start:
        first = date.fromordinal(first.toordinal() + 1)
    if first >= last:
        return ([(start, end)] if start < end else []), None
    edges = [(a, b) for a, b in ((start, day_start(first)), (day_start(last), end)) if a < b]
    return edges, (first, last)


def _in_days(days: tuple[date, date]):
    """The rollup rows of days [first, last)."""
    return and_(_t.day >= days[0], _t.day < days[1])


def _not_yet_due(session: Session, now: datetime) -> list:
    """Open requests that are not past a deadline (none yet, or still ahead): few, found by index.

    Everything else open is overdue, so the rollups' open counts minus these are the overdue counts.
    """
    r = ServiceRequest
    columns = (r.created_at, r.handler_id, r.community_id, r.answered_at)
    return list(session.execute(
        union_all(select(*columns).where(r.status.in_(OPEN_STATUSES), r.deadline_at >= now),
                  select(*columns).where(r.status.in_(OPEN_STATUSES), r.deadline_at.is_(None)))))


def headline(session: Session, now: datetime) -> dict[str, int]:
    """The programme's figures: residents, verified, Party members, volunteers, requests, overdue."""
    figures = _people(session)
    total, closed, open_ = session.execute(
        select(*(func.coalesce(func.sum(_t[name]), 0) for name in ("total", "closed", "open")))).one()
    figures.update(requests=int(total), closed=int(closed), overdue=int(open_) - len(_not_yet_due(session, now)))
    return figures


def _people(session: Session) -> dict[str, int]:
    """Residents, verified residents, Party members and approved volunteers, counted on indexes."""
    count = func.count()
    figures = {
        "residents": select(count).select_from(Resident),
        "verified": select(count).select_from(Resident).where(Resident.verified_at.is_not(None)),
        "party_members": select(count).select_from(Resident).where(Resident.party_member == "confirmed"),
        "volunteers": select(count).select_from(Volunteer).where(Volunteer.status == "approved"),
    }
    return {name: session.scalar(stmt) or 0 for name, stmt in figures.items()}


def by_month_and_type(session: Session, months: list[tuple[str, datetime, datetime]]) -> dict:
    """{(month label, type): count} of requests filed in each [start, end) month."""
    out: Counter = Counter()
    label_of, edges = {}, []
    for label, start, end in months:
        month_edges, days = _split(start, end)
        edges += [(label, a, b) for a, b in month_edges]
        if days:
            label_of.update({date.fromordinal(d): label for d in range(days[0].toordinal(), days[1].toordinal())})
    if label_of:
        rows = session.execute(select(_t.day, _t.type, func.sum(_t.total))
                               .where(_t.day >= min(label_of), _t.day <= max(label_of)).group_by(_t.day, _t.type))
        for day, type_, n in rows:
            if day in label_of:
                out[(label_of[day], type_ or None)] += int(n)
    out.update(direct_by_month_and_type(session, edges))
    return {key: n for key, n in out.items() if n}


def by_community_and_type(session: Session, start: datetime, end: datetime) -> dict:
    """{(community id, type): count} of requests filed in [start, end)."""
    edges, days = _split(start, end)
    out: Counter = Counter()
    if days:
        rows = session.execute(select(_t.community_id, _t.type, func.sum(_t.total))
                               .where(_in_days(days), _t.community_id != 0).group_by(_t.community_id, _t.type))
        out.update({(cid, type_ or None): int(n) for cid, type_, n in rows})
    for a, b in edges:
        out.update(direct_by_community_and_type(session, a, b))
    return {key: n for key, n in out.items() if n}


def response_times(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """How many requests filed in [start, end) got their first answer within each bucket."""
    edges, days = _split(start, end)
    out: Counter = Counter({key: 0 for _, key in RESPONSE_BUCKETS})
    if days:
        row = session.execute(select(*(func.coalesce(func.sum(_t[key]), 0) for _, key in RESPONSE_BUCKETS))
                              .where(_in_days(days))).one()
        out.update({key: int(n) for (_, key), n in zip(RESPONSE_BUCKETS, row)})
    for a, b in edges:
        out.update(direct_response_times(session, a, b))
    return {key: out[key] for _, key in RESPONSE_BUCKETS}


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


FIELDS = ("total", "answered", "on_time", "overdue_open", "resolved", "resolved_first_time",
          "satisfied", "basically_satisfied", "unsatisfied", "unrated")


def assess(session: Session, group_column, start: datetime, end: datetime, now: datetime,
           where=()) -> dict[int, dict[str, int]]:
    """Per group (handler id or community id): the counts of requests filed in [start, end)."""
    if where:
        return direct_assess(session, group_column, start, end, now, where)
    edges, days = _split(start, end)
    out: dict[int, Counter] = {}
    if days:
        group = _t[group_column.key]
        names = [("open_unanswered" if name == "overdue_open" else name) for name in FIELDS]
        stmt = (select(group, *(func.sum(_t[name]) for name in names)).where(_in_days(days), group != 0)
                .group_by(group).having(func.sum(_t.total) > 0))
        out = {row[0]: Counter(dict(zip(FIELDS, (int(v) for v in row[1:])))) for row in session.execute(stmt)}
        body_start, body_end = day_start(days[0]), day_start(days[1])
        for row in _not_yet_due(session, now):
            key = getattr(row, group_column.key)
            if row.answered_at is None and key in out and body_start <= row.created_at < body_end:
                out[key]["overdue_open"] -= 1
    for a, b in edges:
        for key, counts in direct_assess(session, group_column, a, b, now).items():
            out.setdefault(key, Counter()).update(counts)
    return {key: {name: counts[name] for name in FIELDS} for key, counts in out.items()}


# Straight from the requests: the part-days at a period's edges, and the proof of the rollups.

def direct_headline(session: Session, now: datetime) -> dict[str, int]:
    """The headline figures counted over the requests themselves."""
    count = func.count()
    figures = _people(session)
    figures.update({name: session.scalar(stmt) or 0 for name, stmt in {
        "requests": select(count).select_from(ServiceRequest),
        "closed": select(count).select_from(ServiceRequest).where(ServiceRequest.status == "closed"),
        "overdue": select(count).select_from(ServiceRequest).where(
            ServiceRequest.status.in_(OPEN_STATUSES), ServiceRequest.deadline_at < now),
    }.items()})
    return figures


def direct_by_month_and_type(session: Session, months: list[tuple[str, datetime, datetime]]) -> dict:
    """{(month label, type): count} of requests filed in each [start, end), one statement."""
    if not months:
        return {}
    parts = [select(literal(label).label("month"), *_type_columns())
             .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end)
             for label, start, end in months]
    out: Counter = Counter()
    for label, *counts in session.execute(union_all(*parts)):
        out.update({(label, key): int(n) for key, n in zip(SERIES, counts) if n})
    return dict(out)


def direct_by_community_and_type(session: Session, start: datetime, end: datetime) -> dict:
    """{(community id, type): count} of requests filed in [start, end)."""
    stmt = (select(ServiceRequest.community_id, *_type_columns())
            .where(ServiceRequest.community_id.is_not(None),
                   ServiceRequest.created_at >= start, ServiceRequest.created_at < end)
            .group_by(ServiceRequest.community_id))
    out = {}
    for community_id, *counts in session.execute(stmt):
        out.update({(community_id, key): int(n) for key, n in zip(SERIES, counts) if n})
    return out


def direct_response_times(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """How many requests filed in [start, end) got their first answer within each bucket."""
    conds = conditions(_dialect(session))
    row = session.execute(select(*(count_of(conds[key]) for _, key in RESPONSE_BUCKETS))
                          .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end)).one()
    return {key: int(n) for (_, key), n in zip(RESPONSE_BUCKETS, row)}


def assessment_columns(dialect: str, now: datetime) -> list:
    """The aggregate columns, in FIELDS order."""
    r = ServiceRequest
    conds = dict(conditions(dialect),
                 overdue_open=and_(r.answered_at.is_(None), r.status.in_(OPEN_STATUSES), r.deadline_at < now))
    return [count_of(conds[name]) for name in FIELDS]


def direct_assess(session: Session, group_column, start: datetime, end: datetime, now: datetime,
                  where=()) -> dict[int, dict[str, int]]:
    """Per group (handler id or community id): the counts of requests filed in [start, end)."""
    stmt = (select(group_column, *assessment_columns(_dialect(session), now))
            .where(ServiceRequest.created_at >= start, ServiceRequest.created_at < end,
                   group_column.is_not(None), *where)
            .group_by(group_column))
    return {row[0]: dict(zip(FIELDS, (int(v) for v in row[1:]))) for row in session.execute(stmt)}
