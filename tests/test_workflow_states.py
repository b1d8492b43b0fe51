"""The request state machine: each transition, its timeline entry, and the refusals."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from models import Estate, Organisation, Resident, file_request
from models import workflow as wf
from models.timeline import timeline_of

STEWARD = wf.Actor("steward", 1, "星湖社区 红管负责人")
LIAISON = wf.Actor("liaison", 7, "星湖苑物业服务中心")
RESIDENT = wf.Actor("resident", None, "居民")
# A Wednesday in an ordinary working week (2026-11-25, Asia/Shanghai afternoon).
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def s(demo, sessions):
    """A session on the demo park."""
    with sessions() as session:
        yield session


def org(s, code):
    """An organisation by code."""
    return s.scalar(select(Organisation).where(Organisation.code == code))


def new_request(s, estate="xhy"):
    """A request filed by a resident of an estate."""
    e = s.scalar(select(Estate).where(Estate.code == estate))
    r = Resident(openid=f"o_{estate}_{datetime.now().timestamp()}")
    s.add(r)
    s.flush()
    return file_request(s, kind="help", description="楼道灯坏了三天", resident_id=r.id, estate_id=e.id,
                        community_id=e.community_id, created_at=NOW)


def test_happy_path_walks_every_state_and_writes_the_timeline(s):
    req = new_request(s)
    assert req.status == "submitted" and len(req.ref) == 8
    wf.classify(s, req, STEWARD, "market_service", "物业服务", NOW)
    assert (req.status, req.type, req.category) == ("accepted", "market_service", "物业服务")
    wf.route(s, req, STEWARD, org(s, "xhy_pm"), 3, NOW)
    assert req.status == "routed" and req.handler.code == "xhy_pm"
    # Three working days after Wednesday is Monday, same time of day.
    assert req.deadline_at == NOW + timedelta(days=5)
    wf.answer(s, req, LIAISON, "明天上午派电工上门", NOW + timedelta(hours=1))
    assert req.status == "answered" and req.answer == "明天上午派电工上门"
    wf.resolve(s, req, LIAISON, "灯已换好", NOW + timedelta(days=1))
    assert req.status == "resolved" and req.resolved_at is not None and req.closed_at is None
    assert wf.rate(s, req, RESIDENT, "satisfied", NOW + timedelta(days=2), "谢谢") == "closed"
    assert req.status == "closed" and req.rating == "satisfied" and req.close_reason == "rated"
    s.flush()
    entries = timeline_of(s, req.id)
    assert [(e.action, e.from_status, e.to_status) for e in entries] == [
        ("submit", None, "submitted"), ("classify", "submitted", "accepted"),
        ("route", "accepted", "routed"), ("answer", "routed", "answered"),
        ("resolve", "answered", "resolved"), ("rate", "resolved", "rated"), ("close", "rated", "closed")]
    assert entries[3].actor_kind == "liaison" and entries[3].note == "明天上午派电工上门"
    assert entries[5].note == "谢谢"


def test_routing_before_classifying_is_refused_with_a_reason(s):
    req = new_request(s)
    with pytest.raises(wf.WorkflowError) as exc:
        wf.route(s, req, STEWARD, org(s, "xhy_pm"), 3, NOW)
    assert exc.value.code == "not_classified"
    assert req.status == "submitted" and req.handler_id is None


@pytest.mark.parametrize("action,args", [
    ("answer", ("好的",)), ("resolve", ("好了",)), ("rate", ("satisfied",)), ("reopen", ()),
    ("transfer", ()),
])
def test_actions_on_a_fresh_request_are_refused(s, action, args):
    req = new_request(s)
    if action == "transfer":
        call = lambda: wf.transfer(s, req, STEWARD, org(s, "xhy_oc"), NOW)  # noqa: E731
    elif action == "reopen":
        call = lambda: wf.reopen(s, req, STEWARD, NOW)  # noqa: E731
    else:
        call = lambda: getattr(wf, action)(s, req, STEWARD, *args, NOW)  # noqa: E731
    with pytest.raises(wf.WorkflowError) as exc:
        call()
    assert exc.value.code == "bad_status" and exc.value.params["status"] == "submitted"
    assert req.status == "submitted"


def test_unknown_type_and_missing_category_are_refused(s):
    req = new_request(s)
    with pytest.raises(wf.WorkflowError) as exc:
        wf.classify(s, req, STEWARD, "misc", "物业服务", NOW)
    assert exc.value.code == "bad_type"
    with pytest.raises(wf.WorkflowError) as exc:
        wf.classify(s, req, STEWARD, "government", "  ", NOW)
    assert exc.value.code == "category_missing"


def routed(s, estate="xhy"):
    """A request classified and routed to the estate's property company."""
    req = new_request(s, estate)
    wf.classify(s, req, STEWARD, "market_service", "物业服务", NOW)
    wf.route(s, req, STEWARD, org(s, f"{estate}_pm"), 3, NOW)
    return req


