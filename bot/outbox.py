"""The outbox dispatcher: sends queued template messages, kf messages and e-mails, with retries.

Exactly once, as far as WeChat allows: a batch of due messages is claimed in one transaction
(status "sending", attempts + 1, a lease of LEASE under a fresh owner id) and committed before
any call, so a message is never sent by two dispatchers at once. Sends run on a few threads
sharing one keep-alive HTTP session and the access token, paced by `bot.pacing`; one recipient's
messages go out in the order they were queued, on one thread; outcomes are
recorded in batched updates that only the lease's owner may make. A dispatcher killed between
a send and its record leaves the row "sending" until the lease runs out; then it is sent again
with the same `client_msg_id`, which WeChat delivers once (for ten minutes; the lease is one).
"""
from __future__ import annotations

import base64
import logging
import smtplib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker
from wechatpy.exceptions import WeChatClientException

from models import OutboxMessage, utcnow

from .pacing import pacer_for

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
# No send starts later than this into a lease, so its outcome is recorded before the lease ends.
SEND_WINDOW = LEASE * 0.75
GIVE_UP_CODES = {43004, 40003, 43101, 47003, 40037}  # unsubscribed, bad openid, refused, bad data, bad template
DEFER_CODES = {45009, 45047}  # daily quota reached, too many kf messages
DEFER_FOR = timedelta(hours=1)
RECORD_EVERY = 50  # outcomes per recording transaction…
RECORD_SECONDS = 0.25  # …or sooner, so a crash leaves few sent messages unrecorded


class Permanent(Exception):
    """A send that can never succeed; recorded as failed for the stewards to see."""


class Deferred(Exception):
    """A send to try much later (quota)."""


@dataclass(frozen=True)
class Claimed:
    """A message this dispatcher holds the lease of."""

    id: int
    kind: str
    recipient: str
    payload: dict
    key: str
    attempts: int


def dispatch_due(sessions: sessionmaker, client, settings: dict, limit: int = 200, now=None) -> dict:
    """Claims due messages, sends them on a few threads, records the outcomes; returns counts by outcome."""
    now = now or utcnow()
    sch = settings["scheduler"]
    pacer = pacer_for(settings)
    if sch["outbox_rate_per_second"]:
        # Never claim more than the rate lets out before the send window closes.
        limit = min(limit, max(1, int(sch["outbox_rate_per_second"] * SEND_WINDOW.total_seconds())))
    owner = uuid.uuid4().hex
    claimed = _claim(sessions, limit, now, owner)
    counts = {"sent": 0, "retry": 0, "failed": 0, "deferred": 0}
    if not claimed:
        return counts
    closes = time.monotonic() + SEND_WINDOW.total_seconds()
    closed = threading.Event()
    if any(msg.kind != "email" for msg in claimed):
        _warm_token(client)

    def send(msg: Claimed) -> tuple[Claimed, str, str | None]:
        """Waits for a send slot and sends; 'unsent' when the lease's send window closed first."""
        if closed.is_set():
            return msg, "unsent", None
        wait = pacer.reserve() if pacer else 0.0
        if time.monotonic() + wait > closes:
            closed.set()  # later messages would not fit either: take no more slots
            return msg, "unsent", None
        if wait > 0:
            time.sleep(wait)
        return (msg, *_send_one(client, settings, msg.kind, msg.recipient, msg.payload, msg.key))

    # One person's messages go out in the order they were queued (the 已办结 notice before the
    # rating question), so each recipient's messages are sent one after another on one thread.
    queues: dict[str, list[Claimed]] = {}
    for msg in claimed:  # claimed in id order
        queues.setdefault(msg.recipient, []).append(msg)

    pending: list[tuple[Claimed, str, str | None]] = []
    flushed = time.monotonic()
    with ThreadPoolExecutor(max(1, min(sch["outbox_threads"], len(queues))),
                            thread_name_prefix="outbox") as pool:
        for done in as_completed([pool.submit(lambda q: [send(m) for m in q], q) for q in queues.values()]):
            pending.extend(done.result())
            if len(pending) >= RECORD_EVERY or time.monotonic() - flushed >= RECORD_SECONDS:
                _record(sessions, owner, pending, settings, counts)
                pending, flushed = [], time.monotonic()
    _record(sessions, owner, pending, settings, counts)
    return counts


def _warm_token(client) -> None:
    """Fetches the shared token once before the threads start, so none waits for it inside its send slot."""
    try:
        client.access_token
    except (requests.RequestException, WeChatClientException) as exc:
        # Each send will meet the same trouble and be recorded as a retry.
        logger.warning("outbox: no access token (%s)", type(exc).__name__)


def _claim(sessions: sessionmaker, limit: int, now, owner: str) -> list[Claimed]:
    """Marks due rows as being sent under a lease held by `owner`, in one transaction."""
    t = OutboxMessage
    with sessions() as s, s.begin():
        rows = s.execute(select(t.id, t.kind, t.recipient, t.payload, t.idempotency_key, t.attempts)
                         .where(t.status.in_(("pending", "sending")), t.next_attempt_at <= now)
                         .order_by(t.id).limit(limit)
                         .with_for_update(skip_locked=True)).all()
        if rows:
            s.execute(update(t).where(t.id.in_([r.id for r in rows]))
                      .values(status="sending", attempts=t.attempts + 1, next_attempt_at=now + LEASE,
                              lease_owner=owner)
                      .execution_options(synchronize_session=False))
    return [Claimed(r.id, r.kind, r.recipient, r.payload, r.idempotency_key, r.attempts + 1) for r in rows]


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


def _record(sessions: sessionmaker, owner: str, results: list, settings: dict, counts: dict) -> None:
    """Stores outcomes in one transaction, for rows `owner` still holds; adds them to `counts`.

    Retries back off exponentially, up to the configured attempts; a used-up quota waits
    without spending an attempt; a message not sent because the send window closed is due again.
    """
    if not results:
        return
    now = utcnow()
    t = OutboxMessage
    with sessions() as s, s.begin():
        held = set(s.scalars(select(t.id).where(t.id.in_([m.id for m, _, _ in results]), t.lease_owner == owner)
                             .with_for_update()))
        rows = []
        for msg, outcome, error in results:
            if msg.id not in held:
                # Another dispatcher took the row after the lease ran out; its outcome stands.
                logger.warning("outbox %s: lease lost before its outcome (%s) was recorded", msg.id, outcome)
                continue
            row = {"id": msg.id, "lease_owner": None}
            if outcome == "unsent":
                # Never tried: due again at once, the attempt given back.
                row.update(status="pending", attempts=msg.attempts - 1, next_attempt_at=now)
                rows.append(row)
                continue
            row["last_error"] = error
            if outcome == "sent":
                row.update(status="sent", sent_at=now)
            elif outcome == "deferred":
                # A used-up daily quota is not the message's fault: wait, without spending an attempt.
                row.update(status="pending", attempts=max(0, msg.attempts - 1), next_attempt_at=now + DEFER_FOR)
            elif outcome == "failed" or msg.attempts >= settings["scheduler"]["outbox_max_attempts"]:
                row["status"], outcome = "failed", "failed"
                logger.warning("outbox %s failed for good: %s", msg.id, error)
            else:
                row.update(status="pending", next_attempt_at=now + timedelta(seconds=min(3600, 2 ** msg.attempts)))
            rows.append(row)
            counts[outcome] += 1
        if rows:
            s.execute(update(t), rows)


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
