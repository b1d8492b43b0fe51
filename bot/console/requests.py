"""The stewards' workbench: the inbox, a request's page, and the actions on it."""
from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, nulls_first, select

from handlers import request_notices, stewarding
from models import Estate, Organisation, ServiceRequest, file_request, utcnow
from models import routing, workflow
from models.organisation import HANDLER_KINDS
from models.labels import labels_of, pick
from models.request import CHANNELS, KINDS, OPEN_STATUSES, STATUSES, TYPES
from models.timeline import Actor, timeline_of

from ..db import get_session
from . import scope
from .auth import audit_log, current_user, login_required
from .directory import routing_path

bp = Blueprint("console_requests", __name__, url_prefix="/console")

PAGE_SIZE = 30
# Who may do what to a request they can see. Liaisons answer, resolve, pass on or send up
# what was routed to them, as they may from WeChat.
WORKERS = ("admin", "organisation_department", "street_staff", "steward")
ACTION_ROLES = {
    "classify": WORKERS, "route": WORKERS, "transfer": (*WORKERS, "liaison"),
    "escalate": (*WORKERS, "liaison"), "answer": (*WORKERS, "liaison"),
    "resolve": (*WORKERS, "liaison"), "close": WORKERS, "merge": WORKERS,
}
FILTERS = ("status", "type", "category", "community", "estate", "handler", "overdue", "channel", "q")


def _actor() -> Actor:
    """The signed-in user as the timeline names them."""
    user = current_user()
    kind = {"steward": "steward", "liaison": "liaison"}.get(user.role, "staff")
    org = user.org.name if user.org else user.role_label
    return Actor(kind, user.id, f"{org} {user.display_name or user.username}")


@dataclass(frozen=True)
class ConsoleStaff(stewarding.Staff):
    """A console user acting on a request this layer already scoped; the timeline names them."""

    actor_kind: str = "staff"

    @property
    def actor(self) -> Actor:
        """The console user, with their own actor kind (staff for park and street users)."""
        return Actor(self.actor_kind, self.id, self.label)


def _staff_for(req: ServiceRequest) -> ConsoleStaff:
    """The console user as the shared staff operations expect them, for this request."""
    user, actor = current_user(), _actor()
    if user.role == "liaison":
        return ConsoleStaff("liaison", user.id, "", actor.label, organisation_id=user.org_id,
                            actor_kind="liaison")
    return ConsoleStaff("steward", user.id, "", actor.label, community_id=req.community_id,
                        actor_kind=actor.kind)


def _filtered(args) -> tuple[list, dict]:
    """The WHERE conditions of the inbox's filters (scope first), and the filters as given."""
    user, now = current_user(), utcnow()
    chosen = {k: (args.get(k) or "").strip() for k in FILTERS}
    where = [scope.requests_condition(user)]
    if chosen["type"] in TYPES:
        where.append(ServiceRequest.type == chosen["type"])
    if chosen["category"]:
        where.append(ServiceRequest.category == chosen["category"])
    if chosen["community"].isdigit():
        where.append(ServiceRequest.community_id == int(chosen["community"]))
    if chosen["estate"].isdigit():
        where.append(ServiceRequest.estate_id == int(chosen["estate"]))
    if chosen["handler"].isdigit():
        where.append(ServiceRequest.handler_id == int(chosen["handler"]))
    if chosen["channel"] in CHANNELS:
        where.append(ServiceRequest.channel == chosen["channel"])
    if chosen["overdue"]:
        where += [ServiceRequest.status.in_(OPEN_STATUSES), ServiceRequest.deadline_at < now]
    if chosen["q"]:
        q = "".join(ch for ch in chosen["q"] if ch.isdigit())
        where.append(ServiceRequest.ref == q if q else ServiceRequest.id == -1)
    return where, chosen


