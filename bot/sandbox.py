"""Sandbox mode: a stand-in of the WeChat API that records calls, and the chat simulator."""
from __future__ import annotations

import hashlib
import secrets
import time
from urllib.parse import urlencode

import xmltodict
from flask import Blueprint, current_app, jsonify, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from models import Liaison, SandboxCall, Steward

from . import outbox
from .db import get_session
from .webhook import sign
from .wechat_api import build_client

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

RECIPIENT_FIELDS = ("touser", "openid")
OAUTH_CODE_SECONDS = 300  # WeChat's codes live five minutes and work once


# --- the API stand-in -------------------------------------------------------------------

def _record(endpoint: str, payload: dict) -> None:
    """Stores a call so the simulator can show it."""
    s = get_session()
    openid = next((payload.get(f) for f in RECIPIENT_FIELDS if payload.get(f)), None)
    s.add(SandboxCall(endpoint=endpoint, openid=openid, payload=payload))
    s.commit()


@bp.route("/api/cgi-bin/token", methods=["GET"])
@bp.route("/api/cgi-bin/stable_token", methods=["POST"])
def api_token():
    """Issues a token to the configured sandbox appid and secret."""
    wx = current_app.config["REDSTEWARD"]["wechat"]
    data = request.get_json(force=True, silent=True) or request.args
    if data.get("appid") != wx["appid"] or data.get("secret") != wx["appsecret"]:
        return jsonify(errcode=40125, errmsg="invalid appsecret")
    return jsonify(access_token="sandbox-" + secrets.token_hex(16), expires_in=7200)


# --- the web authorisation stand-in (open.weixin.qq.com/connect/oauth2/authorize) -----------

def _codes() -> URLSafeTimedSerializer:
    """Signs authorisation codes, so any worker can swap one for its openid."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="sandbox-oauth-code")


@bp.route("/connect/oauth2/authorize")
def oauth_authorize():
    """WeChat's authorisation page: asks who is reading (WeChat knows; the sandbox asks), then
    sends them back to `redirect_uri` with a code and the state, as WeChat does."""
    wx = current_app.config["REDSTEWARD"]["wechat"]
    args = request.args
    public_url = current_app.extensions["redsteward.services"].public_url
    redirect_uri = args.get("redirect_uri", "")
    if args.get("appid") != wx["appid"] or args.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
        return render_template("sandbox/authorize.html", error="bad_args"), 400
    if not redirect_uri.startswith(public_url + "/"):
        # WeChat allows only the account's authorised domain (errcode 10003).
        return render_template("sandbox/authorize.html", error="bad_domain"), 400
    openid = args.get("openid", "").strip()[:64]
    if not openid:
        people = [(s.openid, "steward", s.name) for s in get_session().scalars(select(Steward).order_by(Steward.id))]
        people += [(p.openid, "liaison", f"{p.organisation.name} {p.masked_name}") for p in get_session().scalars(
            select(Liaison).where(Liaison.openid.is_not(None), Liaison.active.is_(True)).order_by(Liaison.id))]
        return render_template("sandbox/authorize.html", error=None, args=args, people=people)
    code = _codes().dumps([openid, secrets.token_hex(4)])
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': args.get('state', '')})}")


@bp.route("/api/sns/oauth2/access_token")
def oauth_access_token():
    """Swaps a code for the reader's openid (snsapi_base), once per code."""
    wx = current_app.config["REDSTEWARD"]["wechat"]
    if request.args.get("appid") != wx["appid"] or request.args.get("secret") != wx["appsecret"]:
        return jsonify(errcode=40125, errmsg="invalid appsecret")
    code = request.args.get("code", "")
    try:
        openid, _ = _codes().loads(code, max_age=OAUTH_CODE_SECONDS)
    except (BadSignature, ValueError, TypeError):
        return jsonify(errcode=40029, errmsg="invalid code")
    digest = hashlib.sha256(code.encode()).hexdigest()
    used = get_session().scalars(select(SandboxCall.payload).where(
        SandboxCall.endpoint == "sns/oauth2/access_token", SandboxCall.openid == openid))
    if any(payload.get("code") == digest for payload in used):
        return jsonify(errcode=40163, errmsg="code been used")
    _record("sns/oauth2/access_token", {"openid": openid, "code": digest})
    return jsonify(access_token="sandbox-web-" + secrets.token_hex(8), expires_in=7200,
                   refresh_token="sandbox-refresh-" + secrets.token_hex(8), openid=openid, scope="snsapi_base")


@bp.route("/api/cgi-bin/<path:endpoint>", methods=["GET", "POST"])
def api_call(endpoint: str):
    """Any other API call: recorded, answered as WeChat would answer success."""
    if not request.args.get("access_token"):
        return jsonify(errcode=41001, errmsg="access_token missing")
    # wechatpy posts JSON bytes without a JSON content type, as WeChat accepts.
    payload = request.get_json(force=True, silent=True) or {}
    _record(endpoint, payload)
    if endpoint == "message/template/send":
        return jsonify(errcode=0, errmsg="ok", msgid=int(time.time() * 1000))
    if endpoint == "media/get":
        if request.args.get("media_id", "").startswith("sandbox-voice-"):
            # A real 3-second AMR-NB note (WeChat's voice format), so conversion runs for real.
            return current_app.send_static_file("sandbox-voice.amr")
        return current_app.send_static_file("sandbox-photo.png")
    if endpoint == "qrcode/create":
        return jsonify(ticket="sandbox-" + secrets.token_hex(8), expire_seconds=0,
                       url="http://weixin.qq.com/q/sandbox")
    return jsonify(errcode=0, errmsg="ok")


