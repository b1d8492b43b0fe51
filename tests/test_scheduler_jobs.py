"""The deadline jobs under a frozen clock: reminders, escalation, holidays, restarts, double runs."""
from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from bot import orgimport
from bot.scheduler import run_named
from models import Organisation, OutboxMessage, Resident, ServiceRequest, TimelineEntry, file_request, workflow
from models.timeline import Actor

SH = ZoneInfo("Asia/Shanghai")
STEWARD = Actor("steward", 1, "王红梅")


def sh(*args) -> datetime:
    """A time in the park."""
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def park(app, sessions):
    """The example park directory (org.example.yaml): handlers with liaisons, stewards."""
    with sessions() as s, s.begin():
        orgimport.apply(s, orgimport.read(orgimport.EXAMPLE_PATH))
    return app


def routed(sessions, at: datetime, days: int, handler: str = "xhy_pm", kind: str = "help",
           text: str = "楼道灯坏了") -> int:
    """Files a request in 星湖苑 at `at` and routes it to `handler` with `days` working days."""
    with sessions() as s, s.begin():
        resident = Resident(openid=f"o-{at:%m%d%H%M}-{handler}-{days}")
        s.add(resident)
        org = s.scalar(select(Organisation).where(Organisation.code == handler))
        community = s.scalar(select(Organisation).where(Organisation.code == "xinghu"))
        req = file_request(s, kind=kind, description=text, resident_id=resident.id, created_at=at,
                           estate_id=None, community_id=community.id)
        workflow.classify(s, req, STEWARD, "market_service", "物业服务", at)
        workflow.route(s, req, STEWARD, org, days, at)
        return req.id


def scan(app, at: datetime) -> dict:
    """Runs the deadline job at a frozen local time."""
    with time_machine.travel(at, tick=False):
        return run_named(app, "deadlines")


def messages(sessions, purpose: str = "reminder") -> list[tuple[str, str]]:
    """(recipient, second field) of every queued template message of a purpose, oldest first."""
    with sessions() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "template")
                         .order_by(OutboxMessage.id)).all()
        return [(m.recipient, m.payload["data"]["thing2"]["value"]) for m in rows
                if m.payload["purpose"] == purpose]


def test_reminder_a_working_day_before_then_at_the_deadline_then_escalation(park, sessions):
    """Routed Monday with 3 days: reminded Wednesday, again Thursday at the deadline, escalated Friday."""
    req_id = routed(sessions, sh(2026, 11, 23, 10, 0), 3)  # deadline Thu 26 10:00
    assert scan(park, sh(2026, 11, 24, 10, 0))["reminded"] == 0
    assert scan(park, sh(2026, 11, 25, 9, 59))["reminded"] == 0
    assert scan(park, sh(2026, 11, 25, 10, 0)) == {"reminded": 1, "escalated": 0, "at_top": 0}
    assert messages(sessions) == [("sandbox_liaison_xhy_pm", "诉求即将到期，请尽快答复"),
                                  ("sandbox_steward_xinghu", "诉求即将到期，请尽快答复")]
    assert scan(park, sh(2026, 11, 25, 15, 0))["reminded"] == 0  # nothing twice
    assert scan(park, sh(2026, 11, 26, 10, 0))["reminded"] == 1
    assert messages(sessions)[2:] == [("sandbox_liaison_xhy_pm", "诉求已到办理期限，请尽快答复"),
                                      ("sandbox_steward_xinghu", "诉求已到办理期限，请尽快答复")]
    assert scan(park, sh(2026, 11, 27, 9, 59))["escalated"] == 0  # 24 working hours of grace
    assert scan(park, sh(2026, 11, 27, 10, 0))["escalated"] == 1
    with sessions() as s:
        req = s.get(ServiceRequest, req_id)
        assert (req.level, req.handler.code, req.status) == ("street", "hx_swc", "routed")
        entry = s.scalars(select(TimelineEntry).where(TimelineEntry.request_id == req_id)
                          .order_by(TimelineEntry.id.desc())).first()
        assert (entry.action, entry.actor_kind) == ("escalate", "system")
        assert "2026-11-26 10:00" in entry.note
        reminders = s.scalars(select(TimelineEntry).where(TimelineEntry.request_id == req_id,
                                                          TimelineEntry.action == "remind")).all()
        assert [(r.at, r.note) for r in reminders] == [
            (sh(2026, 11, 25, 10, 0), "诉求即将到期，请尽快答复"), (sh(2026, 11, 26, 10, 0), "诉求已到办理期限，请尽快答复")]
        # the new handler gets a fresh deadline of the same 3 working days: Wed 2 Dec
        assert req.deadline_at == sh(2026, 12, 2, 10, 0)
    assert messages(sessions)[4:] == [("sandbox_liaison_hx_swc", "诉求超期未答复，已升级由您办理"),
                                      ("sandbox_steward_xinghu", "诉求超期未答复，已升级由您办理")]
    assert scan(park, sh(2026, 11, 27, 16, 0)) == {"reminded": 0, "escalated": 0, "at_top": 0}
    # The escalation's links open the page for the new handler's liaison and the steward.
    with sessions() as s:
        links = [m.payload["url"] for m in s.scalars(select(OutboxMessage)
                                                      .where(OutboxMessage.kind == "template"))][4:]
        ref = s.get(ServiceRequest, req_id).ref
    client = park.test_client()
    for url in links:
        page = client.get("/" + url.split("://", 1)[1].split("/", 1)[1])
        assert page.status_code == 200 and ref in page.get_data(as_text=True)


