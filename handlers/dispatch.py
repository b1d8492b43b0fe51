"""The dispatcher: one incoming message or event in, one reply out, exactly once."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Conversation, ProcessedMessage, Resident, utcnow
from models.base import as_loaded, from_values
from models.resident import first_contact, write_now

from . import flows, observe, ratelimit, rating, registry, stewarding
from .context import Context, Services
from .replies import NoReply, Reply, Text, from_dict
from .texts import say

logger = logging.getLogger(__name__)

SILENT_EVENTS = {"view", "location", "unsubscribe", "templatesendjobfinish", "view_miniprogram"}
# last_message_at opens WeChat's 48-hour customer-service window; a minute's staleness only ever
# closes it early, and saves an UPDATE on nearly every message of a conversation.
LAST_SEEN_EVERY = timedelta(minutes=1)

# A returning resident in one round trip: their row, their conversation locked (FOR UPDATE OF on
# PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), and the reply already given to
# this delivery, if any. Built once; each message only binds its values. On PostgreSQL a twin
# delivery that waited for the lock may not see the first one's processed row (the subquery reads
# the statement's snapshot): its insert then conflicts and it answers with the stored
# reply (the IntegrityError branch below), its own work rolled back.
# Read with Core, not as ORM entities (a third of the cost of the ORM's load): the resident becomes
# a persistent object without another query, the conversation a plain object the dispatcher saves.
_residents, _conversations = Resident.__table__, Conversation.__table__
_LOAD = (select(*_residents.c, *_conversations.c,
                select(ProcessedMessage.reply).where(ProcessedMessage.key == bindparam("key"))
                .scalar_subquery().label("done"),
                select(ProcessedMessage.key).where(ProcessedMessage.key == bindparam("key"))
                .scalar_subquery().label("done_key"))
         .join_from(_residents, _conversations, _conversations.c.resident_id == _residents.c.id)
         .where(_residents.c.openid == bindparam("openid"))
         .with_for_update(of=_conversations))
_RESIDENT_KEYS = [Resident.__mapper__.get_property_by_column(c).key for c in _residents.c]
_CONVERSATION_KEYS = [Conversation.__mapper__.get_property_by_column(c).key for c in _conversations.c]
_SPLIT = len(_RESIDENT_KEYS)


# The two rows every message writes, as two statements built once (the unit of work would spend
# more than the database does). Values are bound as v_<column>: SQLAlchemy keeps the columns' names.
_processed = ProcessedMessage.__table__
_CONVERSATION_COLUMNS = [c.name for c in _conversations.c if c.name != "resident_id"]
_SAVE_CONVERSATION = (update(_conversations).where(_conversations.c.resident_id == bindparam("rid"))
                      .values({name: bindparam(f"v_{name}", type_=_conversations.c[name].type)
                               for name in _CONVERSATION_COLUMNS}))
_RECORD_DELIVERY = insert(_processed).values(
    key=bindparam("key"), reply=bindparam("reply", type_=_processed.c.reply.type),
    created_at=bindparam("now", type_=_processed.c.created_at.type))


def _conversation_values(conv: Conversation, now: datetime) -> dict:
    """The conversation row as the handlers left it, its version moved on (and its time, in a flow)."""
    values = {f"v_{name}": getattr(conv, name) for name in _CONVERSATION_COLUMNS}
    values.update(rid=conv.resident_id, v_version=conv.version + 1)
    if conv.flow:
        values["v_updated_at"] = now
    return values


def sender_digest(openid: str) -> str:
    """The sender in de-duplication keys: a digest, so an erased account leaves no openid there."""
    return hashlib.sha256(openid.encode()).hexdigest()[:24]


def dedup_key(msg) -> str:
    """One key per delivery WeChat may retry: MsgId (+sender, time) or the event's fields."""
    sender = sender_digest(msg.source)
    if msg.type == "event":
        key = getattr(msg, "key", None) or msg._data.get("EventKey") or ""
        return f"e:{sender}:{msg.time}:{msg.event}:{key}"[:200]
    return f"m:{sender}:{msg.id}:{msg.time}"[:200]


