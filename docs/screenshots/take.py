"""Screenshots of the console for the README: `.venv/bin/python docs/screenshots/take.py`.

Builds a sandbox park in a temporary SQLite file (the demo park, a few thousand generated
requests, a handful worked through the real workflow), serves it on a loopback port and
photographs the main pages with Debian's headless Chromium (fonts-noto-cjk for the Chinese).
"""
from __future__ import annotations

import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot import create_app  # noqa: E402
from bot.console.bench import generate  # noqa: E402
from models import Base, Estate, Organisation, Resident, file_request, utcnow  # noqa: E402
from models import workflow as wf  # noqa: E402
from models.resource import Resource  # noqa: E402
from models.timeline import Actor  # noqa: E402

OUT = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
STEWARD = Actor("steward", 1, "星湖社区 红管负责人")
LIAISON = Actor("liaison", 1, "星湖苑物业服务中心")


def worked_requests(s) -> int:
    """A few requests in 星湖苑 at different steps, with real timelines; returns one to photograph."""
    estate = s.scalar(select(Estate).where(Estate.code == "xhy"))
    pm = s.scalar(select(Organisation).where(Organisation.code == "xhy_pm"))
    now = utcnow()
    shown = None
    for i, (text, steps) in enumerate([
            ("3 号楼电梯这周已经停了两次，老人上下楼很不方便，请尽快检修。", 3),
            ("小区东门的路灯坏了，晚上回家很黑。", 2),
            ("建议在 5 号楼旁边增设电动自行车充电桩。", 1),
            ("垃圾分类亭周末没人清运，气味很大。", 0)]):
        resident = Resident(openid=f"o_shot_{i}", estate_id=estate.id, name="张小芳", mobile="13812345678",
                            verified_at=now)
        s.add(resident)
        s.flush()
        at = now - timedelta(hours=30 - i * 6)
        req = file_request(s, kind="help", description=text, resident_id=resident.id, estate_id=estate.id,
                           community_id=estate.community_id, created_at=at)
        if steps >= 1:
            wf.classify(s, req, STEWARD, "market_service", "物业服务", at + timedelta(minutes=20))
        if steps >= 2:
            wf.route(s, req, STEWARD, pm, 3, at + timedelta(minutes=25), "请物业尽快安排")
        if steps >= 3:
            wf.answer(s, req, LIAISON, "已联系电梯维保单位，明天上午到场检修，检修期间请走 2 号电梯。",
                      at + timedelta(hours=3))
            shown = req.id
    return shown


def resources(s) -> None:
    """A few entries in each directory."""
    for directory, name, category, provider, phone in [
            ("administrative", "社保卡办理", "社会保障", "湖西街道党群服务中心", "0512-66680001"),
            ("administrative", "居住证申领", "户籍", "湖西派出所", "0512-66680002"),
            ("market", "家电上门维修", "维修", "园区便民服务社", "0512-66680003"),
            ("market", "社区助餐点", "餐饮", "星湖邻里中心", "0512-66680004"),
            ("public_welfare", "法律援助站", "法律", "园区律师志愿团", "0512-66680005"),
            ("public_welfare", "独居老人探访", "关爱", "星湖志愿者协会", "0512-66680006")]:
        res = Resource(directory=directory, name=name, category=category, provider=provider, phone=phone,
                       address="星湖街 1 号", description="工作日 9:00–17:00")
        res.refresh_search_text()
        s.add(res)


def main() -> None:
    """Builds the park, serves it and takes the screenshots."""
    tmp = tempfile.mkdtemp()
    app = create_app({"database": {"url": f"sqlite:///{tmp}/shots.sqlite3"}, "app": {"media_dir": tmp}})
    Base.metadata.create_all(app.extensions["redsteward.engine"])
    generate(app, 4000)
    with app.extensions["redsteward.sessions"]() as s:
        detail = worked_requests(s)
        resources(s)
        s.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        for user, pages in (
                (None, [("login", "/console/login")]),
                ("xinghu", [("inbox", "/console/requests?status=open"), ("request", f"/console/requests/{detail}"),
                            ("announcements", "/console/announcements")]),
                ("orgdept", [("dashboard", "/console/dashboard"),
                             ("assessment", "/console/assessment?min_sample=20"),
                             ("resources", "/console/resources"), ("orgs", "/console/orgs")]),
                ("admin", [("users", "/console/users")])):
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = context.new_page()
            if user:
                page.goto("/console/login")
                page.get_by_label("用户名").fill(user)
                page.get_by_label("密码").fill("hongguan-demo")
                page.get_by_role("button", name="登录").click()
                page.wait_for_url("**/console/requests")
            for name, path in pages:
                page.goto(path)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=name not in ("inbox", "orgs", "users"))
                print("wrote", OUT / f"{name}.png")
            context.close()
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
