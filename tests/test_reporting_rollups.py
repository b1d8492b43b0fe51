"""The daily rollups give exactly the figures counted straight from the requests, however they changed.

A generated park (bulk rows, then `rollup.rebuild`) is worked on through the state machine and by
direct edits, with varied times; afterwards the maintained rollup rows must equal a fresh
computation, and every figure of the dashboard and the assessment must equal its direct count,
for whole-day periods, periods cut in the middle of a day, and a period inside one day.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.console.bench import generate
from bot.console.dashboard import _months
from models import Organisation, ServiceRequest, file_request, reporting, rollup, utcnow
from models import workflow as wf
from models.timeline import Actor

STAFF = Actor("steward", 1, "测试红管")
RESIDENT = Actor("resident", None, "居民")


def _rollup_rows(s) -> dict:
    """The stored rollup rows without the all-zero ones (a request that moved away leaves one)."""
    t = rollup.request_rollups
    return {tuple(r[:4]): tuple(r[4:]) for r in s.execute(select(*t.c)) if any(r[4:])}


def _fresh_rows(s) -> dict:
    """The rollup rows computed now from the requests."""
    stmt = rollup.contributions(s.get_bind().dialect.name)
    return {tuple(r[:4]): tuple(r[4:]) for r in s.execute(stmt)}


def _work_on(s, rng: random.Random, now: datetime) -> None:
    """Moves a few hundred requests through varied transitions at varied times, and edits some."""
    handlers = list(s.scalars(select(Organisation).where(Organisation.kind.in_(
        ("property_company", "owners_committee", "party_organisation", "park_department")))))
    reqs = list(s.scalars(select(ServiceRequest).order_by(ServiceRequest.id)))
    template = reqs[-1]
    # New requests filed around park midnights, one microsecond either side included.
    for midnight in _midnights(now):
        for offset in (timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1), timedelta(hours=3)):
            reqs.append(file_request(s, kind="help", description="午夜前后", estate_id=template.estate_id,
                                     community_id=template.community_id, created_at=midnight + offset))
    s.flush()
    for req in rng.sample(reqs, 300):
        at = min(now, req.created_at + timedelta(hours=rng.uniform(0.5, 400)))
        try:
            if req.status in ("submitted", "accepted"):
                wf.classify(s, req, STAFF, rng.choice(("government", "market_service")), "物业服务", at)
                if rng.random() < 0.7:
                    wf.route(s, req, STAFF, rng.choice(handlers), rng.choice((1, 5)), at)
            elif req.status in ("routed", "answered", "reopened"):
                action = rng.choice(("answer", "resolve", "transfer", "escalate", "close"))
                if action == "answer":
                    wf.answer(s, req, STAFF, "已联系", at)
                elif action == "resolve":
                    wf.resolve(s, req, STAFF, "已处理", at)
                elif action == "transfer":
                    wf.transfer(s, req, STAFF, rng.choice([h for h in handlers if h.id != req.handler_id]), at)
                elif action == "escalate":
                    wf.escalate(s, req, STAFF, "久拖未决", at)
                else:
                    wf.close(s, req, STAFF, "duplicate", at, "重复")
            elif req.status == "resolved":
                wf.rate(s, req, RESIDENT, rng.choice(("satisfied", "basically_satisfied", "unsatisfied")), at)
            elif req.status in ("closed", "rated"):
                # Edits made outside the state machine count too.
                req.type = rng.choice(("public_welfare", None))
                req.created_at = req.created_at - timedelta(days=rng.randrange(0, 60))
        except wf.WorkflowError as exc:
            assert exc.code == "top_level"
        if rng.random() < 0.2:
            s.flush()  # several flushes in one transaction, as a multi-step command makes
    s.delete(reqs[0])  # generated rows have no timeline: one can go


def _midnights(now: datetime) -> list[datetime]:
    """Some park midnights of the past two years."""
    today = rollup.day_start(rollup.park_day(now))
    return [today - timedelta(days=n) for n in (1, 40, 200, 380)]


def _periods(now: datetime) -> list[tuple[datetime, datetime]]:
    """Whole park days, a year, periods cut mid-day at either end, a few hours of one day, and
    periods that begin or end at the midnights where requests were filed a microsecond apart."""
    today = rollup.day_start(rollup.park_day(now))
    edges = [p for m in _midnights(now) for p in ((m - timedelta(days=5), m), (m, m + timedelta(days=3)))]
    return [(today - timedelta(days=365), today + timedelta(days=1)),
            (today - timedelta(days=800), today + timedelta(days=30)),
            (now - timedelta(days=100, hours=5, microseconds=7), now - timedelta(days=3, hours=1)),
            (now - timedelta(days=40, hours=9), now - timedelta(days=40, hours=2)),
            (today - timedelta(days=40), today - timedelta(days=40)), *edges]


def _assert_figures_match(s, now: datetime) -> None:
    """Every rollup-backed figure equals the same figure counted directly."""
    assert reporting.headline(s, now) == reporting.direct_headline(s, now)
    for start, end in _periods(now):
        assert reporting.by_community_and_type(s, start, end) == reporting.direct_by_community_and_type(s, start, end)
        assert reporting.response_times(s, start, end) == reporting.direct_response_times(s, start, end)
        months = _months(start, end)
        assert reporting.by_month_and_type(s, months) == reporting.direct_by_month_and_type(s, months)
        for column in (ServiceRequest.handler_id, ServiceRequest.community_id):
            assert reporting.assess(s, column, start, end, now) == reporting.direct_assess(s, column, start, end, now)


def test_rollups_equal_the_direct_figures_after_varied_changes(app, sessions):
    generate(app, 3000)
    now = utcnow()
    with sessions() as s:
        assert _rollup_rows(s) == _fresh_rows(s)  # the rebuild after the bulk rows
        _assert_figures_match(s, now)
        before = reporting.headline(s, now)
        _work_on(s, random.Random(7), now)
        s.commit()
    with sessions() as s:
        assert _rollup_rows(s) == _fresh_rows(s)
        after = reporting.headline(s, now)
        assert after["requests"] == before["requests"] + 16 - 1 and after["closed"] != before["closed"]
        _assert_figures_match(s, now)
        # The clock moves on: more requests are past their deadlines, with nothing written.
        later = now + timedelta(days=12)
        assert reporting.headline(s, later)["overdue"] > after["overdue"]
        _assert_figures_match(s, later)
        assert rollup.rebuild(s) == len(_fresh_rows(s))
        s.commit()
        assert _rollup_rows(s) == _fresh_rows(s)


@pytest.mark.parametrize("how", ["rollback", "savepoint"])
def test_rolled_back_changes_leave_the_rollups_as_they_were(park_only, sessions, how):
    now = utcnow()
    with sessions() as s:
        stored = _rollup_rows(s)
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.status == "routed").order_by(ServiceRequest.id))
        if how == "savepoint":
            with pytest.raises(RuntimeError), s.begin_nested():
                wf.close(s, req, STAFF, "withdrawn", now, "居民撤回")
                s.flush()
                raise RuntimeError("abandoned")
            file_request(s, kind="help", description="保留的一件", estate_id=req.estate_id,
                         community_id=req.community_id)
            s.commit()
            assert _rollup_rows(s) == _fresh_rows(s) != stored
        else:
            wf.close(s, req, STAFF, "withdrawn", now, "居民撤回")
            s.flush()
            assert _rollup_rows(s) != stored
            s.rollback()
            assert _rollup_rows(s) == stored == _fresh_rows(s)


def test_rebuild_command_restores_rollups_that_rows_written_past_the_orm_left_behind(park_only, sessions):
    with sessions() as s:
        stored = _rollup_rows(s)
        s.execute(update(ServiceRequest).values(type="public_welfare"))  # a bulk UPDATE: no flush
        s.commit()
        assert _rollup_rows(s) == stored != _fresh_rows(s)
    result = park_only.test_cli_runner().invoke(args=["reports", "rebuild"])
    assert result.exit_code == 0 and "rollup rows rebuilt" in result.output
    with sessions() as s:
        assert _rollup_rows(s) == _fresh_rows(s) != stored


@pytest.fixture
def park_only(app):
    """A small generated park."""
    generate(app, 200)
    return app
