"""The bench's floor: Red Steward's webhook with the conversation logic taken out.

`gunicorn … 'bench.floor:create_app()'` serves the real app (signature, parsing, Flask, the
access line, the reply's XML) whose dispatcher does only what any stateful bot must do per
message: load the resident's conversation with Core, create both rows on first contact, save the
conversation, record the delivery for de-duplication, commit, and answer one fixed text. No
flow, no consent, no ORM objects, no templates rendered per message.

It is never deployed. `make bench` runs it beside the real bot so the table shows how much of
the gap to the anchors belongs to the step's own work and how much to the stack underneath.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select

from handlers import dispatch
from handlers.replies import Text
from handlers.texts import say
from models import Conversation, ProcessedMessage, Resident, utcnow
from models.resident import first_contact

_r, _c, _p = Resident.__table__.c, Conversation.__table__.c, ProcessedMessage.__table__.c
_LOAD = (select(_r.id, _c.version, select(_p.key).where(_p.key == bindparam("key")).scalar_subquery())
         .join_from(Resident.__table__, Conversation.__table__, _c.resident_id == _r.id)
         .where(_r.openid == bindparam("openid")))


def handle(session, msg, services, now=None):
    """Loads, saves and records one delivery; the same reply every time."""
    now = now or utcnow()
    key = dispatch.dedup_key(msg)
    params = {"openid": msg.source, "key": key}
    conn = session.connection()
    row = conn.execute(_LOAD, params).first()
    if row is None:
        first_contact(session, msg.source, now)
        row = conn.execute(_LOAD, params).one()
    resident_id, version, done = row
    if done is not None:
        session.rollback()
        return REPLY, True
    values = {f"v_{name}": None for name in dispatch._CONVERSATION_COLUMNS}
    values.update(rid=resident_id, v_data={"seen": msg.time}, v_history=[], v_version=version + 1,
                  v_updated_at=now)
    conn.execute(dispatch._SAVE_CONVERSATION, values)
    conn.execute(dispatch._RECORD_DELIVERY, {"key": key, "reply": REPLY.to_dict(), "now": now})
    session.commit()
    return REPLY, False


REPLY = Text(say("fallback"))


def create_app():
    """The app of wsgi.py with this dispatcher in place of the real one (gunicorn's factory)."""
    dispatch.handle = handle  # the webhook looks dispatch.handle up on every request
    from bot import create_app as create
    return create()
