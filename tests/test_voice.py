"""语音求助: a resident speaks, the note is fetched once, converted for real, and a steward hears it."""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from bot import voice as voice_web
from models import MediaFile, OutboxMessage, ServiceRequest

from .test_console_support import Console
from .wechat import WeChatSim
from .wechat_standin import ROOT, standin  # noqa: F401  (fixture)

STEWARD = "sandbox_steward_xinghu"


@pytest.fixture
def live(make_app):
    """The sandbox app with the demo park, served on a real loopback port (its API stand-in too)."""
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = app.config["REDSTEWARD"]
    settings["app"]["public_url"] = base
    settings["wechat"]["api_base_url"] = base + "/sandbox/api/"
    from bot import demo
    with app.extensions["redsteward.sessions"]() as s:
        demo.load(s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, base
    server.shutdown()


def verified(wx: WeChatSim, openid: str) -> None:
    """A resident of 星湖苑 who has completed real-name verification."""
    wx.send(openid, "event", Event="subscribe", EventKey="qrscene_estate_xhy")
    first = wx.click(openid, "FLOW_VERIFY")
    assert "个人信息保护说明" in first and "继续填写即表示您同意" in first
    for answer in ("王小明", "13912345678", "1", "1", "2栋", "2"):
        wx.text(openid, answer)
    assert "实名认证完成" in wx.text(openid, "1")


def speak(wx: WeChatSim, openid: str, media_id: str) -> str:
    """Sends a voice message and returns the reply text."""
    return wx.send(openid, "voice", MediaId=media_id, Format="amr", Recognition="").get("Content", "")


def probe(path_or_bytes, tmp_path) -> dict:
    """ffprobe's view of an audio file: codec and exact length."""
    if isinstance(path_or_bytes, bytes):
        path = tmp_path / "probe.bin"
        path.write_bytes(path_or_bytes)
    else:
        path = path_or_bytes
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration",
                          "-of", "json", str(path)], capture_output=True, check=True, text=True).stdout
    data = json.loads(out)
    return {"codec": data["streams"][0]["codec_name"], "duration": float(data["format"]["duration"])}


def test_a_voice_only_help_request_reaches_the_steward_who_hears_it(live, tmp_path):
    app, base = live
    wx = WeChatSim(app, app.test_client())
    sessions = app.extensions["redsteward.sessions"]
    verified(wx, "r_voice")
    wx.click("r_voice", "FLOW_HELP")
    wx.text("r_voice", "1")
    wx.text("r_voice", "3")
    assert "位置" in speak(wx, "r_voice", "sandbox-voice-0001")
    wx.text("r_voice", "跳过")
    summary = wx.text("r_voice", "跳过")
    assert "（语音）" in summary
    reply = wx.text("r_voice", "1")
    with sessions() as s:
        req = s.scalar(select(ServiceRequest))
        # Short, with the number to read out on the phone: no long text for someone who speaks.
        assert req.ref in reply and len(reply) <= 40
        media = s.scalar(select(MediaFile))
        assert (media.kind, media.status, media.request_id) == ("voice", "pending", req.id)
        alert = s.scalar(select(OutboxMessage).where(OutboxMessage.recipient == STEWARD))
        assert alert.payload["data"]["character_string1"]["value"] == req.ref
        page_link = alert.payload["url"]

    # Outside the webhook: the job fetches the note through media/get and converts it with ffmpeg.
    assert voice_web.download_job(app)["downloaded"] == 1
    assert voice_web.download_job(app)["downloaded"] == 0  # fetched once
    with sessions() as s:
        media = s.scalar(select(MediaFile))
        assert media.status == "downloaded" and media.duration == pytest.approx(3.0, abs=0.05)
        assert media.duration_label == "0:03"
        assert Path(media.path).read_bytes()[:6] == b"#!AMR\n"
        req = s.get(ServiceRequest, media.request_id)

    # The page the steward's template message opens shows 语音 with its length and a player.
    mobile = requests.get(page_link, timeout=5).text
    assert "语音 0:03" in mobile and "<audio" in mobile
    # So does the console page, for the community's steward only.
    console = Console(app, "xinghu")
    page = console.get(f"/console/requests/{req.id}").get_data(as_text=True)
    assert "语音 0:03" in page and "<audio" in page
    src = page.split('<audio controls preload="metadata" src="')[1].split('"')[0]
    assert Console(app, "hanlin").get(f"/console/requests/{req.id}").status_code in (403, 404)
    audio = requests.get(base + src, timeout=5)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/mpeg"
    heard = probe(audio.content, tmp_path)
    assert heard["codec"] == "mp3" and heard["duration"] == pytest.approx(3.0, abs=0.15)

    # A real browser loads and decodes it: the steward can press play.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(base + "/sandbox/")
        page.set_content(f'<audio id="a" preload="auto" src="{base + src}"></audio>')
        seconds = page.evaluate("""() => new Promise((ok, fail) => {
            const a = document.getElementById('a');
            if (a.readyState >= 1) return ok(a.duration);
            a.onloadedmetadata = () => ok(a.duration);
            a.onerror = () => fail('cannot play: ' + (a.error && a.error.code));
        })""")
        browser.close()
    assert seconds == pytest.approx(3.0, abs=0.2)

    # A forged or tampered link plays nothing.
    assert requests.get(base + src[:-3] + "xyz", timeout=5).status_code == 403