@bp.route("/requests")
@login_required()
def inbox():
    """Requests in scope, filtered, counted by status, soonest deadline first, a page at a time."""
    s, user = get_session(), current_user()
    where, chosen = _filtered(request.args)
    counts = dict(s.execute(select(ServiceRequest.status, func.count())
                            .where(*where).group_by(ServiceRequest.status)).all())
    if chosen["status"] == "open":
        where.append(ServiceRequest.status.in_(OPEN_STATUSES))
    elif chosen["status"] in STATUSES:
        where.append(ServiceRequest.status == chosen["status"])
    total = s.scalar(select(func.count(ServiceRequest.id)).where(*where)) or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    # Not yet routed (no deadline) first: they wait for the steward; then the soonest deadline.
    # This order is the deadline index's own, so a page is read from the index, not sorted.
    rows = s.scalars(select(ServiceRequest).where(*where)
                     .order_by(nulls_first(ServiceRequest.deadline_at.asc()), ServiceRequest.id)
                     .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    communities = scope.communities(s, user)
    estates = s.scalars(select(Estate).where(Estate.community_id.in_([c.id for c in communities]))
                        .order_by(Estate.name)).all()
    args = {k: v for k, v in chosen.items() if v}
    return render_template("console/inbox.html", rows=rows, counts=counts, total=total, page=page,
                           pages=pages, chosen=chosen, args=args, statuses=labels_of("request_status"),
                           types=labels_of("request_type"),
                           channels=CHANNELS, communities=communities, estates=estates,
                           handlers=_handlers(s), now=utcnow(),
                           open_count=sum(counts.get(st, 0) for st in OPEN_STATUSES))


def _handlers(s) -> list[Organisation]:
    """Every organisation a request can be routed to."""
    return list(s.scalars(select(Organisation).where(Organisation.kind.in_(HANDLER_KINDS))
                          .order_by(Organisation.kind, Organisation.name)))


@bp.route("/requests/<int:request_id>")
@login_required()
def detail(request_id: int):
    """A request: its facts, photos, timeline and the actions the user may take."""
    s, user = get_session(), current_user()
    req = scope.get_request(s, user, request_id)
    allowed = {a for a, roles in ACTION_ROLES.items() if user.role in roles}
    return render_template("console/request.html", req=req, timeline=timeline_of(s, req.id),
                           allowed=allowed, types=labels_of("request_type"), handlers=_handlers(s), now=utcnow(),
                           suggestion=_suggestion(s, req),
                           close_reasons=pick("close_reason", workflow.EARLY_CLOSE_REASONS),
                           transitions=workflow.TRANSITIONS)


def _suggestion(s, req: ServiceRequest) -> routing.Suggestion | None:
    """The routing rules' handler and deadline for a classified request not yet routed."""
    if req.status != "accepted" or not req.type:
        return None
    try:
        return routing.suggest(s, routing.load(routing_path()), req)
    except (routing.RoutingError, OSError):
        return None  # a broken rules file must not hide the request; the steward picks by hand


@bp.route("/requests/<int:request_id>/mobile", methods=["POST"])
@login_required()
def reveal_mobile(request_id: int):
    """Shows the resident's full mobile number once, and logs that it was seen."""
    s, user = get_session(), current_user()
    req = scope.get_request(s, user, request_id)
    mobile = req.contact_mobile or (req.resident.mobile if req.resident else None)
    if not mobile:
        abort(404)
    audit_log("reveal_mobile", f"request:{req.ref}")
    s.commit()
    return render_template("console/mobile.html", req=req, mobile=mobile)


@bp.route("/requests/<int:request_id>/<action>", methods=["POST"])
@login_required()
def act(request_id: int, action: str):
    """Runs one workflow action on a request in scope; a refusal is shown, nothing is lost."""
    s, user = get_session(), current_user()
    if action not in ACTION_ROLES:
        abort(404)
    req = scope.get_request(s, user, request_id)
    if user.role not in ACTION_ROLES[action]:
        abort(403)
    form, now = request.form, utcnow()
    try:
        kwargs = _arguments(s, req, action, form)
        if action == "merge":
            action, kwargs = "close", {"reason": "duplicate", "note": kwargs["note"]}
        stewarding.perform(s, _services(), _staff_for(req), req, action, now, **kwargs)
    except (workflow.WorkflowError, stewarding.Refused) as exc:
        s.rollback()
        message = exc.reply if isinstance(exc, stewarding.Refused) else \
            render_template("console/workflow_error.txt", code=exc.code, p=exc.params)
        flash(message, "error")
        return redirect(url_for(".detail", request_id=request_id))
    audit_log("request_action", f"request:{req.ref}", {"action": request.view_args["action"]})
    s.commit()
    flash(render_template("console/action_done.txt", action=request.view_args["action"], ref=req.ref), "ok")
    return redirect(url_for(".detail", request_id=request_id))


def _services():
    """What the shared staff operations need: settings and menus."""
    return current_app.extensions["redsteward.services"]


def _days(form) -> int | None:
    """The deadline in working days from the form, or None for the rule's default."""
    value = (form.get("deadline_days") or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise workflow.WorkflowError("bad_deadline", "deadline must be a number", days=value)
    return int(value)


def _handler(s, form) -> Organisation:
    """The handler chosen in the form."""
    org = s.get(Organisation, form.get("handler_id", type=int) or 0)
    if org is None or org.kind not in HANDLER_KINDS:
        raise workflow.WorkflowError("handler_missing", "choose a handler")
    return org


def _arguments(s, req: ServiceRequest, action: str, form) -> dict:
    """The form's fields as the staff operation's arguments."""
    if action == "classify":
        return {"type": form.get("type", ""), "category": form.get("category", "")}
    if action in ("route", "transfer"):
        return {"handler": _handler(s, form), "deadline_days": _days(form), "note": form.get("note") or None}
    if action == "escalate":
        return {"reason": form.get("reason", "")}
    if action in ("answer", "resolve"):
        return {"text": form.get("text", "")}
    if action == "close":
        return {"reason": form.get("reason", ""), "note": form.get("note", "")}
    other = _duplicate_target(s, form)
    if other.id == req.id:
        raise workflow.WorkflowError("merge_self", "a request cannot duplicate itself", ref=req.ref)
    return {"note": render_template("console/duplicate_note.txt", ref=other.ref)}


def _duplicate_target(s, form) -> ServiceRequest:
    """The request this one duplicates, by reference number, if the user may see it."""
    ref = "".join(ch for ch in form.get("ref", "") if ch.isdigit())
    other = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref,
                                                  scope.requests_condition(current_user())))
    if other is None:
        raise workflow.WorkflowError("merge_unknown", "no such request", ref=ref)
    return other


