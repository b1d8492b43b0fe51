"""Property-based hostile input for the webhook: whatever a signed body holds, no 5xx, no hang.

The fixed corpus (XXE, billion laughs, bad base64, another appid, replays) is in test_webhook.py;
here hypothesis generates the bodies. Example counts are modest because CI runs the suite twice.
"""
from __future__ import annotations

import secrets
import time
from xml.sax.saxutils import escape

import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto

from bot.webhook import sign

from .conftest import AES_KEY
from .wechat import WeChatSim

PROPERTY = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODES = ("plain", "safe")

# Characters XML 1.0 allows; anything else (control characters, lone surrogates) must be refused.
XML_CHARS = st.characters(blacklist_categories=("Cs",),
                          blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
                          + ["\ufffe", "\uffff"])
TRICKY = st.sampled_from(["]]>", "<![CDATA[", "&amp;", "&", "<", ">", "\"", "'", "😀", "👨‍👩‍👧",
                          "取消", "返回", "跳过", "1", "帮助", "\u202e", "\u200b", "%s", "{0}", "{{x}}"])
LEGAL_TEXT = st.lists(st.one_of(TRICKY, st.text(XML_CHARS, max_size=40)), max_size=8).map("".join)
LONG_TEXT = st.integers(1000, 20_000).map(lambda n: "长" * n)
ANY_TEXT = st.one_of(LEGAL_TEXT, LONG_TEXT, st.text(max_size=200))  # the last may hold control chars
# Openids as WeChat writes them, and names a person types in the simulator; others are in xmlish().
OPENID = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-张三😀", min_size=1, max_size=64)
MSG_TYPES = st.sampled_from(["text", "image", "voice", "video", "shortvideo", "location", "link", "event",
                             "file", "miniprogrampage", "", "TEXT", "未知"])
EVENTS = st.sampled_from(["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "LOCATION",
                          "TEMPLATESENDJOBFINISH", "scancode_push", "", "未知"])
FIELDS = st.sampled_from(["Content", "EventKey", "Event", "MediaId", "PicUrl", "Format", "Recognition",
                          "Location_X", "Location_Y", "Scale", "Label", "Title", "Description", "Url",
                          "Latitude", "Longitude", "Precision", "Ticket", "MsgID", "Status", "CreateTime",
                          "MsgId", "ThumbMediaId"])
NUMBERISH = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(["", "1e9", "NaN", "-0", " 1"]))


def _app(make_app, mode: str) -> WeChatSim:
    """A warmed-up app in `mode`, with the rate limit off (one sender here is faster than any person)."""
    wechat = {"encrypt_mode": "safe", "encoding_aes_key": AES_KEY} if mode == "safe" else {}
    app = make_app(wechat=wechat, app={"rate_limit_per_minute": 0})
    sim = WeChatSim(app, app.test_client(), mode=mode)
    assert "实名认证" in sim.text("o_warm", "帮助")  # first-use loading is not what is timed
    return sim


def _post_signed(sim: WeChatSim, body: bytes):
    """Posts raw bytes as WeChat would: signed, and in safe mode encrypted whatever they hold."""
    if sim.mode == "plain":
        return sim.post_raw(body, mode="plain")
    ts, nonce = str(int(time.time())), secrets.token_hex(4)
    encrypt = PrpCrypto(sim.crypto.key).encrypt(body, sim.crypto._id).decode()
    envelope = f"<xml><ToUserName>gh_test</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    return sim.client.post("/wechat", data=envelope.encode(), query_string={
        "timestamp": ts, "nonce": nonce, "signature": sign(sim.token, ts, nonce), "encrypt_type": "aes",
        "msg_signature": sign(sim.token, ts, nonce, encrypt)})


def _timed(sim: WeChatSim, body: bytes):
    """Posts and checks the two promises every answer keeps: no server error, within a second."""
    started = time.monotonic()
    resp = _post_signed(sim, body)
    elapsed = time.monotonic() - started
    assert resp.status_code < 500, (resp.status_code, body[:200])
    assert elapsed < 1.0, (elapsed, body[:200])
    return resp


