"""Subscribe and QR posters: an estate's code binds the follower; the simulator plays a whole 求助."""
from __future__ import annotations

import requests
from PIL import Image
from sqlalchemy import select

from bot.qr import cjk_font_path
from models import Resident, SandboxCall

from .flowkit import Chat
from .test_sandbox import served  # noqa: F401  (the demo sandbox app on a loopback port)


def _estate_of(sessions, openid):
    with sessions() as s:
        r = s.scalar(select(Resident).where(Resident.openid == openid))
        return r.estate.name if r and r.estate else None


def test_subscribing_from_an_estate_poster_binds_the_estate(demo, sessions):
    chat = Chat(demo, "o_sub")
    reply = chat.sim.send("o_sub", "event", Event="subscribe", EventKey="qrscene_estate_xhy",
                          Ticket="t1")["Content"]
    assert "欢迎关注" in reply and "星湖苑" in reply and "实名认证" in reply
    assert _estate_of(sessions, "o_sub") == "星湖苑"
    # Already following, scanning another estate's poster: SCAN with the bare scene.
    reply = chat.sim.send("o_sub", "event", Event="SCAN", EventKey="estate_hlsy", Ticket="t2")["Content"]
    assert "欢迎回来" in reply and "翰林水岸" in reply and _estate_of(sessions, "o_sub") == "翰林水岸"
    # A plain follow, or an unknown code, binds nothing and still welcomes.
    assert "欢迎关注" in Chat(demo, "o_plain").sim.send("o_plain", "event", Event="subscribe",
                                                       EventKey="")["Content"]
    Chat(demo, "o_odd").sim.send("o_odd", "event", Event="subscribe", EventKey="qrscene_estate_nope")
    assert _estate_of(sessions, "o_plain") is None and _estate_of(sessions, "o_odd") is None


def test_an_estate_bound_resident_is_not_asked_for_the_community(demo):
    chat = Chat(demo, "o_bound")
    chat.sim.send("o_bound", "event", Event="subscribe", EventKey="qrscene_estate_yhy", Ticket="t")
    chat.click("FLOW_HELP")
    chat.text("咨询")
    assert chat.state == ("help_request", "category")


def test_qr_posters_one_png_per_estate_with_a_permanent_scene(served, make_app, tmp_path):  # noqa: F811
    import bot.qr as qr
    app = make_app(app={"public_url": served})  # the same database, calling the served stand-in
    result = app.test_cli_runner().invoke(args=["qr", "posters", str(tmp_path / "posters")])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "posters").iterdir())
    assert files == ["hlsy.png", "lhjy.png", "xhy.png", "yhy.png"]
    with app.extensions["redsteward.sessions"]() as s:
        calls = s.scalars(select(SandboxCall).where(SandboxCall.endpoint == "qrcode/create")).all()
        scenes = sorted(c.payload["action_info"]["scene"]["scene_str"] for c in calls)
        assert scenes == ["estate_hlsy", "estate_lhjy", "estate_xhy", "estate_yhy"]
        assert {c.payload["action_name"] for c in calls} == {"QR_LIMIT_STR_SCENE"}
    with Image.open(tmp_path / "posters" / "xhy.png") as opened:
        poster = opened.copy()
    assert poster.size == qr.POSTER_SIZE and poster.mode == "RGB"
    # The code sits in the middle (dark modules on white), the header band is red.
    code_area = poster.crop((140, 360, 760, 980)).convert("L").getcolors(1 << 16)
    dark = sum(n for n, level in code_area if level < 128)
    assert 0.25 < dark / (620 * 620) < 0.75
    assert poster.getpixel((10, 10)) == (192, 0, 0)


def test_a_cjk_font_is_installed_for_the_posters():
    """.ci/run installs fonts-noto-cjk; without it every name would be drawn as boxes."""
    assert cjk_font_path() is not None


def test_simulator_verify_then_file_with_photo_and_location(served, make_app):  # noqa: F811
    """As a person in the simulator: verify, file a 求助 with a photo and a location, see the steward's message."""
    def send(**data):
        resp = requests.post(f"{served}/sandbox/send", json={"openid": "o_sim", **data}, timeout=10)
        assert resp.status_code == 200
        return resp.json()["reply"].get("content", "")

    send(kind="click", key="FLOW_VERIFY")
    for answer in ("陈小红", "13812345678", "星湖社区", "玲珑家园", "跳过", "不是", "确认"):
        send(kind="text", content=answer)
    send(kind="click", key="FLOW_HELP")
    for answer in ("求助", "公共设施", "小区门口的路灯坏了好几天，晚上很黑"):
        send(kind="text", content=answer)
    assert "照片" in send(kind="location", lat="31.31", lng="120.71", label="玲珑家园北门")
    assert "第 1 张" in send(kind="image")
    assert "照片：1 张" in send(kind="text", content="完成")
    filed = send(kind="text", content="确认")
    ref = filed.split("编号 ")[1][:8]
    messages = requests.get(f"{served}/sandbox/messages/sandbox_steward_xinghu", timeout=10).json()["messages"]
    templates = [m for m in messages if m["endpoint"] == "message/template/send"]
    assert templates and templates[-1]["payload"]["data"]["character_string1"]["value"] == ref
    # The simulator runs the media job after each message: the photo was fetched through
    # media/get once, and running the job again fetches nothing.
    from bot.voice import download_job
    from models.media import MediaFile
    app = make_app(app={"public_url": served})
    assert download_job(app)["downloaded"] == 0
    with app.extensions["redsteward.sessions"]() as s:
        [photo] = s.scalars(select(MediaFile)).all()
        assert (photo.kind, photo.status) == ("image", "downloaded")
        with Image.open(photo.path) as stored:
            assert stored.size == (240, 160)
        fetched = s.scalars(select(SandboxCall).where(SandboxCall.endpoint == "media/get")).all()
        assert len(fetched) == 1
