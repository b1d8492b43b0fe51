"""POST/GET /wechat: signature, decryption and parsing; the dispatcher does the rest."""
from __future__ import annotations

import hmac
import re
import struct
import logging
import time
from hashlib import sha1
from xml.parsers.expat import ExpatError

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy.exc import DBAPIError
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import ArticlesReply, TextReply

from handlers import dispatch
from handlers.replies import News, NoReply, Text

from .db import get_session

logger = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)

PARSE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, ExpatError)
# Openids and account ids: one short word (WeChat's are ASCII; the simulator lets a person type any
# name). A repeated tag parses as a list, "]]>" would break the reply's CDATA, and the column holds 64.
ACCOUNT_ID = re.compile(r"[^\s<>&\[\]\"']{1,64}")


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted parts joined."""
    return sha1("".join(sorted(parts)).encode()).hexdigest()


def _signature_ok(token: str) -> bool:
    """Checks `signature` in constant time (wechatpy's check uses !=)."""
    a = request.args
    expected = sign(token, a.get("timestamp", ""), a.get("nonce", ""))
    return hmac.compare_digest(expected, a.get("signature", ""))


@bp.route("/wechat", methods=["GET", "POST"])
def wechat():
    """The endpoint WeChat calls: URL verification on GET, every message on POST."""
    settings = current_app.config["REDSTEWARD"]
    wx = settings["wechat"]
    if not _signature_ok(wx["token"]):
        logger.warning("rejected: bad signature from %s", request.remote_addr)
        abort(403)
    if request.method == "GET":
        return Response(request.args.get("echostr", ""), mimetype="text/plain")
    window = settings["app"]["timestamp_window_seconds"]
    if window and not _fresh(request.args.get("timestamp", ""), window):
        logger.warning("rejected: timestamp outside the %ss window", window)
        abort(403)
    body = request.get_data(cache=False)
    if not body:
        abort(400)
    upper = body.upper()  # one copy of the body, not one per check
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        logger.warning("rejected: XML with a DOCTYPE or entity")
        abort(400)
    encrypted = request.args.get("encrypt_type") == "aes"
    if wx["encrypt_mode"] == "safe" and not encrypted:
        logger.warning("rejected: plaintext message while in safe mode")
        abort(400)
    crypto = current_app.extensions.get("redsteward.crypto")
    xml = body
    if encrypted:
        if crypto is None:
            abort(400)
        try:
            xml = crypto.decrypt_message(body, request.args.get("msg_signature", ""),
                                         request.args.get("timestamp", ""), request.args.get("nonce", ""))
        except InvalidSignatureException:
            logger.warning("rejected: bad msg_signature")
            abort(403)
        except (InvalidAppIdException, struct.error, *PARSE_ERRORS, UnicodeDecodeError) as exc:
            logger.warning("rejected: undecryptable body (%s)", type(exc).__name__)
            abort(400)
    try:
        msg = parse_message(xml)
        if msg is None or not _account_id(getattr(msg, "source", None)):
            raise ValueError("no FromUserName")
        if msg.target is not None and not _account_id(msg.target):
            raise ValueError("bad ToUserName")
        # wechatpy converts fields on first access: a bad number fails here, not in the dispatcher.
        int(msg.time), int(getattr(msg, "id", None) or 0)
    except (*PARSE_ERRORS, UnicodeDecodeError) as exc:
        logger.warning("rejected: unparsable message (%s)", type(exc).__name__)
        abort(400)
    try:
        reply, _retry = dispatch.handle(get_session(), msg, current_app.extensions["redsteward.services"])
    except DBAPIError:
        logger.exception("database unavailable; WeChat will retry")
        abort(503)
    return _render(reply, msg, crypto if encrypted else None)


def _account_id(value) -> bool:
    """True for an openid or account id as WeChat writes them."""
    return isinstance(value, str) and ACCOUNT_ID.fullmatch(value) is not None


def _fresh(timestamp: str, window: int) -> bool:
    """True if the signed timestamp is within the replay window."""
    try:
        return abs(time.time() - int(timestamp)) <= window
    except ValueError:
        return False


def cdata_safe(text: str) -> str:
    """Splits `]]>` so a reply can never close its CDATA section early."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def _render(reply, msg, crypto: WeChatCrypto | None) -> Response:
    """Turns a handler's reply into WeChat's XML, encrypted when the message was."""
    if isinstance(reply, NoReply) or (isinstance(reply, Text) and not reply.content.strip()):
        return Response("success", mimetype="text/plain")
    if isinstance(reply, News):
        out = ArticlesReply(message=msg)
        for a in reply.articles[:8]:
            out.add_article({"title": cdata_safe(a.title), "description": cdata_safe(a.description),
                             "image": a.image, "url": a.url})
    else:
        out = TextReply(message=msg, content=cdata_safe(reply.content))
    xml = out.render()
    if crypto is not None:
        xml = crypto.encrypt_message(xml, request.args.get("nonce", ""), str(int(time.time())))
    return Response(xml, mimetype="application/xml")
