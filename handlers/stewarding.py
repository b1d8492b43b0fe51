"""Stewards and liaisons at work from WeChat: to-do list, view, classify, route, reply, resolve, escalate.

Commands (the number is the request's 编号):
  待办 · 查看 <编号> · 分类 <编号> <类型> <类别> · 派 <编号> [<单位>] · 转 <编号> <单位>
  回复 <编号> <内容> · 办结 <编号> <说明> · 升级 <编号> <原因> · 关闭 <编号> <重复|不属于|撤回> <说明>
  代录 <走访|会议|来访|电话> <小区> <描述> · 发送失败 · 红管帮助 · 工作台
The same operations serve the mobile page (`perform`) and the console (`record_offline`).
"""
from __future__ import annotations

import re
from dataclasses import replace
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import Estate, Liaison, Organisation, OutboxMessage, ServiceRequest, Steward, file_request, routing
from models import workflow as wf
from models.labels import label, labels_of
from models.request import OPEN_STATUSES, TYPES
from models.deadlines import days_for_kind
from models.media import voice_of_request
from models.timeline import timeline_of

from . import request_notices as notices
from . import triage
from .context import Context, Services
from .replies import Reply, Text
from .request_links import page_url
from .texts import say

CHANNEL_WORDS = {"走访": "visit", "会议": "meeting", "来访": "walk_in", "电话": "phone"}
CLOSE_WORDS = {"重复": "duplicate", "不属于": "not_our_remit", "不属于受理范围": "not_our_remit", "撤回": "withdrawn"}
MOBILE_RE = re.compile(r"^1\d{10}$")
# "派 <编号> 物业 5天": a steward's own deadline, in working days, overrides the routing rules.
DAYS_RE = re.compile(r"^(.*?)\s*(\d{1,2})\s*(?:个工作日|工作日|天)$")
TODO_LIMIT = 10


@dataclass(frozen=True)
class Staff:
    """A steward or a liaison, recognised by openid."""

    kind: str  # steward | liaison
    id: int
    openid: str
    label: str
    community_id: int | None = None
    organisation_id: int | None = None

    @property
    def actor(self) -> wf.Actor:
        """The actor written to the timeline."""
        return wf.Actor(self.kind, self.id, self.label)


def steward_label(steward: Steward) -> str:
    """Who a steward is on a timeline: their community and role (星湖社区 红管负责人)."""
    return f"{steward.community.name} {label('actor', 'steward')}"


def type_words() -> dict[str, str]:
    """Words a steward may type for a type: its label, the label without 类, or the code name."""
    shown = labels_of("request_type")
    return {**{word.removesuffix("类"): code for code, word in shown.items()},
            **{word: code for code, word in shown.items()}, **{code: code for code in TYPES}}


def staff_for(session: Session, openid: str) -> Staff | None:
    """The steward or active liaison with this openid, if any."""
    steward = session.scalar(select(Steward).where(Steward.openid == openid))
    if steward is not None:
        return Staff("steward", steward.id, openid, steward_label(steward),
                     community_id=steward.community_id)
    liaison = session.scalar(select(Liaison).where(Liaison.openid == openid, Liaison.active.is_(True)))
    if liaison is not None:
        return Staff("liaison", liaison.id, openid, liaison.organisation.name,
                     organisation_id=liaison.organisation_id)
    return None


def may_see(staff: Staff, req: ServiceRequest) -> bool:
    """Stewards see their community's requests; liaisons those routed to their organisation."""
    if staff.kind == "steward":
        return req.community_id == staff.community_id
    return req.handler_id == staff.organisation_id


# Actions a liaison may take on what is routed to them; stewards may take them all.
LIAISON_ACTIONS = {"answer", "resolve", "escalate", "transfer"}