@bp.route("/requests/new", methods=["GET", "POST"])
@login_required(*WORKERS)
def record_offline():
    """Records a request heard at a visit, a meeting, a walk-in or on the phone."""
    s, user = get_session(), current_user()
    communities = scope.communities(s, user)
    estates = s.scalars(select(Estate).where(Estate.community_id.in_([c.id for c in communities]))
                        .order_by(Estate.name)).all()
    offline = [c for c in CHANNELS if c != "wechat"]
    form = request.form
    errors = []
    if request.method == "POST":
        estate = s.get(Estate, form.get("estate_id", type=int) or 0)
        if estate is None or estate.community_id not in {c.id for c in communities}:
            errors.append("estate")
        if form.get("channel") not in offline:
            errors.append("channel")
        if form.get("kind") not in KINDS:
            errors.append("kind")
        if len(form.get("description", "").strip()) < 5:
            errors.append("description")
        mobile = "".join(ch for ch in form.get("contact_mobile", "") if ch.isdigit())
        if mobile and len(mobile) != 11:
            errors.append("contact_mobile")
        if not errors:
            req = _file_offline(s, estate, form, mobile)
            audit_log("request_offline", f"request:{req.ref}", {"channel": req.channel})
            s.commit()
            flash(render_template("console/action_done.txt", action="record", ref=req.ref), "ok")
            return redirect(url_for(".detail", request_id=req.id))
    return render_template("console/record.html", estates=estates, channels=offline, kinds=labels_of("request_kind"),
                           errors=errors, form=form), (400 if errors else 200)


def _file_offline(s, estate: Estate, form, mobile: str) -> ServiceRequest:
    """Files the request through the workflow's intake and tells the community's stewards."""
    now = utcnow()
    req = file_request(s, actor=_actor(), kind=form["kind"], description=form["description"].strip(),
                       channel=form["channel"], estate_id=estate.id, community_id=estate.community_id,
                       contact_name=form.get("contact_name", "").strip() or None,
                       contact_mobile=mobile or None, created_at=now)
    request_notices.notify_stewards(s, _services(), req, now)
    return req
