"""The outbox dispatcher: sends queued template messages, kf messages and e-mails, with retries."""
from __future__ import annotations

import base64
import logging
import smtplib
import time
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import requests
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from wechatpy.exceptions import WeChatClientException

from models import OutboxMessage, utcnow

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
GIVE_UP_CODES = {43004, 40003, 43101, 47003, 40037}  # unsubscribed, bad openid, refused, bad data, bad template
DEFER_CODES = {45009, 45047}  # daily quota reached, too many kf messages
DEFER_FOR = timedelta(hours=1)


class Permanent(Exception):
    """A send that can never succeed; recorded as failed for the stewards to see."""


class Deferred(Exception):
    """A send to try much later (quota)."""


def dispatch_due(sessions: sessionmaker, client, settings: dict, limit: int = 200, now=None) -> dict:
    """Claims due messages, sends each, records the outcome; returns counts by outcome."""
    now = now or utcnow()
    claimed = _claim(sessions, limit, now)
    counts = {"sent": 0, "retry": 0, "failed": 0, "deferred": 0}
    rate = settings["scheduler"]["outbox_rate_per_second"]
    started = time.monotonic()
    for n, (msg_id, kind, recipient, payload, key, attempts) in enumerate(claimed):
        if rate:
            # Pace sends to the configured rate so WeChat's limits are not hit.
            delay = n / rate - (time.monotonic() - started)
            if delay > 0:
                time.sleep(delay)
        outcome, error = _send_one(client, settings, kind, recipient, payload, key)
        counts[_record(sessions, msg_id, outcome, error, attempts, settings)] += 1
    return counts


def _claim(sessions: sessionmaker, limit: int, now) -> list[tuple]:
    """Marks due rows as being sent, with a lease, so a crashed sender's rows come back."""
    with sessions() as s, s.begin():
        rows = s.scalars(select(OutboxMessage)
                         .where(OutboxMessage.status.in_(("pending", "sending")),
                                OutboxMessage.next_attempt_at <= now)
                         .order_by(OutboxMessage.id).limit(limit)
                         .with_for_update(skip_locked=True)).all()
        out = []
        for row in rows:
            row.status = "sending"
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            out.append((row.id, row.kind, row.recipient, row.payload, row.idempotency_key, row.attempts))
        return out


def _send_one(client, settings, kind, recipient, payload, key) -> tuple[str, str | None]:
    """Sends one message; returns (outcome, error text)."""
    try:
        if kind == "template":
            client.post("message/template/send", data={
                "touser": recipient, "template_id": payload["template_id"], "url": payload.get("url"),
                "data": payload["data"], "client_msg_id": key[:64]})
        elif kind == "kf_text":
            client.post("message/custom/send", data={
                "touser": recipient, "msgtype": "text", "text": {"content": payload["content"]}})
        elif kind == "email":
            send_email(settings["mail"], payload, key)
        else:
            raise Permanent(f"unknown kind {kind}")
        return "sent", None
    except WeChatClientException as exc:
        if exc.errcode is None:  # wechatpy wraps HTTP errors (5xx) without a code
            return "retry", f"http {getattr(exc.response, 'status_code', '?')}"
        if exc.errcode in GIVE_UP_CODES:
            return "failed", f"wechat {exc.errcode}: {exc.errmsg}"
        if exc.errcode in DEFER_CODES:
            return "deferred", f"wechat {exc.errcode}: {exc.errmsg}"
        return "retry", f"wechat {exc.errcode}: {exc.errmsg}"
    except smtplib.SMTPRecipientsRefused as exc:
        return "failed", f"smtp refused: {list(exc.recipients)}"
    except (requests.RequestException, smtplib.SMTPException, OSError) as exc:
        return "retry", f"{type(exc).__name__}: {exc}"
    except Permanent as exc:
        return "failed", str(exc)


def _record(sessions: sessionmaker, msg_id: int, outcome: str, error: str | None, attempts: int,
            settings: dict) -> str:
    """Stores the outcome (retries back off exponentially, up to the configured attempts); returns it."""
    now = utcnow()
    with sessions() as s, s.begin():
        row = s.get(OutboxMessage, msg_id)
        row.last_error = error
        if outcome == "sent":
            row.status, row.sent_at = "sent", now
        elif outcome == "deferred":
            # A used-up daily quota is not the message's fault: wait, without spending an attempt.
            row.status, row.attempts, row.next_attempt_at = "pending", max(0, attempts - 1), now + DEFER_FOR
        elif outcome == "failed" or attempts >= settings["scheduler"]["outbox_max_attempts"]:
            row.status, outcome = "failed", "failed"
            logger.warning("outbox %s failed for good: %s", msg_id, error)
        else:
            row.status = "pending"
            row.next_attempt_at = now + timedelta(seconds=min(3600, 2 ** attempts))
    return outcome


def send_email(mail: dict, payload: dict, key: str) -> None:
    """Sends one e-mail with a real Cc header; Message-ID from the key lets clients de-duplicate."""
    msg = EmailMessage()
    msg["From"] = payload.get("sender") or mail["sender"]
    msg["To"] = ", ".join(payload["to"])
    if payload.get("cc"):
        msg["Cc"] = ", ".join(payload["cc"])
    msg["Subject"] = payload["subject"]
    msg["Message-ID"] = make_msgid(idstring=key.replace(":", "."), domain="redsteward")
    msg.set_content(payload["body"])
    if payload.get("html"):
        msg.add_alternative(payload["html"], subtype="html")
    for att in payload.get("attachments") or []:

        maintype, subtype = att["mime"].split("/", 1)
        msg.add_attachment(base64.b64decode(att["data"]), maintype=maintype, subtype=subtype,
                           filename=att["filename"])
    with smtplib.SMTP(mail["host"], mail["port"], timeout=mail["timeout_seconds"]) as smtp:
        if mail["starttls"]:
            smtp.starttls()
        if mail["username"]:
            smtp.login(mail["username"], mail["password"])
        smtp.send_message(msg)
