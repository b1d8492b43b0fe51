"""Deadlines in working days on the Chinese calendar, and the routing rules that pick them."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from models import routing
from models.deadlines import add_working_days

SH = ZoneInfo("Asia/Shanghai")


def sh(*args):
    """A time in Asia/Shanghai."""
    return datetime(*args, tzinfo=SH)


def test_weekends_are_skipped():
    assert add_working_days(sh(2026, 11, 27, 10, 0), 1) == sh(2026, 11, 30, 10, 0)  # Fri → Mon


def test_national_day_holiday_is_skipped():
    # 2026-09-30 (Wed) + 1 working day: 1–7 October are holidays.
    assert add_working_days(sh(2026, 9, 30, 9, 0), 1).date().isoformat() == "2026-10-08"


def test_make_up_saturday_counts_as_a_working_day():
    # 2026-02-14 is a Saturday worked in exchange for the Spring Festival.
    assert add_working_days(sh(2026, 2, 13, 9, 0), 1).date().isoformat() == "2026-02-14"


def test_the_park_calendar_decides_the_day_not_utc():
    # 17:00 UTC on Friday is already Saturday 01:00 in the park: next working day is Monday.
    start = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)
    end = add_working_days(start, 1)
    assert end.tzinfo == timezone.utc and end.astimezone(SH) == sh(2026, 11, 30, 1, 0)


def test_years_beyond_the_calendar_fall_back_to_weekdays(caplog):
    with caplog.at_level(logging.WARNING, logger="models.deadlines"):
        assert add_working_days(sh(2026, 12, 31, 9, 0), 2) == sh(2027, 1, 4, 9, 0)  # Fri 1st, Mon 4th
    assert "2027" in caplog.text


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        add_working_days(datetime(2026, 11, 27, 10, 0), 1)


def test_shipped_routing_file_is_valid_and_has_deadlines():
    rules = routing.load()
    assert rules.deadline_for("government", "政策咨询") == 3
    assert rules.deadline_for("market_service", "物业服务") == 3
    # Silent for the rest: the configured days per kind (求助 3, 咨询 1, 建议 7) apply.
    assert rules.deadline_for("government", "其他") is None
    assert rules.deadline_for(None, None) is None
    assert routing.parse({"rules": [], "deadlines": {"default": 4}}).deadline_for("government", "其他") == 4


def test_routing_without_days_uses_the_configured_days_per_kind(demo, wx, sessions):
    """A 建议 routed with no days named gets the config's 7 working days, a 咨询 1."""
    from models import Organisation, ServiceRequest, file_request
    with sessions() as s:
        community = s.scalar(select(Organisation).where(Organisation.code == "xinghu"))
        refs = {}
        for kind in ("suggestion", "inquiry"):
            req = file_request(s, kind=kind, description="小区东门希望增设快递柜", community_id=community.id)
            refs[kind] = req.ref
        s.commit()
    for kind, ref in refs.items():
        wx.text("sandbox_steward_xinghu", f"分类 {ref} 民主自治类 其他")
        wx.text("sandbox_steward_xinghu", f"派 {ref} 星湖社区居委会")
    with sessions() as s:
        days = {r.kind: r.deadline_days for r in s.scalars(select(ServiceRequest))}
    assert days == {"suggestion": 7, "inquiry": 1}


@pytest.mark.parametrize("data,message", [
    ({"rules": [{"match": {"type": "misc"}, "handler": "property_company"}]}, "rule 1: unknown type"),
    ({"rules": [{"match": {"colour": "red"}, "handler": "property_company"}]}, "unknown match key"),
    ({"rules": [{"match": {}, "handler": "plumber"}]}, "unknown handler kind"),
    ({"rules": [{"match": {}, "handler": "property_company", "deadline_days": 0}]}, "deadline_days"),
    ({"rules": [], "deadlines": {"government": {"default": "soon"}}}, "deadlines.government"),
    ({"nothing": 1}, "rules"),
])
def test_routing_file_mistakes_are_named(tmp_path, data, message):
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(routing.RoutingError) as exc:
        routing.load(path)
    assert message in str(exc.value)