class Refused(Exception):
    """An operation refused before reaching the state machine; `reply` is the kind wording."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def perform(session: Session, services: Services, staff: Staff, req: ServiceRequest, action: str,
            now: datetime, **args) -> str:
    """Runs one staff action with its notices; returns the confirmation text. Raises Refused."""
    if not may_see(staff, req):
        raise Refused(say("steward_not_yours", ref=req.ref))
    if staff.kind == "liaison" and action not in LIAISON_ACTIONS:
        raise Refused(say("steward_not_allowed", ref=req.ref))
    actor = staff.actor
    try:
        if action == "classify":
            wf.classify(session, req, actor, args["type"], args["category"], now)
            hint = routing.suggest(session, _rules(), req)
            hint = replace(hint, deadline_days=hint.deadline_days or days_for_kind(services.settings, req.kind))
            triage.follow(session, services, staff, req, action, now, args)
            return say("steward_classified", req=req, suggestion=hint)
        if action in ("route", "transfer"):
            handler, days = args["handler"], args.get("deadline_days")
            if days is None:
                # The routing file's days for the category or type, else the configured days per kind.
                days = _rules().deadline_for(req.type, req.category) or days_for_kind(services.settings, req.kind)
            if action == "route":
                wf.route(session, req, actor, handler, days, now, args.get("note"))
            else:
                wf.transfer(session, req, actor, handler, now, args.get("note"), days)
            notices.notify_handler(session, services, req, now)
            notices.notify_resident(session, services, req, now)
        elif action == "escalate":
            wf.escalate(session, req, actor, args["reason"], now)
            notices.notify_handler(session, services, req, now)
            notices.notify_resident(session, services, req, now)
        elif action == "answer":
            wf.answer(session, req, actor, args["text"], now)
            notices.notify_resident(session, services, req, now)
        elif action == "resolve":
            wf.resolve(session, req, actor, args["text"], now)
            notices.notify_resident(session, services, req, now)
            notices.ask_rating(session, services, req, now)
        elif action == "close":
            wf.close(session, req, actor, args["reason"], now, args.get("note"))
            notices.notify_resident(session, services, req, now)
        else:
            raise ValueError(f"unknown action {action!r}")
    except wf.WorkflowError as exc:
        raise Refused(say("steward_refused", **{"ref": req.ref, **exc.params, "code": exc.code})) from None
    triage.follow(session, services, staff, req, action, now, args)  # merged duplicates follow
    return say("steward_done", action=action, req=req, deadline=notices.local_time(req.deadline_at))


@lru_cache(maxsize=1)
def _rules() -> routing.Rules:
    """routing.yaml, read once per process (it is checked at start-up by `org routing-check`)."""
    return routing.load()


def record_offline(session: Session, services: Services, steward: Steward, channel: str, estate: Estate,
                   description: str, now: datetime, kind: str = "help", contact_name: str | None = None,
                   contact_mobile: str | None = None) -> ServiceRequest:
    """Files a request a steward took from a visit, meeting, walk-in or phone call."""
    actor = wf.Actor("steward", steward.id, steward_label(steward))
    req = file_request(session, actor=actor, kind=kind, description=description.strip(), channel=channel,
                       estate_id=estate.id, community_id=estate.community_id, recorded_by_id=steward.id,
                       contact_name=contact_name, contact_mobile=contact_mobile, created_at=now)
    notices.notify_stewards(session, services, req, now, skip=steward.id)
    return req


def failed_messages(session: Session, limit: int = 20, community_id: int | None = None) -> list[OutboxMessage]:
    """Messages the outbox gave up on, newest first; with a community, only about its requests."""
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")
                           .order_by(OutboxMessage.id.desc()).limit(limit if community_id is None else 500))
    if community_id is None:
        return list(rows)
    rows = list(rows)
    refs = {(m.payload or {}).get("ref") for m in rows} - {None}
    ours = set(session.scalars(select(ServiceRequest.ref).where(ServiceRequest.ref.in_(refs),
                                                                ServiceRequest.community_id == community_id)))
    return [m for m in rows if (m.payload or {}).get("ref") in ours][:limit]


def todo(session: Session, staff: Staff) -> list[ServiceRequest]:
    """Open requests of the steward's community, or routed to the liaison's organisation."""
    query = select(ServiceRequest).where(ServiceRequest.status.in_(OPEN_STATUSES))
    if staff.kind == "steward":
        query = query.where(ServiceRequest.community_id == staff.community_id)
    else:
        query = query.where(ServiceRequest.handler_id == staff.organisation_id)
    return list(session.scalars(query.order_by(ServiceRequest.deadline_at.is_(None),
                                               ServiceRequest.deadline_at, ServiceRequest.id)
                                .limit(TODO_LIMIT)))


# --- chat commands ------------------------------------------------------------------

def handle(ctx: Context) -> Reply | None:
    """A staff member's command, or None so the message is handled as a resident's."""
    if ctx.message_type != "text":
        return None
    words = ctx.text.split(maxsplit=1)
    if not words or words[0] not in COMMANDS:
        return None
    staff = staff_for(ctx.session, ctx.resident.openid)
    if staff is None:
        return None
    command, rest = COMMANDS[words[0]], (words[1] if len(words) > 1 else "")
    try:
        return Text(command(ctx, staff, rest))
    except Refused as exc:
        return Text(exc.reply)


def _request(ctx: Context, staff: Staff, rest: str, command: str, need_more: bool = True):
    """Splits '<编号> <rest>' and finds the request the staff member may see."""
    parts = rest.split(maxsplit=1)
    if not parts or (need_more and len(parts) < 2):
        raise Refused(say("steward_usage", command=command))
    req = wf.find_by_ref(ctx.session, parts[0], lock=True)
    if req is None or not may_see(staff, req):
        raise Refused(say("steward_not_found", ref=parts[0]))
    return req, (parts[1].strip() if len(parts) > 1 else "")


def cmd_todo(ctx: Context, staff: Staff, rest: str) -> str:
    """待办: the open requests, nearest deadline first."""
    items = todo(ctx.session, staff)
    return say("steward_todo", items=items, local_time=notices.local_time, place_of=notices.place_of)


def cmd_view(ctx: Context, staff: Staff, rest: str) -> str:
    """查看 <编号>: the request, its timeline and the link to its page."""
    req, _ = _request(ctx, staff, rest, "查看", need_more=False)
    detail = say("steward_detail", req=req, entries=timeline_of(ctx.session, req.id)[-6:],
                 place=notices.place_of(req), deadline=notices.local_time(req.deadline_at),
                 url=page_url(ctx.services, req.ref, staff.openid), local_time=notices.local_time,
                 voice=voice_of_request(ctx.session, req.id))
    return "\n".join(filter(None, [detail, triage.hint(ctx.session, req)]))  # suggestion, duplicates


def cmd_classify(ctx: Context, staff: Staff, rest: str) -> str:
    """分类 <编号> <类型> <类别>."""
    req, more = _request(ctx, staff, rest, "分类")
    parts = more.split(maxsplit=1)
    type_ = type_words().get(parts[0]) if parts else None
    if type_ is None or len(parts) < 2:
        raise Refused(say("steward_usage", command="分类"))
    return perform(ctx.session, ctx.services, staff, req, "classify", ctx.now, type=type_, category=parts[1])


def _handler(ctx: Context, req: ServiceRequest, words: str) -> Organisation:
    """The one handler the words name, or a refusal listing the candidates."""
    found = routing.find_handler(ctx.session, req, words)
    if len(found) != 1:
        raise Refused(say("steward_which_handler", words=words, found=found))
    return found[0]


def _deadline_words(words: str) -> tuple[str, int | None]:
    """Splits a trailing '5天' / '5个工作日' off the handler's words."""
    match = DAYS_RE.match(words)
    if match is None:
        return words, None
    return match.group(1).strip(), int(match.group(2))


