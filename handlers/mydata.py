"""我的数据: the privacy notice and consent, what is stored about a resident, its export, and deletion."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Callable

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Resident, ServiceRequest
from models.consent import agree_to_pending, ask_right, has_consented, notice_shown, pending_right

from .context import Context
from .erasure import erase, owned_rows, points_balance
from .registry import action, before_start, on_answer
from .replies import Reply, Text
from .texts import say

VERIFY_FLOW = "verification"
EXPORT_SALT = "mydata-export"

# Per-table exporters: fn(session, resident) -> list of row dicts. A table without one is
# exported generically when it refers to the resident (or to a row of theirs).
EXPORTERS: dict[str, Callable[[Session, Resident], list[dict]]] = {}


def exporter(table: str):
    """Registers how a table's rows about a resident are exported."""
    def decorate(fn):
        EXPORTERS[table] = fn
        return fn
    return decorate


# --- the privacy notice and consent -----------------------------------------------------------

def _privacy(ctx: Context) -> dict:
    """The [privacy] settings."""
    return ctx.services.settings["privacy"]


def _needs_consent(ctx: Context, flow) -> bool:
    """Verification collects personal data; a verified resident's every flow uses it."""
    return flow.name == VERIFY_FLOW or ctx.resident.is_verified


@before_start
def privacy_notice(ctx: Context, flow) -> str | None:
    """Shows the notice above the first question until the resident agrees to this version."""
    version = _privacy(ctx)["notice_version"]
    if not _needs_consent(ctx, flow) or has_consented(ctx.resident, version):
        return None
    again = ctx.resident.consented_version is not None  # agreed to an earlier version
    notice_shown(ctx.session, ctx.resident.id, version, flow.name, ctx.now)
    settings = _privacy(ctx)
    return say("privacy_notice", version=version, again=again,
               request_years=f"{round(settings['request_retention_days'] / 365, 1):g}",
               media_days=settings["media_retention_days"])


@on_answer
def consent_by_answering(ctx: Context, flow, step) -> None:
    """Answering after the notice (it says so) is the resident's agreement; recorded with the time."""
    version = _privacy(ctx)["notice_version"]
    if not _needs_consent(ctx, flow) or has_consented(ctx.resident, version):
        return
    within = timedelta(minutes=ctx.services.settings["app"]["flow_idle_minutes"])
    agree_to_pending(ctx.session, ctx.resident, version, flow.name, ctx.now, within)


# --- what is stored: a registry of exporters, and a generic fallback --------------------------


def _plain(value):
    """A JSON-friendly copy of a column value."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


@exporter("residents")
def export_profile(session: Session, resident: Resident) -> list[dict]:
    """The profile, decrypted for its owner."""
    return [{"openid": resident.openid, "name": resident.name, "mobile": resident.mobile,
             "id_number": resident.id_number, "address": resident.address,
             "estate": resident.estate.name if resident.estate else None,
             "verified_at": _plain(resident.verified_at), "party_member": resident.party_member,
             "created_at": _plain(resident.created_at)}]


def collect(session: Session, resident: Resident) -> dict[str, list[dict]]:
    """Everything stored about a resident, by table: registered exporters, else every column."""
    out: dict[str, list[dict]] = {}
    for table, clause in owned_rows(session, resident.id).items():
        if table.name in EXPORTERS:
            rows = EXPORTERS[table.name](session, resident)
        else:
            rows = [{k: _plain(v) for k, v in row._mapping.items()}
                    for row in session.execute(select(table).where(clause))]
        if rows:
            out[table.name] = rows
    return out


def _digest(openid: str) -> str:
    """A short digest of the openid, so a link dies with the account it was made for."""
    return hashlib.sha256(openid.encode()).hexdigest()[:16]


def export_token(settings: dict, resident: Resident) -> str:
    """A signed token for the resident's export page; it expires (see resident_for_token)."""
    signer = URLSafeTimedSerializer(settings["app"]["secret_key"], salt=EXPORT_SALT)
    return signer.dumps({"r": resident.id, "o": _digest(resident.openid)})


def resident_for_token(session: Session, settings: dict, token: str) -> Resident | None:
    """The resident an export link was made for, if it is genuine, fresh and the account lives."""
    signer = URLSafeTimedSerializer(settings["app"]["secret_key"], salt=EXPORT_SALT)
    try:
        data = signer.loads(token, max_age=settings["privacy"]["export_link_minutes"] * 60)
    except BadSignature:
        return None
    resident = session.get(Resident, data.get("r"))
    if resident is None or _digest(resident.openid) != data.get("o"):
        return None
    return resident


@action("mydata.show")
def show(ctx: Context) -> Reply:
    """我的数据: what is kept, a short-lived link to all of it, and how to correct or delete it."""
    data = collect(ctx.session, ctx.resident)
    counts = {table: len(rows) for table, rows in data.items()}
    ask_right(ctx.session, ctx.resident.id, "export", ctx.now).done_at = ctx.now
    url = f"{ctx.services.public_url}/mydata/{export_token(ctx.services.settings, ctx.resident)}"
    return Text(say("mydata_summary", counts=counts, url=url, r=ctx.resident,
                    minutes=_privacy(ctx)["export_link_minutes"]))


# --- deletion (handlers.erasure does the work) --------------------------------------------------

@action("mydata.delete_ask")
def delete_ask(ctx: Context) -> Reply:
    """The warning: what goes, what stays, points forfeited; asks for 确认删除."""
    ask_right(ctx.session, ctx.resident.id, "deletion", ctx.now)
    requests = ctx.session.scalar(select(func.count(ServiceRequest.id))
                                  .where(ServiceRequest.resident_id == ctx.resident.id))
    return Text(say("mydata_delete_warning", points=points_balance(ctx.session, ctx.resident.id),
                    requests=requests, minutes=_privacy(ctx)["deletion_confirm_minutes"]))


@action("mydata.delete_confirm")
def delete_confirm(ctx: Context) -> Reply:
    """确认删除 within the time allowed: the account is anonymised; says what remains and why."""
    within = timedelta(minutes=_privacy(ctx)["deletion_confirm_minutes"])
    asked = pending_right(ctx.session, ctx.resident.id, "deletion", ctx.now, within)
    if asked is None:
        return Text(say("mydata_delete_not_asked"))
    ctx.conversation.clear()
    summary = erase(ctx.session, ctx.resident, ctx.services.settings, ctx.now)
    asked.done_at = ctx.now
    return Text(say("mydata_deleted", **summary))
