"""The mobile page of a request (/m/requests/<ref>?t=…): timeline and actions, opened from a
template message or an e-mail. The signed `t` names who opens it, so a number alone opens nothing."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, abort, current_app, redirect, render_template, request, session as web_session, url_for
from sqlalchemy import select

from handlers import rating, stewarding
from handlers.request_links import RESIDENT, read_token
from handlers.request_notices import local_time, place_of
from handlers.texts import say
from models import Organisation, routing, utcnow
from models.pii import mask_mobile, mask_name
from models.labels import labels_of, pick
from models.request import RATINGS
from models.timeline import Actor, timeline_of
from models.workflow import EARLY_CLOSE_REASONS, TRANSITIONS, WorkflowError, find_by_ref

from . import wechat_oauth
from .db import get_session

logger = logging.getLogger(__name__)
bp = Blueprint("mobile", __name__, url_prefix="/m")

STAFF_FORMS = ("classify", "route", "transfer", "answer", "resolve", "escalate", "close")


@dataclass(frozen=True)
class DepartmentStaff(stewarding.Staff):
    """A park department opening the link of its e-mail: acts as the handler, named in the timeline."""

    @property
    def actor(self) -> Actor:
        """The department itself."""
        return Actor("staff", None, self.label)


def _viewer(session, ref: str):
    """('resident', None) or ('staff', Staff) for the link's token; 404 for a bad or foreign link."""
    viewer = read_token(current_app.config["SECRET_KEY"], ref, request.args.get("t", ""))
    if viewer is None:
        abort(404)
    if viewer == RESIDENT:
        return "resident", None
    staff = stewarding.staff_for(session, viewer)
    if staff is None:
        org = session.scalar(select(Organisation).where(Organisation.code == viewer))
        if org is None:
            abort(403)  # the person the link was sent to no longer works on requests
        staff = DepartmentStaff("liaison", org.id, org.code, org.name, organisation_id=org.id)
    return "staff", staff


def _is_person(staff) -> bool:
    """True for a steward or liaison reading in WeChat (a department's e-mail link has no console)."""
    return staff is not None and not isinstance(staff, DepartmentStaff)


def _allowed(req, staff) -> list[str]:
    """The forms to show: the actions the status allows and the viewer may take."""
    forms = []
    for action in STAFF_FORMS:
        if req.status not in TRANSITIONS[action][0]:
            continue
        if staff.kind != "steward" and action not in stewarding.LIAISON_ACTIONS:
            continue
        if action == "route" and req.status == "submitted":
            continue
        forms.append(action)
    return forms


@bp.route("/requests/<ref>", methods=["GET", "POST"])
def request_page(ref: str):
    """Shows the request to its resident or to staff, and takes their action."""
    session = get_session()
    role, staff = _viewer(session, ref)
    req = find_by_ref(session, ref, lock=request.method == "POST")
    if req is None:
        abort(404)
    expected = staff.openid if _is_person(staff) else (
        req.resident.openid if role == "resident" and req.resident else None)
    if expected and not current_app.config["REDSTEWARD"]["wechat"]["sandbox"]:
        # Outside the sandbox a forwarded link is not enough: WeChat must say the reader is its owner.
        reader = web_session.get("wx_openid")
        if reader is None:
            return _authorize()
        if reader != expected:
            return render_template("mobile/not_yours.html"), 403
    if staff is not None and not stewarding.may_see(staff, req):
        abort(403)
    error = None
    if request.method == "POST":
        try:
            if role == "resident":
                _rate(session, req)
            else:
                _act(session, staff, req)
            session.commit()
            return redirect(url_for(".request_page", ref=ref, t=request.args["t"], done=1), code=303)
        except stewarding.Refused as exc:
            session.rollback()
            error = exc.reply
            req = find_by_ref(session, ref)
        except WorkflowError as exc:
            session.rollback()
            error = say("steward_refused", **{"ref": req.ref, **exc.params, "code": exc.code})
            req = find_by_ref(session, ref)
    services = current_app.extensions["redsteward.services"]
    contact = None
    if role == "staff":
        name = req.contact_name or (req.resident.name if req.resident else None)
        mobile = req.contact_mobile or (req.resident.mobile if req.resident else None)
        contact = f"{mask_name(name)} {mask_mobile(mobile)}".strip()
    return render_template("mobile/request.html", req=req, role=role, staff=staff, error=error,
                           done=request.args.get("done") == "1", entries=timeline_of(session, req.id),
                           place=place_of(req), local_time=local_time, contact=contact,
                           forms=_allowed(req, staff) if staff else [], types=labels_of("request_type"),
                           ratings=labels_of("rating"), close_reasons=pick("close_reason", EARLY_CLOSE_REASONS),
                           public_url=services.public_url,
                           console_url=stewarding.console_url(services) if _is_person(staff) else None), \
        200 if error is None else 400


def _rate(session, req) -> None:
    """The resident's rating from the page form."""
    choice = request.form.get("rating", "")
    if choice not in RATINGS or req.status != "resolved":
        raise stewarding.Refused(say("rating_choose" if req.status == "resolved" else "rating_not_needed"))
    services = current_app.extensions["redsteward.services"]
    rating.rate_request(session, services, req, choice, request.form.get("comment", "")[:500], utcnow())


def _act(session, staff, req) -> None:
    """A staff action from the page form, through the same operation as the chat commands."""
    form = request.form
    action = form.get("action", "")
    if action not in _allowed(req, staff):
        raise stewarding.Refused(say("request_page_stale"))
    args: dict = {}
    if action == "classify":
        args = {"type": form.get("type", ""), "category": form.get("category", "")}
    elif action in ("route", "transfer"):
        words = form.get("handler", "").strip()
        found = routing.find_handler(session, req, words)
        if len(found) != 1:
            raise stewarding.Refused(say("steward_which_handler", words=words, found=found))
        args = {"handler": found[0], "note": form.get("note") or None}
    elif action in ("answer", "resolve"):
        args = {"text": form.get("text", "")[:2000]}
    elif action == "escalate":
        args = {"reason": form.get("reason", "")[:500]}
    elif action == "close":
        args = {"reason": form.get("reason", ""), "note": form.get("note", "")[:500]}
    services = current_app.extensions["redsteward.services"]
    stewarding.perform(session, services, staff, req, action, utcnow(), **args)


def _authorize():
    """Sends the reader through WeChat's silent OAuth (snsapi_base) and back to this page."""
    return wechat_oauth.start("wx_oauth", ".oauth_return", next=request.full_path)


@bp.route("/oauth")
def oauth_return():
    """WeChat's redirect back: swaps the code for the reader's openid, then reopens the page."""
    try:
        pending, openid = wechat_oauth.finish("wx_oauth")
    except wechat_oauth.OAuthRefused:
        abort(400)
    except wechat_oauth.OAuthUnavailable:
        return render_template("mobile/not_yours.html", retry=True), 502
    web_session["wx_openid"] = openid
    target = pending["next"]
    # Only ever back to a page of this blueprint: never an open redirect.
    return redirect(target if target.startswith("/m/requests/") else "/", code=302)
