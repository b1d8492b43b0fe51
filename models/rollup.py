"""Daily rollups of requests: counts per (park day filed, community, handler, type), kept exact.

The dashboard and the assessment sum these rows instead of scanning hundreds of thousands of
requests. Every count is a property of a request's current state (never of the clock), so a
request adds 1 to each count it meets in the row of its key. The rows are maintained in the
same transaction as any change made through a Session: before a flush the contributions of
the requests about to change are read from the database, after it they are read again, and
the difference is added to the rows (an upsert of increments, so concurrent writers queue on
the row instead of overwriting each other). Writes that bypass the ORM (bulk INSERTs of a
generated park) call `rebuild`, which recomputes the whole table from the requests.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import (Column, Date, Integer, String, Table, and_, case, cast, delete, event, func, inspect, select,
                        text, type_coerce)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .base import Base
from .request import OPEN_STATUSES, ServiceRequest

# The park's calendar day (China, no daylight saving): periods on the console start at its midnight.
PARK_TZ = timezone(timedelta(hours=8))
# Response-time buckets in hours: (upper bound, key); the last one is open-ended.
RESPONSE_BUCKETS = ((1, "lt1h"), (4, "lt4h"), (24, "lt1d"), (72, "lt3d"), (168, "lt7d"), (None, "ge7d"))
KEY = ("day", "community_id", "handler_id", "type")
COUNTS = ("total", "closed", "open", "open_unanswered", "answered", "on_time", "resolved",
          "resolved_first_time", "satisfied", "basically_satisfied", "unsatisfied", "unrated",
          *(key for _, key in RESPONSE_BUCKETS))

# No community, handler or type yet is stored as 0 / '' so that the key can be a primary key.
request_rollups = Table(
    "request_rollups", Base.metadata,
    Column("day", Date, primary_key=True),
    Column("community_id", Integer, primary_key=True),
    Column("handler_id", Integer, primary_key=True),
    Column("type", String(32), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNTS),
)


def park_day(moment: datetime) -> date:
    """The park's calendar day of an aware moment."""
    return moment.astimezone(PARK_TZ).date()


def day_start(day: date) -> datetime:
    """The moment the park's day begins."""
    return datetime.combine(day, time(), PARK_TZ)


def hours_between(dialect: str, start, end):
    """SQL for the hours from start to end, on SQLite or PostgreSQL."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def conditions(dialect: str) -> dict:
    """What each count counts, as a condition on a request's current state."""
    r = ServiceRequest
    answered, resolved = r.answered_at.is_not(None), r.resolved_at.is_not(None)
    is_open = r.status.in_(OPEN_STATUSES)
    out = {
        "total": None, "closed": r.status == "closed", "open": is_open,
        "open_unanswered": and_(r.answered_at.is_(None), is_open), "answered": answered,
        "on_time": and_(answered, (r.deadline_at.is_(None)) | (r.answered_at <= r.deadline_at)),
        "resolved": resolved, "resolved_first_time": and_(resolved, r.reopen_count == 0),
        "satisfied": r.rating == "satisfied", "basically_satisfied": r.rating == "basically_satisfied",
        "unsatisfied": r.rating == "unsatisfied", "unrated": and_(resolved, r.rating.is_(None)),
    }
    hours, lower = hours_between(dialect, r.created_at, r.answered_at), None
    for upper, key in RESPONSE_BUCKETS:
        bounds = [hours >= lower] if lower is not None else []
        if upper is not None:
            bounds.append(hours < upper)
        out[key] = and_(answered, *bounds)
        lower = upper
    return out


def count_of(condition):
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END), 0 when there are no rows; COUNT(*) for None."""
    if condition is None:
        return func.count()
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _key_columns(dialect: str) -> list:
    """The rollup key of a request: its park day filed, community, handler and type."""
    r = ServiceRequest
    if dialect == "postgresql":
        day = cast(func.timezone("UTC", r.created_at) + timedelta(hours=8), Date)
    else:
        # Whole seconds first: date() rounds to milliseconds, which would move a request filed
        # in the last half millisecond before midnight into the next day.
        day = type_coerce(func.date(func.substr(r.created_at, 1, 19), "+8 hours"), Date)
    return [day, func.coalesce(r.community_id, 0), func.coalesce(r.handler_id, 0), func.coalesce(r.type, "")]


def contributions(dialect: str, where=None):
    """SELECT of the rollup rows that the requests matching `where` (all when None) add up to."""
    keys = _key_columns(dialect)
    conds = conditions(dialect)
    stmt = select(*(k.label(name) for k, name in zip(keys, KEY)),
                  *(count_of(conds[name]).label(name) for name in COUNTS))
    if where is not None:
        stmt = stmt.where(where)
    return stmt.group_by(*keys)


def _read(session: Session, ids: list[int]) -> dict[tuple, list[int]]:
    """{key: counts} the given requests add to the rollup as the database holds them now."""
    if not ids:
        return {}
    stmt = contributions(session.get_bind().dialect.name, ServiceRequest.id.in_(ids))
    return {tuple(row[:4]): list(row[4:]) for row in session.connection().execute(stmt)}


def add(session: Session, deltas: dict[tuple, list[int]]) -> None:
    """Adds counts to the rollup rows of their keys, creating rows as needed, in key order."""
    rows = [dict(zip(KEY + COUNTS, (*key, *counts))) for key, counts in sorted(deltas.items())
            if any(counts)]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(request_rollups).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY), set_={name: request_rollups.c[name] + stmt.excluded[name] for name in COUNTS})
    session.connection().execute(stmt)


_PENDING = "redsteward.rollup_before"


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context, _instances) -> None:
    """Reads what the requests about to change or go contribute now, before the flush writes them."""
    ids = [inspect(o).identity[0] for o in (*session.dirty, *session.deleted)
           if isinstance(o, ServiceRequest) and inspect(o).identity is not None
           and (o in session.deleted or session.is_modified(o))]
    added = [o for o in session.new if isinstance(o, ServiceRequest)]
    if not ids and not added:
        session.info.pop(_PENDING, None)
        return
    session.info[_PENDING] = (ids, added, _read(session, ids))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    """Adds the difference between what those requests contribute now and before to the rollup."""
    pending = session.info.pop(_PENDING, None)
    if pending is None:
        return
    ids, added, before = pending
    after = _read(session, ids + [o.id for o in added if o.id is not None])
    deltas: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(COUNTS))
    for sign, part in ((1, after), (-1, before)):
        for key, counts in part.items():
            deltas[key] = [d + sign * c for d, c in zip(deltas[key], counts)]
    add(session, deltas)


def rebuild(session: Session) -> int:
    """Recomputes every rollup row from the requests (caller commits); returns the rows written."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Writers add to rows in their own transactions: they wait until the new rows are in.
        session.execute(text("LOCK TABLE request_rollups IN EXCLUSIVE MODE"))
    session.execute(delete(request_rollups))
    session.execute(request_rollups.insert().from_select(list(KEY + COUNTS), contributions(dialect)))
    return session.scalar(select(func.count()).select_from(request_rollups)) or 0
