"""The daily jobs under a frozen clock: stewards' summaries and the satisfaction follow-up."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.scheduler import run_named
from models import Estate, OutboxMessage, Resident, ServiceRequest, file_request, workflow
from models.timeline import Actor

from .test_scheduler_jobs import park, sh  # noqa: F401  (the example park fixture, local times)

STEWARD = Actor("steward", 1, "王红梅")
LIAISON = Actor("liaison", 1, "吴刚")
RESIDENT = Actor("resident", 1, "居民")


def request_at(sessions, at: datetime, estate: str = "xhy", route: bool = True,
               resolve_at: datetime | None = None, openid: str | None = None) -> int:
    """A request filed (and routed for 3 working days, and resolved) at the given times."""
    with sessions() as s, s.begin():
        resident = Resident(openid=openid or f"o-{at:%m%d%H%M}-{estate}")
        s.add(resident)
        est = s.scalar(select(Estate).where(Estate.code == estate))
        req = file_request(s, kind="help", description="水管漏水", resident_id=resident.id, created_at=at,
                           estate_id=est.id, community_id=est.community_id)
        if route:
            workflow.classify(s, req, STEWARD, "market_service", "物业服务", at)
            workflow.route(s, req, STEWARD, est.property_company, 3, at)
        if resolve_at:
            workflow.resolve(s, req, LIAISON, "已修好", resolve_at)
        return req.id


def templates_to(sessions, openid: str) -> list[str]:
    """The second field of every template message queued for one openid."""
    with sessions() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.recipient == openid)
                         .order_by(OutboxMessage.id)).all()
        return [m.payload["data"]["thing2"]["value"] for m in rows]


def test_each_steward_gets_one_summary_a_day_of_their_own_community(park, sessions):
    """星湖 has two new, one overdue, one awaiting a rating; 翰林 has nothing and hears nothing."""
    request_at(sessions, sh(2026, 11, 16, 9), route=True)                       # overdue since the 19th
    request_at(sessions, sh(2026, 11, 18, 9), resolve_at=sh(2026, 11, 20, 9))   # awaiting a rating
    request_at(sessions, sh(2026, 11, 25, 10), route=False)                     # new
    request_at(sessions, sh(2026, 11, 26, 7), route=False)                      # new
    assert run_named(park, "daily_summary", now=sh(2026, 11, 26, 8, 30)) == {"stewards": 1}
    assert templates_to(sessions, "sandbox_steward_xinghu") == ["新诉求2件·超期1件·待评价1件"]
    assert templates_to(sessions, "sandbox_steward_hanlin") == []
    # A second run that day (a restart, a catch-up) sends nothing more; the next day is a new summary.
    assert run_named(park, "daily_summary", now=sh(2026, 11, 26, 11, 0)) == {"stewards": 0}
    assert run_named(park, "daily_summary", now=sh(2026, 11, 27, 8, 30)) == {"stewards": 1}
    assert templates_to(sessions, "sandbox_steward_xinghu")[1] == "新诉求0件·超期1件·待评价1件"


def test_unrated_requests_are_asked_twice_then_close_as_unrated(park, sessions):
    """3 days after 办结 the resident is asked, 3 days later once more, 3 days later it closes unrated."""
    req_id = request_at(sessions, sh(2026, 11, 20, 9), resolve_at=sh(2026, 11, 23, 10), openid="o-wang")
    rated_id = request_at(sessions, sh(2026, 11, 20, 9), resolve_at=sh(2026, 11, 23, 10), openid="o-li")
    with sessions() as s, s.begin():
        workflow.rate(s, s.get(ServiceRequest, rated_id), RESIDENT, "satisfied", sh(2026, 11, 24, 8))

    def run(*when):
        """The follow-up job at a local time."""
        return run_named(park, "follow_up", now=sh(*when))

    assert run(2026, 11, 26, 9, 59) == {"asked": 0, "asked_again": 0, "closed_unrated": 0}
    assert run(2026, 11, 26, 10, 0) == {"asked": 1, "asked_again": 0, "closed_unrated": 0}
    assert run(2026, 11, 27, 10, 0) == {"asked": 0, "asked_again": 0, "closed_unrated": 0}
    assert run(2026, 11, 29, 10, 0) == {"asked": 0, "asked_again": 1, "closed_unrated": 0}
    assert templates_to(sessions, "o-wang") == ["诉求已办结，请您评价", "再次邀请您评价办理结果"]
    assert templates_to(sessions, "o-li") == []
    assert run(2026, 12, 2, 10, 0) == {"asked": 0, "asked_again": 0, "closed_unrated": 1}
    with sessions() as s:
        req = s.get(ServiceRequest, req_id)
        assert (req.status, req.close_reason, req.rating) == ("closed", "no_rating", None)
    assert run(2026, 12, 9, 10, 0) == {"asked": 0, "asked_again": 0, "closed_unrated": 0}
    assert len(templates_to(sessions, "o-wang")) == 2


def test_a_scheduler_down_for_a_week_catches_up_one_step_at_a_time(park, sessions):
    """Back after nine days, the resident gets the first request to rate, not all three steps at once."""
    req_id = request_at(sessions, sh(2026, 11, 20, 9), resolve_at=sh(2026, 11, 23, 10), openid="o-zhao")
    assert run_named(park, "follow_up", now=sh(2026, 12, 2, 10)) == {"asked": 1, "asked_again": 0,
                                                                     "closed_unrated": 0}
    with sessions() as s:
        assert s.get(ServiceRequest, req_id).status == "resolved"
