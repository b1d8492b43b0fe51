"""我的数据 and the privacy notice: consent by version, an export of exactly one's own data, erasure."""
from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path

import time_machine
from sqlalchemy import MetaData, select

from bot import voice as voice_web
from bot.outbox import dispatch_due
from bot.wechat_api import build_client
from models import Base, ConsentRecord, MediaFile, Resident, ServiceRequest, utcnow
from models import reporting
from models.points import balance, earn, expire_due

from .test_voice import STEWARD, live, speak  # noqa: F401  (live is a fixture)
from .wechat import WeChatSim

ALICE = {"openid": "o_alice_7f3k", "name": "林晓燕", "mobile": "13811112222", "building": "5栋3单元"}
BOB = {"openid": "o_bob_9d2m", "name": "赵国强", "mobile": "13933334444", "building": "1栋1单元"}


def fresh(who: dict) -> dict:
    """The person with an openid of their own, so per-minute limits never carry over between tests."""
    return {**who, "openid": who["openid"] + secrets.token_hex(3)}


def verify(wx: WeChatSim, who: dict) -> str:
    """Real-name verification in 星湖苑; returns the first reply (the notice and the first question)."""
    wx.send(who["openid"], "event", Event="subscribe", EventKey="qrscene_estate_xhy")
    first = wx.click(who["openid"], "FLOW_VERIFY")
    for answer in (who["name"], who["mobile"], "1", "1", who["building"], "2"):
        wx.text(who["openid"], answer)
    assert "实名认证完成" in wx.text(who["openid"], "1")
    return first


def file_text_request(wx: WeChatSim, who: dict, text: str) -> str:
    """Files a 求助 by text; returns its reference number."""
    wx.click(who["openid"], "FLOW_HELP")
    for answer in ("1", "1", text, "跳过", "跳过"):
        wx.text(who["openid"], answer)
    reply = wx.text(who["openid"], "1")
    return reply.split("编号")[1].split("。")[0].split("，")[0].strip()


def consents(sessions, openid: str) -> list[ConsentRecord]:
    """The resident's consent records, oldest first."""
    with sessions() as s:
        rid = s.scalar(select(Resident.id).where(Resident.openid == openid))
        return list(s.scalars(select(ConsentRecord).where(ConsentRecord.resident_id == rid)
                              .order_by(ConsentRecord.id)))


def test_the_notice_comes_first_consent_is_recorded_and_a_new_version_asks_again(demo, wx, sessions):
    settings = demo.config["REDSTEWARD"]
    wx.send("o_carol", "event", Event="subscribe", EventKey="qrscene_estate_xhy")
    first = wx.click("o_carol", "FLOW_VERIFY")
    assert "个人信息保护说明" in first and "2026-11" in first and "姓名" in first
    assert first.index("个人信息保护说明") < first.index("姓名")
    assert "已取消" in wx.text("o_carol", "取消")
    [shown] = consents(sessions, "o_carol")
    assert shown.agreed_at is None  # cancelling is not agreeing

    verify(wx, {"openid": "o_carol", "name": "钱芳", "mobile": "13700001111", "building": "2栋"})
    agreed = [c for c in consents(sessions, "o_carol") if c.agreed_at]
    assert [(c.notice_version, c.purpose) for c in agreed] == [("2026-11", "verification")]
    assert "个人信息保护说明" not in wx.click("o_carol", "FLOW_HELP")  # agreed to this version
    wx.text("o_carol", "取消")

    settings["privacy"]["notice_version"] = "2027-01"
    again = wx.click("o_carol", "FLOW_HELP")
    assert "已更新" in again and "2027-01" in again
    wx.text("o_carol", "1")  # answering the first question after the notice is agreeing
    versions = [c.notice_version for c in consents(sessions, "o_carol") if c.agreed_at]
    assert versions == ["2026-11", "2027-01"]


def test_the_export_holds_exactly_the_residents_own_data(demo, wx, sessions, client):
    alice, bob = fresh(ALICE), fresh(BOB)
    verify(wx, alice)
    verify(wx, bob)
    ref_a = file_text_request(wx, alice, "楼下垃圾桶满了没人清")
    ref_b = file_text_request(wx, bob, "路灯坏了一个星期了")
    with sessions() as s, s.begin():
        ids = dict(s.execute(select(Resident.openid, Resident.id)).tuples().all())
        earn(s, ids[alice["openid"]], 30, "test:a", utcnow(), None)
        earn(s, ids[bob["openid"]], 50, "test:b", utcnow(), None)

    reply = wx.click(alice["openid"], "MY_DATA")
    assert "诉求：1 条" in reply and "积分记录：1 条" in reply and "林*燕" in reply
    assert alice["mobile"] not in reply  # the chat shows it masked; the link shows it whole
    url = reply.split("查看全部或下载：")[1].split()[0]
    path = url.split("127.0.0.1:5000")[1]

    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"].startswith("no-store")
    html = page.get_data(as_text=True)
    for mine in (alice["name"], alice["mobile"], alice["building"], ref_a):
        assert mine in html
    data = client.get(path + ".json").get_json()
    text = json.dumps(data, ensure_ascii=False)
    for theirs in (bob["name"], bob["mobile"], bob["openid"], bob["building"], ref_b, "路灯"):
        assert theirs not in text and theirs not in html
    assert [r["ref"] for r in data["service_requests"]] == [ref_a]
    assert {r["resident_id"] for r in data["points_entries"]} == {ids[alice["openid"]]}
    assert data["residents"][0]["mobile"] == alice["mobile"]
    assert {r["notice_version"] for r in data["consent_records"]} == {"2026-11"}

    assert client.get(path[:-4] + "AAAA").status_code == 403  # tampered
    with time_machine.travel(utcnow() + timedelta(minutes=16)):
        assert client.get(path).status_code == 403  # expired