def test_an_answered_request_is_neither_reminded_nor_escalated(park, sessions):
    """Once the handler answered, the clock stops for it."""
    req_id = routed(sessions, sh(2026, 11, 23, 10, 0), 1)
    with sessions() as s, s.begin():
        workflow.answer(s, s.get(ServiceRequest, req_id), Actor("liaison", 1, "吴刚"), "明天来修", sh(2026, 11, 23, 15))
    assert scan(park, sh(2026, 11, 26, 10, 0)) == {"reminded": 0, "escalated": 0, "at_top": 0}
    assert messages(sessions) == []


def test_national_day_week_sends_nothing_and_counts_no_days(park, sessions):
    """Deadline 2 working days from 29 Sep is 8 Oct: the Golden Week brings no reminder, no escalation."""
    routed(sessions, sh(2026, 9, 29, 10, 0), 2)  # 30 Sep, then 8 Oct
    assert scan(park, sh(2026, 9, 30, 10, 0))["reminded"] == 1  # 24 working hours before
    for day in range(1, 8):
        assert scan(park, sh(2026, 10, day, 12, 0)) == {"reminded": 0, "escalated": 0, "at_top": 0}
    assert scan(park, sh(2026, 10, 8, 10, 0))["reminded"] == 1
    assert scan(park, sh(2026, 10, 9, 9, 0))["escalated"] == 0
    assert scan(park, sh(2026, 10, 9, 10, 0))["escalated"] == 1


def test_make_up_saturday_is_a_working_day(park, sessions):
    """Friday 13 Feb 2026 + 1 working day is Saturday 14 Feb (调休); the Spring Festival follows."""
    req_id = routed(sessions, sh(2026, 2, 13, 10, 0), 1)
    with sessions() as s:
        assert s.get(ServiceRequest, req_id).deadline_at == sh(2026, 2, 14, 10, 0)
    # Routed with just one working day to go: no "soon" reminder, only the one at the deadline.
    assert scan(park, sh(2026, 2, 14, 8, 0))["reminded"] == 0
    assert scan(park, sh(2026, 2, 14, 10, 0))["reminded"] == 1
    # Sunday 15 to Monday 23 February are the Spring Festival: the grace only runs out on the 24th.
    assert scan(park, sh(2026, 2, 16, 12, 0))["escalated"] == 0
    assert scan(park, sh(2026, 2, 24, 9, 59))["escalated"] == 0
    assert scan(park, sh(2026, 2, 24, 10, 0))["escalated"] == 1


def test_top_level_overdue_reminds_the_department_once(park, sessions):
    """Overdue at the organisation department: nowhere higher to go, so it is told once per deadline."""
    routed(sessions, sh(2026, 11, 23, 10, 0), 1, handler="orgdept")
    assert scan(park, sh(2026, 11, 25, 10, 0))["at_top"] == 1
    assert scan(park, sh(2026, 11, 25, 11, 0))["at_top"] == 0
    assert ("sandbox_liaison_orgdept", "诉求已超期未答复，请督办") in messages(sessions)


def test_a_liaison_without_wechat_is_reminded_by_email(park, sessions):
    """A park department's liaison with only an e-mail address gets the reminder as an e-mail."""
    req_id = routed(sessions, sh(2026, 11, 23, 10, 0), 1, handler="dept_housing")
    scan(park, sh(2026, 11, 24, 10, 0))
    with sessions() as s:
        ref = s.get(ServiceRequest, req_id).ref
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email")).all()
    assert [(m.recipient, m.payload["subject"]) for m in mails] == [
        ("chen.zq@park.local", f"【红色管家】诉求已到办理期限，请尽快答复（编号 {ref}）")]
    body = mails[0].payload["body"]
    assert "园区规划建设委员会" in body and "/m/requests/" in body
    path = "/m/requests/" + body.split("/m/requests/", 1)[1].split()[0]
    page = park.test_client().get(path)
    assert page.status_code == 200 and ref in page.get_data(as_text=True)


def test_restart_mid_week_sends_nothing_twice(park, sessions, make_app):
    """A new process on the same database (a restart on Wednesday) repeats none of Monday's work."""
    routed(sessions, sh(2026, 11, 23, 10, 0), 2)  # deadline Wed 25 10:00
    assert scan(park, sh(2026, 11, 24, 10, 30))["reminded"] == 1
    restarted = make_app()
    assert scan(restarted, sh(2026, 11, 25, 9, 0))["reminded"] == 0
    assert scan(restarted, sh(2026, 11, 25, 10, 0))["reminded"] == 1
    assert len(messages(sessions)) == 4


def test_two_schedulers_scanning_at_once_send_each_reminder_once(park, sessions, make_app):
    """Two apps (two processes' worth of engines) run the same scans concurrently: no duplicates."""
    for n in range(6):
        routed(sessions, sh(2026, 11, 23, 9, n), 1, text=f"诉求 {n}")  # deadlines Tue 24 09:0n
    other = make_app()

    def together(at: datetime) -> list[dict]:
        """Both apps scan at the same moment; returns both results."""
        results, barrier = [], threading.Barrier(2)

        def run(app):
            """Waits for the other, then scans."""
            barrier.wait()
            results.append(run_named(app, "deadlines", now=at))

        threads = [threading.Thread(target=run, args=(a,)) for a in (park, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    assert sum(r["reminded"] for r in together(sh(2026, 11, 24, 10, 0))) == 6
    assert sum(r["escalated"] for r in together(sh(2026, 11, 25, 10, 0))) == 6
    with sessions() as s:
        keys = s.scalars(select(OutboxMessage.idempotency_key)).all()
        assert len(keys) == 24  # 6 requests × (reminder + escalation) × (liaison + steward)
        escalations = s.scalars(select(TimelineEntry).where(TimelineEntry.action == "escalate")).all()
        assert len(escalations) == 6