# --- the simulator -------------------------------------------------------------------

@bp.route("/")
def simulator():
    """The simulator page: pick an openid, click the real menu, chat."""
    services = current_app.extensions["redsteward.services"]
    stewards = get_session().scalars(select(Steward).order_by(Steward.id)).all()
    return render_template("sandbox/simulator.html", menu=services.menus.menu["button"],
                           stewards=stewards)


@bp.route("/send", methods=["POST"])
def send():
    """Builds the XML WeChat would send, signs it, and posts it through the real /wechat path."""
    data = request.get_json(force=True)
    openid = str(data.get("openid") or "").strip()[:64]
    if not openid:
        return jsonify(error="openid required"), 400
    fields = {"ToUserName": "gh_sandbox", "FromUserName": openid, "CreateTime": int(time.time())}
    kind = data.get("kind")
    if kind == "text":
        fields.update(MsgType="text", Content=str(data.get("content", "")))
    elif kind == "click":
        fields.update(MsgType="event", Event="CLICK", EventKey=str(data.get("key", "")))
    elif kind == "subscribe":
        scene = str(data.get("scene") or "")
        fields.update(MsgType="event", Event="subscribe", EventKey=f"qrscene_{scene}" if scene else "")
    elif kind == "scan":
        fields.update(MsgType="event", Event="SCAN", EventKey=str(data.get("scene", "")), Ticket="sandbox")
    elif kind == "location":
        fields.update(MsgType="location", Location_X=str(data.get("lat", "31.3")),
                      Location_Y=str(data.get("lng", "120.7")), Scale="15", Label=str(data.get("label", "")))
    elif kind == "image":
        fields.update(MsgType="image", PicUrl=str(data.get("url") or "/static/sandbox-photo.png"),
                      MediaId="sandbox-media-" + secrets.token_hex(6))
    elif kind == "voice":
        fields.update(MsgType="voice", MediaId="sandbox-voice-" + secrets.token_hex(6), Format="amr",
                      Recognition=str(data.get("recognition", "")))
    else:
        return jsonify(error=f"unknown kind {kind!r}"), 400
    if kind not in ("click", "subscribe", "scan"):
        fields["MsgId"] = str(int(time.time() * 1e6) + secrets.randbelow(1000))
    xml = xmltodict.unparse({"xml": fields})
    reply = _post_signed(xml)
    _flush_outbox()
    return jsonify(reply=reply)


def _post_signed(xml: str) -> dict:
    """Signs (and in safe/compatible mode encrypts) the XML and calls /wechat in-process."""
    wx = current_app.config["REDSTEWARD"]["wechat"]
    ts, nonce = str(int(time.time())), secrets.token_hex(5)
    args = {"timestamp": ts, "nonce": nonce, "signature": sign(wx["token"], ts, nonce)}
    crypto = current_app.extensions.get("redsteward.crypto")
    body = xml
    if crypto is not None and wx["encrypt_mode"] != "plain":
        body = crypto.encrypt_message(xml, nonce, ts)
        encrypted = xmltodict.parse(body)["xml"]
        args.update(encrypt_type="aes", msg_signature=encrypted["MsgSignature"])
    # A fresh app context: the nested request gets, and closes, its own database session.
    with current_app.app_context():
        resp = current_app.test_client().post("/wechat", query_string=args, data=body.encode())
    text = resp.get_data(as_text=True)
    if resp.status_code != 200 or text == "success":
        return {"status": resp.status_code, "type": "none"}
    if args.get("encrypt_type"):
        outer = xmltodict.parse(text)["xml"]
        text = crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    parsed = xmltodict.parse(text)["xml"]
    if parsed["MsgType"] == "news":
        items = parsed["Articles"]["item"]
        items = items if isinstance(items, list) else [items]
        return {"status": 200, "type": "news", "articles": items}
    return {"status": 200, "type": "text", "content": parsed.get("Content", "")}


def _flush_outbox() -> None:
    """Sends what the message queued at once, so the simulator shows template messages live."""
    settings = current_app.config["REDSTEWARD"]
    sessions = current_app.extensions["redsteward.sessions"]
    outbox.dispatch_due(sessions, build_client(settings, sessions), settings, limit=50)
    from .voice import download_job
    download_job(current_app._get_current_object())  # voice notes play on the pages at once


@bp.route("/messages/<openid>")
def messages(openid: str):
    """Template and customer-service messages the stand-in received for an openid."""
    after = request.args.get("after", 0, type=int)
    rows = get_session().scalars(select(SandboxCall).where(SandboxCall.openid == openid,
                                                           SandboxCall.id > after,
                                                           SandboxCall.endpoint.not_like("sns/%"))
                                 .order_by(SandboxCall.id).limit(100)).all()
    return jsonify(messages=[{"id": r.id, "endpoint": r.endpoint, "payload": r.payload,
                              "at": r.created_at.isoformat()} for r in rows])