def test_the_steward_writes_a_summary_that_becomes_the_request_text(live):
    app, _ = live
    wx = WeChatSim(app, app.test_client())
    verified(wx, "r_sum")
    speak(wx, "r_sum", "sandbox-voice-0002")
    reply = wx.text("r_sum", "1")
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s:
        req = s.scalar(select(ServiceRequest))
    assert req.ref in reply
    assert "语音：正在获取" in wx.text(STEWARD, f"查看 {req.ref}")
    assert "摘要 <编号> <内容>" in wx.text(STEWARD, f"摘要 {req.ref}")
    assert "3栋电梯" not in wx.text("r_sum", f"摘要 {req.ref} 3栋电梯")  # a resident is no steward
    assert "没有找到" in wx.text("sandbox_steward_hanlin", f"摘要 {req.ref} 别的社区")  # not theirs
    assert "已保存" in wx.text(STEWARD, f"摘要 {req.ref} 3栋电梯停了两天，老人下不了楼")
    with sessions() as s:
        assert s.get(ServiceRequest, req.id).description == "3栋电梯停了两天，老人下不了楼"


def test_a_voice_note_outside_a_flow_is_filed_in_one_step(live):
    app, _ = live
    wx = WeChatSim(app, app.test_client())
    sessions = app.extensions["redsteward.sessions"]
    # Not verified yet: told how, briefly; nothing filed.
    wx.send("r_out", "event", Event="subscribe", EventKey="qrscene_estate_xhy")
    assert "实名认证" in speak(wx, "r_out", "sandbox-voice-0003")
    verified(wx, "r_out")
    offer = speak(wx, "r_out", "sandbox-voice-0004")
    assert "回复“1”" in offer and len(offer) <= 40
    assert "取消" in wx.text("r_out", "取消")
    with sessions() as s:
        assert s.scalar(select(ServiceRequest)) is None
    speak(wx, "r_out", "sandbox-voice-0005")
    reply = wx.text("r_out", "1")
    with sessions() as s:
        req = s.scalar(select(ServiceRequest))
        assert req.kind == "help" and req.ref in reply
        assert s.scalar(select(MediaFile.media_id)) == "sandbox-voice-0005"
        assert s.scalar(select(OutboxMessage).where(OutboxMessage.recipient == STEWARD)) is not None


def test_an_expired_note_fails_for_good_and_an_outage_is_retried(make_app, standin):
    note = standin.put_media((ROOT / "static" / "sandbox-voice.amr").read_bytes(), "audio/amr")
    app = make_app(wechat={"api_base_url": standin.url})
    sessions = app.extensions["redsteward.sessions"]
    from models.media import queue_download
    with sessions() as s, s.begin():
        queue_download(s, note, "voice")  # fetched first (in the order queued), during an outage
        queue_download(s, "gone-1", "voice")  # WeChat keeps media three days: this one it no longer has
    standin.fail_next("http500")
    counts = voice_web.download_job(app)
    assert counts["failed"] == 1 and counts["retry"] == 1
    assert [c["args"]["media_id"] for c in standin.calls_to("media/get")] == [note, "gone-1"]
    with sessions() as s:
        rows = {m.media_id: m for m in s.scalars(select(MediaFile))}
    assert rows["gone-1"].status == "failed" and "expired" in rows["gone-1"].last_error
    assert rows[note].status == "pending" and rows[note].attempts == 1
    assert rows[note].next_attempt_at > rows[note].created_at

    # Once WeChat answers again, the note is fetched and converted; the expired one is not asked for again.
    assert voice_web.download_job(app, now=rows[note].next_attempt_at)["downloaded"] == 1
    assert len(standin.calls_to("media/get")) == 3
    with sessions() as s:
        media = s.scalar(select(MediaFile).where(MediaFile.media_id == note))
    assert media.status == "downloaded" and media.duration == pytest.approx(3.0, abs=0.05)


def test_in_the_simulator_a_voice_note_is_playable_as_soon_as_it_is_filed(live):
    app, base = live
    verified(WeChatSim(app, app.test_client()), "sim_voice")

    def send(**payload):
        """One message from the simulator page."""
        r = requests.post(base + "/sandbox/send", json={"openid": "sim_voice", **payload}, timeout=30)
        assert r.status_code == 200
        return r.json()["reply"]["content"]

    assert "回复“1”" in send(kind="voice")
    assert "编号" in send(kind="text", content="1")
    with app.extensions["redsteward.sessions"]() as s:
        media = s.scalar(select(MediaFile))
    assert media.status == "downloaded" and media.duration_label == "0:03"