def handle(session: Session, msg, services: Services, now: datetime | None = None) -> tuple[Reply, bool]:
    """Handles one message in its own transaction; returns (reply, was_a_retry)."""
    now = now or utcnow()
    if ratelimit.exceeded(services.settings, msg):
        # Refused before any row is read or written: a flood stores nothing.
        observe.notify("rate_limited", msg)
        return Text(say("rate_limited")), False
    key = dedup_key(msg)
    params = {"openid": msg.source, "key": key}
    conn = session.connection()
    row = conn.execute(_LOAD, params).first()
    if row is None:  # first contact (or a resident without a conversation row yet)
        first_contact(session, msg.source, now)
        row = conn.execute(_LOAD, params).one()
    *columns, done_reply, done_key = row
    if done_key is not None:
        reply = from_dict(done_reply)
        session.rollback()
        observe.notify("retry", msg)
        return reply, True
    resident = as_loaded(session, Resident, dict(zip(_RESIDENT_KEYS, columns[:_SPLIT])))
    conv = from_values(Conversation, dict(zip(_CONVERSATION_KEYS, columns[_SPLIT:])))
    ctx = Context(session=session, resident=resident, conversation=conv, message=msg,
                  services=services, now=now)
    before = (conv.flow, conv.step)
    try:
        reply = route(ctx)
    except Exception:
        logger.exception("handler failed for %s message; rolled back", msg.type)
        session.rollback()
        observe.notify("error", msg)
        return Text(say("error")), False
    ended = observe.flow_event(before, (conv.flow, conv.step), ctx.text)
    seen = msg.type != "event" and (resident.last_message_at is None
                                    or now - resident.last_message_at >= LAST_SEEN_EVERY)
    try:
        # The unit of work flushes only what the handlers added (a request, a timeline entry…).
        if seen:
            write_now(session, resident, "last_message_at", now)
        session.execute(_SAVE_CONVERSATION, _conversation_values(conv, now))
        session.execute(_RECORD_DELIVERY, {"key": key, "reply": reply.to_dict(), "now": now})
        session.commit()
    except IntegrityError:
        # Another worker finished the same delivery first: answer with its reply.
        session.rollback()
        done = session.get(ProcessedMessage, key)
        reply = from_dict(done.reply) if done else NoReply()
        session.rollback()  # end the read so no lock outlives the delivery
        observe.notify("retry", msg)
        return reply, True
    observe.notify("handled", msg, ended)
    return reply, False


def route(ctx: Context) -> Reply:
    """Decides what a message means: an event, a step of a flow, a keyword, or a hint."""
    msg = ctx.message
    if msg.type == "event":
        return _event(ctx)
    expired = flows.expire_if_idle(ctx)
    reply = _message(ctx)
    if expired is not None and isinstance(reply, Text):
        return Text(say("expired", title=expired) + "\n\n" + reply.content)
    return reply


def _message(ctx: Context) -> Reply:
    """A message from the resident: continue a flow, or start something."""
    staff_reply = stewarding.handle(ctx)  # a steward's or liaison's command comes first
    if staff_reply is not None:
        return staff_reply
    flow = flows.active_flow(ctx)
    if flow is not None:
        return flows.advance(ctx, flow)
    if ctx.message_type == "text":
        rated = rating.maybe_rate(ctx)  # "1/2/3" answers the rating question, when one is pending
        if rated is not None:
            return rated
        target = _keyword(ctx)
        if target is not None:
            return run_target(ctx, target)
        if "search" in registry.ACTIONS:
            return registry.ACTIONS["search"](ctx)
        return Text(say("fallback"))
    handler = registry.ACTIONS.get(f"message.{ctx.message_type}")
    if handler is not None:
        return handler(ctx)
    return Text(say("unsupported", kind=ctx.message_type))


def _keyword(ctx: Context) -> tuple[str, str] | None:
    """A typed keyword from menus.yaml (exact, or the first word of the message)."""
    keywords = ctx.services.menus.keywords
    text = ctx.text
    if text in keywords:
        return keywords[text]
    first = text.split(maxsplit=1)[0] if text else ""
    return keywords.get(first)


def run_target(ctx: Context, target: tuple[str, str]) -> Reply:
    """Starts a flow or runs an action named in menus.yaml."""
    kind, name = target
    if kind == "flow":
        return flows.start(ctx, ctx.services.menus.flows[name])
    return registry.ACTIONS[name](ctx)


def _event(ctx: Context) -> Reply:
    """Events: subscribe and scans, menu clicks; the rest need no answer."""
    event = ctx.message.event
    if event in ("subscribe", "subscribe_scan", "scan"):
        ctx.resident.subscribed = True
        return registry.ACTIONS["event.subscribe"](ctx)
    if event == "unsubscribe":
        ctx.resident.subscribed = False
        ctx.conversation.clear()
        return NoReply()
    if event == "click":
        target = ctx.services.menus.target_for_click(ctx.message.key)
        if target is None:
            return Text(say("menu_outdated"))
        return run_target(ctx, target)
    handler = registry.ACTIONS.get(f"event.{event}")
    if handler is not None:
        return handler(ctx)
    if event not in SILENT_EVENTS:
        logger.info("unhandled event %s", event)
    return NoReply()
