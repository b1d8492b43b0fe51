"""The Friday 民意诉求承办单, opened as a person would: the e-mail in a browser, the Excel in openpyxl."""
from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from openpyxl import load_workbook
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from bot import orgimport, outbox
from bot.scheduler import run_named
from models import Estate, JobRun, OutboxMessage, Resident, ServiceRequest, file_request, workflow
from models.timeline import SYSTEM, Actor

from .test_scheduler import mailbox  # noqa: F401  (the loopback SMTP server fixture)

SH = ZoneInfo("Asia/Shanghai")
STEWARD = Actor("steward", 1, "王红梅")


def sh(*args) -> datetime:
    """A time in the park."""
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def park(make_app, mailbox):  # noqa: F811
    """The example park, with mail going to the loopback SMTP server."""
    app = make_app(mail={"port": mailbox.port})
    with app.extensions["redsteward.sessions"]() as s, s.begin():
        orgimport.apply(s, orgimport.read(orgimport.EXAMPLE_PATH))
    return app


def filed(sessions, at: datetime, text: str, type_: str, category: str, estate: str = "xhy",
          escalate_at: datetime | None = None, levels: int = 2) -> str:
    """A request routed at `at`, escalated `levels` times at `escalate_at`; returns its reference."""
    with sessions() as s, s.begin():
        resident = Resident(openid=f"o-{text}")
        s.add(resident)
        est = s.scalar(select(Estate).where(Estate.code == estate))
        req = file_request(s, kind="help", description=text, resident_id=resident.id, created_at=at,
                           estate_id=est.id, community_id=est.community_id)
        workflow.classify(s, req, STEWARD, type_, category, at)
        workflow.route(s, req, STEWARD, est.property_company, 3, at)
        for _ in range(levels):
            workflow.escalate(s, req, SYSTEM, "需要跨部门协调", escalate_at or at)
        return req.ref


def run_digest(app, at: datetime) -> dict:
    """The scheduled digest job at a frozen local time."""
    with time_machine.travel(at, tick=False):
        return run_named(app, "digest")


def test_friday_digest_reaches_the_department_and_opens_as_expected(park, mailbox):  # noqa: F811
    """Two complex requests of the week become two rows, in the HTML e-mail and in the Excel file."""
    sessions = park.extensions["redsteward.sessions"]
    lift = filed(sessions, sh(2026, 11, 23, 9), "小区电梯三天两次困人，物业一直拖着不修", "market_service", "物业服务",
                 escalate_at=sh(2026, 11, 24, 10))
    road = filed(sessions, sh(2026, 11, 23, 9), "星湖街与钟园路口没有红绿灯，孩子上学很危险", "government", "规划建设",
                 estate="lhjy", escalate_at=sh(2026, 11, 26, 15))
    filed(sessions, sh(2026, 11, 16, 9), "上周的诉求", "government", "规划建设", escalate_at=sh(2026, 11, 18, 9))
    filed(sessions, sh(2026, 11, 23, 9), "只到街道的诉求", "government", "规划建设", levels=1)
    filed(sessions, sh(2026, 11, 27, 16, 30), "周五下午晚到的", "government", "规划建设")  # next week's

    assert run_digest(park, sh(2026, 11, 27, 16, 0)) == {"rows": 2, "messages": 2}
    settings = park.config["REDSTEWARD"]
    with sessions() as s:
        tpl = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "template"))
        assert tpl.recipient == "sandbox_liaison_orgdept"
        assert tpl.payload["template_id"] == "TPL_DIGEST"
        assert tpl.payload["data"]["thing1"]["value"] == "本周民意诉求承办单 2 件"
        assert "/console/requests" in tpl.payload["url"]
        mail_row = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    outbox.send_email(settings["mail"], mail_row.payload, mail_row.idempotency_key)
    [mail] = mailbox.wait_for(1, 10)
    assert mail["To"] == "orgdept@park.local"
    assert mail["Subject"] == "民意诉求承办单（2026-11-27 16:00）"

    html = mail.get_body(("html",)).get_content()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content(html)
        heading = page.inner_text("h1")
        cells = page.eval_on_selector_all("tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
        headers = page.eval_on_selector_all("thead th", "ths => ths.map(t => t.innerText)")
        browser.close()
    assert heading == "民意诉求承办单（2026-11-27 16:00）"
    assert headers == ["编号", "小区", "类别", "诉求摘要", "建议承办单位", "办理期限"]
    # 15 working days from Friday 27 November: 18 December.
    assert cells == [
        [lift, "星湖苑", "求助·市场服务类·物业服务", "小区电梯三天两次困人，物业一直拖着不修", "星湖苑物业服务中心", "2026-12-18"],
        [road, "玲珑家园", "求助·政务类·规划建设", "星湖街与钟园路口没有红绿灯，孩子上学很危险", "园区规划建设委员会", "2026-12-18"],
    ]

    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "民意诉求承办单-20261127.xlsx"
    sheet = load_workbook(io.BytesIO(attachment.get_content())).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "民意诉求承办单（2026-11-27 16:00）"
    assert values[1] == ["编号", "小区", "类别", "诉求摘要", "建议承办单位", "办理期限"]
    assert values[2:] == [cells[0], cells[1]]
    assert "小区电梯三天两次困人" in mail.get_body(("plain",)).get_content()


def test_the_digest_goes_once_per_week_even_after_a_restart_or_a_late_catch_up(park, make_app):
    """A double run, a restarted scheduler and a Saturday catch-up all find the week's form sent."""
    sessions = park.extensions["redsteward.sessions"]
    filed(sessions, sh(2026, 11, 23, 9), "路灯不亮", "government", "规划建设", escalate_at=sh(2026, 11, 24, 10))
    # The scheduler was down at 16:00 on Friday: back at 18:30, the missed run still sends the form.
    assert run_digest(park, sh(2026, 11, 27, 18, 30))["rows"] == 1
    assert run_digest(park, sh(2026, 11, 27, 18, 31)) == {"rows": 0, "messages": 0}
    assert run_digest(make_app(mail={"port": 1}), sh(2026, 11, 28, 10)) == {"rows": 0, "messages": 0}
    with sessions() as s:
        assert len(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email")).all()) == 1
        [run] = s.scalars(select(JobRun)).all()
        assert (run.job, run.period, run.result["rows"]) == ("digest", "2026-11-27", 1)
    # The next Friday is a new week.
    assert run_digest(park, sh(2026, 12, 4, 16, 0)) == {"rows": 0, "messages": 2}


def test_digest_now_saves_an_excel_a_person_can_open(park, tmp_path):
    """`flask digest now --save FILE` sends the last seven days' form and writes the workbook."""
    sessions = park.extensions["redsteward.sessions"]
    with time_machine.travel(sh(2026, 11, 25, 11), tick=False):
        ref = filed(sessions, sh(2026, 11, 24, 9), "社区公园施工噪音扰民", "government", "规划建设",
                    escalate_at=sh(2026, 11, 25, 9))
        result = park.test_cli_runner().invoke(args=["digest", "now", "--save", str(tmp_path / "form.xlsx")])
    assert result.exit_code == 0, result.output
    assert "1 requests, 2 messages queued" in result.output
    sheet = load_workbook(tmp_path / "form.xlsx").active
    assert [row[0] for row in sheet.iter_rows(min_row=3, values_only=True)] == [ref]
    with sessions() as s:
        assert s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref)).level == "organisation_department"
