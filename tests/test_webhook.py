"""The webhook as WeChat sees it: verification, three encryption modes, retries, bad input."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from wechatpy import parse_message

from bot.webhook import sign
from handlers import dispatch
from models import ProcessedMessage, Resident

from .conftest import AES_KEY
from .wechat import WeChatSim


def test_url_verification_echoes_echostr(client):
    ts, nonce = "1700000000", "n1"
    resp = client.get("/wechat", query_string={"timestamp": ts, "nonce": nonce, "echostr": "hello42",
                                               "signature": sign("sandboxtoken", ts, nonce)})
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "hello42"


def test_url_verification_echoes_in_safe_mode_too(make_app):
    app = make_app(wechat={"encrypt_mode": "safe", "encoding_aes_key": AES_KEY})
    ts, nonce = "1700000000", "n1"
    resp = app.test_client().get("/wechat", query_string={
        "timestamp": ts, "nonce": nonce, "echostr": "abc", "signature": sign("sandboxtoken", ts, nonce)})
    assert resp.get_data(as_text=True) == "abc"


def test_bad_signature_is_refused_without_side_effect(client, sessions, wx):
    body = wx.xml("o_attacker", "text", Content="帮助")
    resp = client.post("/wechat", query_string={"timestamp": "1", "nonce": "2", "signature": "0" * 40},
                       data=body)
    assert resp.status_code == 403
    with sessions() as s:
        assert s.scalar(select(func.count(Resident.id))) == 0


def test_text_message_gets_a_text_reply(wx):
    reply = wx.send("o_r1", "text", Content="帮助")
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == "o_r1" and reply["FromUserName"] == "gh_test"
    assert "实名认证" in reply["Content"]


@pytest.mark.parametrize("mode", ["compatible", "safe"])
def test_encrypted_modes_round_trip_with_real_crypto(make_app, mode):
    app = make_app(wechat={"encrypt_mode": mode, "encoding_aes_key": AES_KEY})
    sim = WeChatSim(app, app.test_client(), mode=mode)
    resp = sim.post_raw(sim.xml("o_enc", "text", Content="帮助"))
    raw = resp.get_data(as_text=True)
    assert "<Encrypt>" in raw and "实名认证" not in raw  # the reply itself is encrypted
    assert "实名认证" in sim.decode(resp)["Content"]


def test_safe_mode_refuses_plaintext(make_app):
    app = make_app(wechat={"encrypt_mode": "safe", "encoding_aes_key": AES_KEY})
    sim = WeChatSim(app, app.test_client(), mode="plain")
    assert sim.post_raw(sim.xml("o1", "text", Content="hi")).status_code == 400


def test_wrong_msg_signature_is_refused(make_app):
    app = make_app(wechat={"encrypt_mode": "safe", "encoding_aes_key": AES_KEY})
    sim = WeChatSim(app, app.test_client(), mode="safe")
    resp = sim.post_raw(sim.xml("o1", "text", Content="hi"), msg_signature="f" * 40)
    assert resp.status_code == 403


def test_three_deliveries_have_one_effect_and_the_same_reply(demo, wx, sessions):
    body = wx.xml("o_retry", "event", Event="CLICK", EventKey="FLOW_VERIFY")
    replies = [wx.decode(wx.post_raw(body))["Content"] for _ in range(3)]
    assert replies[0] == replies[1] == replies[2]
    assert "真实姓名" in replies[0]
    # The three deliveries moved the flow once: the next answer is taken as the name.
    msg = wx.xml("o_retry", "text", Content="张小芳")
    first = wx.decode(wx.post_raw(msg))["Content"]
    assert "手机号" in first
    assert wx.decode(wx.post_raw(msg))["Content"] == first
    assert "社区" not in first
    with sessions() as s:
        assert s.scalar(select(func.count(ProcessedMessage.key))) == 2


MESSAGES = [
    ("text", {"Content": "你好"}, "text"),
    ("image", {"PicUrl": "http://x/p.jpg", "MediaId": "m1"}, "text"),
    ("voice", {"MediaId": "m2", "Format": "amr"}, "text"),
    ("video", {"MediaId": "m3", "ThumbMediaId": "t3"}, "text"),
    ("shortvideo", {"MediaId": "m4", "ThumbMediaId": "t4"}, "text"),
    ("location", {"Location_X": "31.3", "Location_Y": "120.7", "Scale": "15", "Label": "星湖街"}, "text"),
    ("link", {"Title": "t", "Description": "d", "Url": "http://x"}, "text"),
    ("event", {"Event": "subscribe"}, "text"),
    ("event", {"Event": "subscribe", "EventKey": "qrscene_estate_xhy", "Ticket": "t"}, "text"),
    ("event", {"Event": "unsubscribe"}, "none"),
    ("event", {"Event": "SCAN", "EventKey": "estate_xhy", "Ticket": "t"}, "text"),
    ("event", {"Event": "CLICK", "EventKey": "ACTION_HELP"}, "text"),
    ("event", {"Event": "VIEW", "EventKey": "http://x"}, "none"),
    ("event", {"Event": "LOCATION", "Latitude": "31.3", "Longitude": "120.7", "Precision": "10"}, "none"),
    ("event", {"Event": "TEMPLATESENDJOBFINISH", "MsgID": "200163836", "Status": "success"}, "none"),
]


@pytest.mark.parametrize("msg_type,fields,expected", MESSAGES)
def test_every_message_and_event_type_is_answered(demo, wx, msg_type, fields, expected):
    reply = wx.send("o_types", msg_type, **fields)
    if expected == "none":
        assert reply["MsgType"] == "none"
    else:
        assert reply["MsgType"] == "text" and reply["Content"].strip()


def test_scan_from_estate_poster_binds_the_estate(demo, wx, sessions):
    reply = wx.send("o_scan", "event", Event="subscribe", EventKey="qrscene_estate_xhy", Ticket="t")
    assert "星湖苑" in reply["Content"]
    with sessions() as s:
        resident = s.scalar(select(Resident).where(Resident.openid == "o_scan"))
        assert resident.estate.name == "星湖苑"


def test_unknown_message_type_gets_a_polite_hint(wx):
    reply = wx.send("o_x", "miniprogrampage", Title="t")
    assert reply["MsgType"] == "text" and "菜单" in reply["Content"]


def test_reply_text_with_cdata_terminator_stays_valid_xml(wx, monkeypatch):
    from handlers import registry
    from handlers.replies import Text
    monkeypatch.setitem(registry.ACTIONS, "help", lambda ctx: Text("a]]>b<c>&"))
    assert wx.send("o_cdata", "text", Content="帮助")["Content"] == "a]]>b<c>&"


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>'
                  '<MsgType>text</MsgType><Content>&lol2;</Content><MsgId>1</MsgId></xml>')
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>'
       '<MsgType>text</MsgType><Content>&e;</Content><MsgId>1</MsgId></xml>')

BAD_BODIES = {
    "empty": b"",
    "truncated": b"<xml><ToUserName>a</ToUserName><FromUser",
    "not xml": b"hello world",
    "not utf-8": b"<xml><Content>\xff\xfe\xfa</Content></xml>",
    "json": b'{"MsgType": "text"}',
    "no MsgType": b"<xml><FromUserName>b</FromUserName><CreateTime>1</CreateTime></xml>",
    "xxe": XXE.encode(),
    "billion laughs": BILLION_LAUGHS.encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_bodies_get_4xx_quickly_and_store_nothing(wx, sessions, name):
    started = time.monotonic()
    resp = wx.post_raw(BAD_BODIES[name], mode="plain")
    assert 400 <= resp.status_code < 500
    assert time.monotonic() - started < 1.0
    with sessions() as s:
        assert s.scalar(select(func.count(ProcessedMessage.key))) == 0
    assert "实名认证" in wx.text("o_after", "帮助")  # still healthy


def test_oversized_body_is_refused(make_app):
    app = make_app(app={"max_body_bytes": 2048})
    sim = WeChatSim(app, app.test_client())
    resp = sim.post_raw(sim.xml("o1", "text", Content="长" * 2000))
    assert resp.status_code == 413


def _safe_app(make_app):
    app = make_app(wechat={"encrypt_mode": "safe", "encoding_aes_key": AES_KEY})
    return app, WeChatSim(app, app.test_client(), mode="safe")


@pytest.mark.parametrize("encrypt", ["!!!not-base64!!!", "YWJj", "A" * 64])
def test_bad_ciphertext_is_refused(make_app, encrypt):
    app, sim = _safe_app(make_app)
    ts, nonce = "1700000000", "n"
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    resp = sim.client.post("/wechat", data=body, query_string={
        "timestamp": ts, "nonce": nonce, "signature": sign(sim.token, ts, nonce), "encrypt_type": "aes",
        "msg_signature": sign(sim.token, ts, nonce, encrypt)})
    assert resp.status_code == 400


def test_ciphertext_for_another_appid_is_refused(make_app):
    from wechatpy.crypto import WeChatCrypto
    app, sim = _safe_app(make_app)
    other = WeChatCrypto(sim.token, AES_KEY, "wxSOMEONEELSE0000")
    ts, nonce = "1700000000", "n"
    enc = other.encrypt_message(sim.xml("o1", "text", Content="hi"), nonce, ts)
    import xmltodict
    outer = xmltodict.parse(enc)["xml"]
    resp = sim.client.post("/wechat", data=enc, query_string={
        "timestamp": ts, "nonce": nonce, "signature": sign(sim.token, ts, nonce), "encrypt_type": "aes",
        "msg_signature": outer["MsgSignature"]})
    assert resp.status_code == 400


def test_replayed_timestamp_outside_window_is_refused(make_app):
    app = make_app(app={"timestamp_window_seconds": 300})
    sim = WeChatSim(app, app.test_client())
    old = str(int(time.time()) - 3600)
    assert sim.post_raw(sim.xml("o1", "text", Content="帮助"), timestamp=old).status_code == 403
    assert sim.post_raw(sim.xml("o1", "text", Content="帮助")).status_code == 200


def test_verification_then_request_reaches_the_steward(demo, wx, sessions):
    """The first path a person tries in the simulator: verify, then file a 求助."""
    steps = [("click", "FLOW_VERIFY", "真实姓名"), ("text", "张小芳", "手机号"),
             ("text", "+86 138 1234 5678", "社区"), ("text", "1", "小区"), ("text", "星湖苑", "楼栋"),
             ("text", "跳过", "党员"), ("text", "2", "138****5678"), ("text", "1", "实名认证完成"),
             ("click", "FLOW_HELP", "哪一类"), ("text", "1", "哪方面"), ("text", "公共设施", "描述"),
             ("text", "3栋楼道灯坏了一周了", "位置"), ("text", "跳过", "照片"), ("text", "完成", "核对"),
             ("text", "1", "编号")]
    for kind, value, expected in steps:
        reply = wx.click("o_path", value) if kind == "click" else wx.text("o_path", value)
        assert expected in reply, (value, reply)
    from models import OutboxMessage, ServiceRequest
    with sessions() as s:
        req = s.scalar(select(ServiceRequest))
        assert req.description == "3栋楼道灯坏了一周了" and req.ref in reply
        outbox = s.scalars(select(OutboxMessage)).all()
        assert [m.recipient for m in outbox] == ["sandbox_steward_xinghu"]
        assert outbox[0].payload["data"]["character_string1"]["value"] == req.ref


def test_a_flow_cleared_by_housekeeping_is_explained_once(demo, wx, sessions):
    from models import Conversation, Resident
    wx.click("o_away", "FLOW_VERIFY")
    with sessions() as s:
        resident = s.scalar(select(Resident).where(Resident.openid == "o_away"))
        conv = s.get(Conversation, resident.id)
        conv.clear()
        conv.expired_notice = "verification"
        s.commit()
    first = wx.text("o_away", "你好")
    assert "实名认证" in first and "自动结束" in first
    assert "自动结束" not in wx.text("o_away", "你好")


def test_a_message_opens_the_service_window_and_an_event_does_not(wx, sessions):
    # last_message_at opens WeChat's 48-hour window for customer-service messages.
    def seen():
        with sessions() as s:
            return s.scalar(select(Resident.last_message_at).where(Resident.openid == "o_window"))

    wx.send("o_window", "event", Event="subscribe")
    assert seen() is None  # an event is not the resident writing
    before = time.time()
    wx.text("o_window", "你好")
    first = seen()
    assert first is not None and before - 1 <= first.timestamp() <= time.time() + 1
    wx.text("o_window", "在吗")
    assert seen() == first  # written at most once a minute


def test_the_dispatcher_shares_a_resident_the_session_already_holds(app, wx, sessions):
    # A job or a test may hand the dispatcher a session that has read the resident already.
    wx.send("o_held", "event", Event="subscribe")
    with sessions() as s:
        held = s.scalar(select(Resident).where(Resident.openid == "o_held"))
        msg = parse_message(wx.xml("o_held", "text", Content="帮助"))
        reply, retry = dispatch.handle(s, msg, app.extensions["redsteward.services"])
        assert not retry and "实名认证" in reply.content
        assert held.last_message_at is not None  # the same object, brought up to date
    with sessions() as s:
        assert s.scalar(select(Resident.last_message_at).where(Resident.openid == "o_held")) is not None