def test_unsatisfied_reopens_once_then_escalates_to_the_street(s):
    req = routed(s)
    wf.resolve(s, req, LIAISON, "已处理", NOW)
    assert wf.rate(s, req, RESIDENT, "unsatisfied", NOW, "还是不亮") == "reopened"
    assert req.status == "reopened" and req.handler.code == "xhy_pm" and req.resolved_at is None
    assert req.reopen_count == 1 and req.unsatisfied_count == 1
    wf.resolve(s, req, LIAISON, "再次处理", NOW)
    assert wf.rate(s, req, RESIDENT, "unsatisfied", NOW) == "escalated"
    assert req.status == "routed" and req.level == "street" and req.handler.code == "hx_swc"
    s.flush()
    actions = [e.action for e in timeline_of(s, req.id)]
    assert actions[-3:] == ["rate", "reopen", "escalate"]


def test_escalation_climbs_to_the_organisation_department_then_stops(s):
    req = routed(s)
    wf.escalate(s, req, STEWARD, "物业拖延", NOW)
    assert (req.level, req.handler.code) == ("street", "hx_swc")
    wf.escalate(s, req, wf.Actor("liaison", 2, "湖西社工委"), "涉及多个部门", NOW)
    assert (req.level, req.handler.code) == ("organisation_department", "orgdept")
    with pytest.raises(wf.WorkflowError) as exc:
        wf.escalate(s, req, STEWARD, "再升", NOW)
    assert exc.value.code == "top_level"
    s.flush()
    entry = [e for e in timeline_of(s, req.id) if e.action == "escalate"][0]
    assert entry.note == "物业拖延" and entry.data["from"] == "xhy_pm"


def test_escalation_needs_a_reason(s):
    req = routed(s)
    with pytest.raises(wf.WorkflowError) as exc:
        wf.escalate(s, req, STEWARD, " ", NOW)
    assert exc.value.code == "reason_missing" and req.level == "community"


def test_transfer_changes_handler_and_deadline(s):
    req = routed(s)
    wf.transfer(s, req, STEWARD, org(s, "xhy_oc"), NOW + timedelta(days=1), "需业委会表决", 7)
    assert req.handler.code == "xhy_oc" and req.status == "routed" and req.deadline_days == 7
    with pytest.raises(wf.WorkflowError) as exc:
        wf.transfer(s, req, STEWARD, org(s, "xhy_oc"), NOW)
    assert exc.value.code == "same_handler"


def test_closing_an_open_request_needs_a_reason_shown_to_the_resident(s):
    req = routed(s)
    with pytest.raises(wf.WorkflowError) as exc:
        wf.close(s, req, STEWARD, "rated", NOW)
    assert exc.value.code == "still_open"
    with pytest.raises(wf.WorkflowError) as exc:
        wf.close(s, req, STEWARD, "duplicate", NOW, "")
    assert exc.value.code == "reason_missing"
    wf.close(s, req, STEWARD, "duplicate", NOW, "与编号12345678为同一事项")
    assert req.status == "closed" and req.resolved_at is None  # closed, not resolved
    assert req.close_note == "与编号12345678为同一事项"
    with pytest.raises(wf.WorkflowError):
        wf.answer(s, req, LIAISON, "好的", NOW)


def test_find_by_ref_ignores_spaces_and_dashes(s):
    req = new_request(s)
    spaced = f"{req.ref[:4]}-{req.ref[4:]} "
    assert wf.find_by_ref(s, spaced) is req
    assert wf.find_by_ref(s, "abc") is None
