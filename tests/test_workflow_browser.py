"""The request page in a real browser: headless Chromium on a phone-sized screen, the app on real HTTP."""
from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from handlers.request_links import page_url
from models import ServiceRequest

from .park import park_with_request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(app):
    """A phone-sized page in headless Chromium, and the app served on a free loopback port."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=f"http://127.0.0.1:{srv.server_port}", locale="zh-CN",
                                      viewport={"width": 390, "height": 844}, is_mobile=True)
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        yield pg
        browser.close()
    srv.shutdown()
    thread.join(5)


def path(app, ref, viewer) -> str:
    """The page link's path and query."""
    url = urlsplit(page_url(app.extensions["redsteward.services"], ref, viewer))
    return f"{url.path}?{url.query}"


def test_staff_route_and_resolve_then_the_resident_rates_unsatisfied(app, sessions, page):
    ref = park_with_request(sessions, "o_browser", "小区东门路灯不亮")
    page.goto(path(app, ref, "sandbox_steward_xinghu"))
    page.get_by_label("类型").select_option(label="市场服务类")
    page.get_by_label("类别").fill("物业服务")
    page.get_by_role("button", name="分类受理").click()
    expect(page.locator("#status")).to_have_text("已受理")
    page.locator("#route-handler").fill("物业")
    page.get_by_role("button", name="派单").click()
    expect(page.locator("#handler")).to_contain_text("星湖苑物业服务中心")

    page.goto(path(app, ref, "sandbox_liaison_xhy_pm"))
    page.locator("#resolve-text").fill("已更换灯泡")
    page.get_by_role("button", name="办结").click()
    expect(page.locator("#status")).to_have_text("已办结")

    page.goto(path(app, ref, "r"))
    expect(page.locator("#resolution")).to_have_text("已更换灯泡")
    page.get_by_role("button", name="提交评价").click()  # nothing chosen
    expect(page.get_by_role("alert")).to_contain_text("请先选择满意度")
    page.get_by_label("不满意").check()
    page.get_by_label("意见（可不填）").fill("晚上还是黑的")
    page.get_by_role("button", name="提交评价").click()
    expect(page.get_by_role("status")).to_contain_text("已提交")
    expect(page.locator("#status")).to_have_text("重新办理")
    expect(page.locator("ol.timeline li").first).to_contain_text("重新办理")
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref))
        assert (req.status, req.rating_comment) == ("reopened", "晚上还是黑的")