def cmd_route(ctx: Context, staff: Staff, rest: str) -> str:
    """派 <编号> [<单位>]: to the named handler, or the routing rules' suggestion."""
    req, words = _request(ctx, staff, rest, "派", need_more=False)
    words, days = _deadline_words(words)
    if words:
        handler = _handler(ctx, req, words)
    else:
        handler = routing.suggest(ctx.session, _rules(), req).handler if req.type else None
        if handler is None:
            raise Refused(say("steward_usage", command="派"))
    return perform(ctx.session, ctx.services, staff, req, "route", ctx.now, handler=handler, deadline_days=days)


def cmd_transfer(ctx: Context, staff: Staff, rest: str) -> str:
    """转 <编号> <单位>."""
    req, words = _request(ctx, staff, rest, "转")
    words, days = _deadline_words(words)
    return perform(ctx.session, ctx.services, staff, req, "transfer", ctx.now,
                   handler=_handler(ctx, req, words), deadline_days=days)


def cmd_answer(ctx: Context, staff: Staff, rest: str) -> str:
    """回复 <编号> <内容>."""
    req, text = _request(ctx, staff, rest, "回复")
    return perform(ctx.session, ctx.services, staff, req, "answer", ctx.now, text=text)


def cmd_resolve(ctx: Context, staff: Staff, rest: str) -> str:
    """办结 <编号> <说明>."""
    req, text = _request(ctx, staff, rest, "办结")
    return perform(ctx.session, ctx.services, staff, req, "resolve", ctx.now, text=text)