def _reply_xml(sim: WeChatSim, resp) -> str:
    """The reply's XML, decrypted in safe mode."""
    text = resp.get_data(as_text=True)
    if sim.mode == "safe":
        outer = xmltodict.parse(text)["xml"]
        text = sim.crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    return text


def _element(name: str, value: str, style: str) -> str:
    """One field, written as WeChat does (CDATA), escaped, or raw as an attacker might."""
    if style == "cdata":
        return f"<{name}><![CDATA[{value.replace(']]>', ']]]]><![CDATA[>')}]]></{name}>"
    if style == "escaped":
        return f"<{name}>{escape(value)}</{name}>"
    return f"<{name}>{value}</{name}>"


@st.composite
def xmlish(draw) -> bytes:
    """A document that looks like a WeChat message: known and unknown tags, any values, any nesting."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.one_of(FIELDS, st.sampled_from(["ToUserName", "FromUserName", "MsgType", "xml"]),
                              st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,12}\Z")))
        value = draw(st.one_of(ANY_TEXT, NUMBERISH, MSG_TYPES, EVENTS))
        parts.append(_element(name, value, draw(st.sampled_from(["cdata", "escaped", "raw"]))))
    doc = "<xml>" + "".join(parts) + draw(st.sampled_from(["</xml>", "", "</xml><xml>", "</xml>\x00"]))
    if draw(st.booleans()):
        doc = '<?xml version="1.0" encoding="' + draw(st.sampled_from(["utf-8", "gbk", "latin-1", "x"])) \
              + '"?>' + doc
    return doc.encode("utf-8", "surrogatepass")


@st.composite
def valid_message(draw) -> tuple[str, bytes]:
    """A well-formed message of any type whose field values are anything XML can carry."""
    openid = draw(OPENID)
    msg_type = draw(st.sampled_from(["text", "image", "voice", "video", "location", "link", "event"]))
    fields = {"ToUserName": draw(OPENID), "FromUserName": openid,
              "CreateTime": str(int(time.time()) + draw(st.integers(0, 10**6))), "MsgType": msg_type}
    if msg_type == "event":
        fields["Event"] = draw(EVENTS.filter(bool))
    else:
        fields["MsgId"] = str(draw(st.integers(1, 2**63)))
    for name in draw(st.lists(FIELDS.filter(lambda f: f not in ("CreateTime", "MsgId", "Event")),
                              max_size=6, unique=True)):
        fields[name] = draw(st.one_of(LEGAL_TEXT, NUMBERISH, st.integers(1, 3000).map(lambda n: "😀" * n)))
    style = draw(st.sampled_from(["cdata", "escaped"]))
    body = "<xml>" + "".join(_element(k, v, style) for k, v in fields.items()) + "</xml>"
    return openid, body.encode()


BODIES = {"arbitrary bytes": st.binary(max_size=4096), "xml-looking documents": xmlish()}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_any_signed_body_never_causes_a_server_error(make_app, kind):
    for mode in MODES:
        sim = _app(make_app, mode)

        @PROPERTY
        @given(BODIES[kind])
        def check(body):
            _timed(sim, body)

        check()


def test_every_valid_message_gets_a_reply_wechat_can_parse(make_app):
    for mode in MODES:
        sim = _app(make_app, mode)

        @PROPERTY
        @given(valid_message())
        def check(message):
            openid, body = message
            resp = _timed(sim, body)
            assert resp.status_code == 200, (resp.status_code, body[:300])
            text = resp.get_data(as_text=True)
            if text == "success":
                return  # the documented "no reply" for silent events
            reply = parse_message(_reply_xml(sim, resp))
            assert reply.target == openid and reply.type in ("text", "news")
            if reply.type == "text":
                assert reply.content.strip()

        check()


def test_the_webhook_still_answers_after_a_hostile_run(make_app):
    """A short burst of junk and then a resident: the junk left no lock, no half transaction."""
    sim = _app(make_app, "plain")

    @PROPERTY
    @given(st.one_of(xmlish(), st.binary(max_size=512)))
    def junk(body):
        _timed(sim, body)

    junk()
    assert "实名认证" in sim.text("o_after_junk", "帮助")
