"""The console in a real browser: headless Chromium (Debian's) against the app on a real HTTP server."""
from __future__ import annotations

import io
import re
import threading
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from models import Announcement, OutboxMessage, Resident, ServiceRequest, utcnow

from .test_console_support import estate, new_request, park, routed  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (starting it is the slow part)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def server(park):
    """The app served over HTTP on a free loopback port, in a thread."""
    srv = make_server("127.0.0.1", 0, park, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(5)


@pytest.fixture
def page(browser, server):
    """A fresh browser context (no cookies) with a page."""
    context = browser.new_context(base_url=server, locale="zh-CN", accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def sign_in(page, username: str, password: str = "hongguan-demo") -> None:
    """Fills and sends the login form."""
    page.goto("/console/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def test_login_wrong_then_right(page):
    sign_in(page, "xinghu", "wrong-password")
    expect(page.get_by_role("alert")).to_contain_text("用户名或密码不对")
    sign_in(page, "xinghu")
    expect(page).to_have_url(re.compile(r"/console/requests$"))
    expect(page.locator("header")).to_contain_text("王红梅")
    page.get_by_role("button", name="退出").click()
    expect(page.get_by_role("heading", name="工作台登录")).to_be_visible()


def test_inbox_filter_shows_only_overdue(page, park, sessions):
    now = utcnow()
    with sessions() as s:
        late = routed(s, new_request(s, "xhy", "电梯停了一周没人修"), "xhy_pm", days=1, at=now - timedelta(days=10))
        s.commit()
        late_ref = late.ref
    sign_in(page, "xinghu")
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("只看超期").check()
    page.get_by_role("button", name="筛选").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(late_ref)
    expect(rows.first).to_contain_text("超期")


def test_route_and_reply_to_a_request(page, park, sessions):
    req_id = park.config["TEST_IDS"]["hanlin"]
    sign_in(page, "hanlin")
    page.get_by_role("link", name=park.config["TEST_IDS"]["hanlin_ref"]).click()
    classify = page.locator("form#classify")
    classify.locator("select[name=type]").select_option(label="市场服务类")
    classify.get_by_label("细分类别").fill("物业服务")
    classify.get_by_role("button", name="受理").click()
    expect(page.get_by_role("status")).to_contain_text("已受理")
    route = page.locator("form#route")
    # The routing rules have picked the estate's property company already.
    expect(route.get_by_label("承办单位")).to_have_value(str(_org_id(sessions, "hlsy_pm")))
    route.get_by_label("期限（工作日）").fill("3")
    route.get_by_role("button", name="派单").click()
    expect(page.get_by_role("status")).to_contain_text("已派单")
    answer = page.locator("form#answer")
    answer.locator("textarea").fill("物业已派电工查看，今晚修好。")
    answer.get_by_role("button", name="发送答复").click()
    expect(page.get_by_role("status")).to_contain_text("答复已发送")
    expect(page.locator("ol.timeline")).to_contain_text("物业已派电工查看，今晚修好。")
    expect(page.locator("h1")).to_contain_text("已答复")
    with sessions() as s:
        req = s.get(ServiceRequest, req_id)
        assert req.status == "answered" and req.handler.code == "hlsy_pm"
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.recipient == req.resident.openid)).all()
        assert "已答复" in {m.payload["data"]["phrase2"]["value"] for m in sent}


def _org_id(sessions, code: str) -> int:
    """An organisation's id by code."""
    from .test_console_support import org
    with sessions() as s:
        return org(s, code).id


def test_publish_an_announcement(page, park, sessions):
    with sessions() as s:
        s.add(Resident(openid="o_reader", estate_id=estate(s, "lhjy").id))
        s.commit()
    sign_in(page, "xinghu")
    page.get_by_role("link", name="公告").click()
    form = page.locator("form#publish")
    form.get_by_label("标题").fill("玲珑家园消防演练")
    form.get_by_label("正文").fill("本周六上午十点在中心广场举行消防演练，欢迎参加。")
    form.get_by_role("button", name="发布").click()
    expect(page.get_by_role("status")).to_contain_text("将推送给")
    expect(page.locator("table.list")).to_contain_text("玲珑家园消防演练")
    with sessions() as s:
        ann = s.scalar(select(Announcement).where(Announcement.title == "玲珑家园消防演练"))
        assert ann.community.code == "xinghu"
        keys = s.scalars(select(OutboxMessage.recipient)
                         .where(OutboxMessage.idempotency_key.like(f"announcement:{ann.id}:%"))).all()
        assert "o_reader" in keys


def test_read_the_dashboard(page, park):
    sign_in(page, "orgdept")
    page.get_by_role("link", name="数据看板").click()
    figures = page.locator("ul.figures")
    expect(figures).to_contain_text("收集诉求")
    expect(figures.locator("li", has_text="收集诉求").locator("b")).to_have_text("2")
    expect(page.locator("svg.chart")).to_have_count(3)
    expect(page.locator("svg[aria-label='各社区诉求']")).to_contain_text("星湖社区")


def test_export_the_assessment(page, park):
    sign_in(page, "orgdept")
    page.get_by_role("link", name="年度考核").click()
    page.get_by_label("最少样本").fill("1")
    page.get_by_role("button", name="计算").click()
    expect(page.locator("table.assess").first).to_contain_text("星湖苑物业服务中心")
    with page.expect_download() as info:
        page.get_by_role("link", name="导出 Excel").click()
    download = info.value
    assert download.suggested_filename.startswith("assessment-") and download.suggested_filename.endswith(".xlsx")
    with open(download.path(), "rb") as fh:
        wb = load_workbook(io.BytesIO(fh.read()))
    names = [row[1] for row in wb["承办单位"].iter_rows(min_row=2, values_only=True)]
    assert "星湖苑物业服务中心" in names


def test_an_admin_creates_a_steward_account_who_then_signs_in(page, park, sessions):
    sign_in(page, "admin")
    page.get_by_role("link", name="账号管理").click()
    form = page.locator("form#create-user")
    form.get_by_label("用户名").fill("zhao_hl")
    form.get_by_label("姓名").fill("赵海霞")
    form.get_by_label("角色").select_option(label="红管负责人")
    # Only the list of the chosen role's scope is shown.
    expect(form.get_by_label("所属承办单位（联络人）")).to_be_hidden()
    form.get_by_label("负责社区（红管负责人）").select_option(label="翰林社区")
    form.get_by_label("由我设定").check()
    form.get_by_label("新密码（至少 10 个字符）").fill("zhao-hailan-2026")
    form.get_by_role("button", name="创建账号").click()
    expect(page.get_by_role("status")).to_contain_text("账号已创建")
    expect(page.locator("dl.facts")).to_contain_text("翰林社区")
    page.get_by_role("button", name="退出").click()
    sign_in(page, "zhao_hl", "zhao-hailan-2026")
    expect(page).to_have_url(re.compile(r"/console/requests$"))
    expect(page.locator("header")).to_contain_text("赵海霞 · 红管负责人 · 翰林社区")
    expect(page.locator("table.list")).to_contain_text(park.config["TEST_IDS"]["hanlin_ref"])
    expect(page.locator("table.list")).not_to_contain_text(park.config["TEST_IDS"]["xinghu_ref"])
    expect(page.get_by_role("link", name="账号管理")).to_have_count(0)