def cmd_escalate(ctx: Context, staff: Staff, rest: str) -> str:
    """升级 <编号> <原因>."""
    req, reason = _request(ctx, staff, rest, "升级")
    return perform(ctx.session, ctx.services, staff, req, "escalate", ctx.now, reason=reason)


def cmd_close(ctx: Context, staff: Staff, rest: str) -> str:
    """关闭 <编号> <重复|不属于|撤回> <说明>."""
    req, more = _request(ctx, staff, rest, "关闭")
    parts = more.split(maxsplit=1)
    reason = CLOSE_WORDS.get(parts[0]) if parts else None
    if reason is None:
        raise Refused(say("steward_usage", command="关闭"))
    return perform(ctx.session, ctx.services, staff, req, "close", ctx.now, reason=reason,
                   note=parts[1] if len(parts) > 1 else "")


def cmd_record(ctx: Context, staff: Staff, rest: str) -> str:
    """代录 <走访|会议|来访|电话> <小区> [<手机号>] <描述>: a request taken offline."""
    if staff.kind != "steward":
        raise Refused(say("steward_not_allowed", ref=""))
    parts = rest.split(maxsplit=2)
    if len(parts) < 3 or parts[0] not in CHANNEL_WORDS:
        raise Refused(say("steward_usage", command="代录"))
    estate = ctx.session.scalar(select(Estate).where(Estate.community_id == staff.community_id,
                                                     or_(Estate.name == parts[1], Estate.code == parts[1])))
    if estate is None:
        raise Refused(say("steward_no_estate", words=parts[1]))
    description, mobile = parts[2], None
    first, _, remainder = description.partition(" ")
    if MOBILE_RE.match(first) and remainder.strip():
        mobile, description = first, remainder
    if len(description.strip()) < 5:
        raise Refused(say("steward_usage", command="代录"))
    steward = ctx.session.get(Steward, staff.id)
    req = record_offline(ctx.session, ctx.services, steward, CHANNEL_WORDS[parts[0]], estate, description,
                         ctx.now, contact_mobile=mobile)
    return say("steward_recorded", req=req, channel=parts[0], estate=estate.name)


def cmd_failed(ctx: Context, staff: Staff, rest: str) -> str:
    """发送失败: messages that could not be delivered."""
    community = staff.community_id if staff.kind == "steward" else None
    if community is None:
        return say("steward_not_allowed", ref="")
    return say("steward_failed", items=failed_messages(ctx.session, 10, community))


def cmd_summary(ctx: Context, staff: Staff, rest: str) -> str:
    """摘要 <编号> <内容>: a written summary of a voice request becomes its text."""
    from .voice import summarise
    req, text = _request(ctx, staff, rest, "摘要")
    return summarise(req, text)


def cmd_help(ctx: Context, staff: Staff, rest: str) -> str:
    """红管帮助: the commands."""
    return say("steward_help", staff=staff)


def console_url(services: Services) -> str:
    """Where staff enter the web console from WeChat (WeChat's sign-in, no password)."""
    return f"{services.public_url}/console/wechat/login"


def cmd_console(ctx: Context, staff: Staff, rest: str) -> str:
    """工作台: the link that opens the web console in WeChat's browser."""
    return say("steward_console", url=console_url(ctx.services))


COMMANDS = {"待办": cmd_todo, "查看": cmd_view, "分类": cmd_classify, "派": cmd_route, "转": cmd_transfer,
            "回复": cmd_answer, "办结": cmd_resolve, "升级": cmd_escalate, "关闭": cmd_close,
            "代录": cmd_record, "发送失败": cmd_failed, "红管帮助": cmd_help, "摘要": cmd_summary,
            "工作台": cmd_console,
            "合并": triage.cmd_merge}