def scan_for(engine, needles: list[str]) -> list[str]:
    """Every place in the database holding one of the strings: mapped tables decrypted, then raw."""
    found = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:  # EncryptedText columns decrypt here
            for row in conn.execute(table.select()):
                for column, value in row._mapping.items():
                    text = json.dumps(value, ensure_ascii=False, default=str)
                    found += [f"{table.name}.{column}: {n}" for n in needles if n in text]
        raw = MetaData()
        raw.reflect(conn)  # also tables and columns the models do not know, as stored
        for table in raw.sorted_tables:
            for row in conn.execute(table.select()):
                for column, value in row._mapping.items():
                    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    found += [f"raw {table.name}.{column}: {n}" for n in needles if n in text]
    return found


def counts(sessions) -> tuple:
    """What the dashboard shows: headline figures and requests by community and type."""
    now = utcnow()
    with sessions() as s:
        return (reporting.headline(s, now),
                reporting.by_community_and_type(s, now - timedelta(days=30), now + timedelta(days=1)))


def test_after_deletion_no_personal_field_remains_and_the_figures_do_not_move(live):
    alice, bob = fresh(ALICE), fresh(BOB)
    app, _ = live
    wx = WeChatSim(app, app.test_client())
    sessions = app.extensions["redsteward.sessions"]
    engine = app.extensions["redsteward.engine"]
    settings = app.config["REDSTEWARD"]
    verify(wx, alice)
    verify(wx, bob)
    ref_a = file_text_request(wx, alice, f"我是{alice['name']}，电话{alice['mobile']}，垃圾桶满了")
    file_text_request(wx, bob, "路灯坏了一个星期了")
    speak(wx, alice["openid"], "sandbox-voice-erase")
    wx.text(alice["openid"], "1")
    assert voice_web.download_job(app)["downloaded"] == 1
    for command in (f"分类 {ref_a} 市场服务类 物业服务", f"派 {ref_a}", f"回复 {ref_a} 已联系物业，今天下午清理"):
        wx.text(STEWARD, command)  # the resident is told of each step by template message
    dispatch_due(sessions, build_client(settings, sessions), settings)  # sent through the stand-in
    with sessions() as s, s.begin():
        alice_id = s.scalar(select(Resident.id).where(Resident.openid == alice["openid"]))
        earn(s, alice_id, 40, "test:erase", utcnow(), utcnow() + timedelta(days=365))
        voice_files = [Path(p) for m in s.scalars(select(MediaFile)) for p in (m.path, m.playable_path)]
    assert all(p.exists() for p in voice_files)
    needles = [alice["name"], alice["mobile"], alice["openid"]]
    assert scan_for(engine, needles)  # the scan does find them while they are there
    before = counts(sessions)

    warning = wx.text(alice["openid"], "删除我的数据")
    assert "40 积分将作废" in warning and "确认删除" in warning
    done = wx.text(alice["openid"], "确认删除")
    assert "已删除" in done and "2条诉求" in done

    assert scan_for(engine, needles) == []
    assert not any(p.exists() for p in voice_files)
    assert counts(sessions) == before
    with sessions() as s:
        shell = s.get(Resident, alice_id)
        assert shell.name is None and shell.mobile is None and shell.address is None
        assert balance(s, alice_id) == 0
        expire_due(s, utcnow() + timedelta(days=3 * 365), alice_id)  # later expiries take nothing more
        assert balance(s, alice_id) == 0
        kept = s.scalars(select(ServiceRequest).where(ServiceRequest.resident_id == alice_id)).all()
        assert ref_a in {r.ref for r in kept} and {r.kind for r in kept} == {"help"}
        other = s.scalar(select(Resident).where(Resident.openid == bob["openid"]))
        assert other.name == bob["name"] and other.mobile == bob["mobile"]  # nobody else touched

    # Writing again later starts afresh: nothing links the new account to the erased one.
    assert "诉求" not in wx.click(alice["openid"], "MY_DATA")
    with sessions() as s:
        again = s.scalar(select(Resident).where(Resident.openid == alice["openid"]))
        assert again.id != alice_id and not again.is_verified


def test_deletion_needs_the_warning_first_and_a_timely_confirmation(demo, wx, sessions):
    alice = fresh(ALICE)
    verify(wx, alice)
    assert "请先回复“删除我的数据”" in wx.text(alice["openid"], "确认删除")
    wx.text(alice["openid"], "删除我的数据")
    with time_machine.travel(utcnow() + timedelta(minutes=20)):
        assert "请先回复“删除我的数据”" in wx.text(alice["openid"], "确认删除")
    with sessions() as s:
        assert s.scalar(select(Resident).where(Resident.openid == alice["openid"])).name == alice["name"]
