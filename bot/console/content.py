"""Content: announcements (published and pushed through the outbox), the handbook, resources."""
from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import JSON, Integer, String, func, insert, literal, or_, select

from models import Announcement, Estate, HandbookEntry, OutboxMessage, Resident, utcnow
from models.content import CHANNELS, HANDBOOK_KINDS, tokens
from models.labels import labels_of
from models.resource import DIRECTORIES, Resource, search_resources

from ..db import get_session
from . import scope
from .auth import audit_log, current_user, login_required

bp = Blueprint("console_content", __name__, url_prefix="/console")

PUBLISHERS = ("admin", "organisation_department", "street_staff", "steward")
EDITORS = ("admin", "organisation_department")
RESOURCE_EDITORS = ("admin", "organisation_department", "street_staff")


@bp.route("/announcements")
@login_required(*PUBLISHERS)
def announcements():
    """Announcements the user may see (park-wide and their communities'), newest first."""
    s, user = get_session(), current_user()
    stmt = select(Announcement).order_by(Announcement.published_at.desc()).limit(100)
    ids = scope.community_ids(user)
    if ids is not None:
        stmt = stmt.where((Announcement.community_id.is_(None)) | Announcement.community_id.in_(ids))
    return render_template("console/announcements.html", rows=s.scalars(stmt).all(),
                           communities=scope.communities(s, user), channels=labels_of("announcement_channel"),
                           errors=[], form={})


@bp.route("/announcements", methods=["POST"])
@login_required(*PUBLISHERS)
def publish():
    """Publishes an announcement and queues its template message to every resident it reaches."""
    s, user, form = get_session(), current_user(), request.form
    errors = []
    title = form.get("title", "").strip()
    body = form.get("body", "").strip()
    community_id = form.get("community_id", type=int)
    if not title or len(title) > 64:
        errors.append("title")
    if not body:
        errors.append("body")
    if form.get("channel") not in CHANNELS:
        errors.append("channel")
    if not scope.may_see_community(s, user, community_id):
        errors.append("community")
    if errors:
        rows = s.scalars(select(Announcement).order_by(Announcement.published_at.desc()).limit(0)).all()
        return render_template("console/announcements.html", rows=rows, errors=errors, form=form,
                               communities=scope.communities(s, user),
                               channels=labels_of("announcement_channel")), 400
    now = utcnow()
    ann = Announcement(key="console-" + secrets.token_hex(8), channel=form["channel"], title=title,
                       summary=form.get("summary", "").strip()[:200], body=body,
                       community_id=community_id, published_at=now)
    ann.refresh_search_text()
    s.add(ann)
    s.flush()
    pushed = _push(s, ann) if form.get("push") else 0
    audit_log("announcement_publish", f"announcement:{ann.id}", {"pushed": pushed, "community_id": community_id})
    s.commit()
    flash(render_template("console/published.txt", title=title, pushed=pushed), "ok")
    return redirect(url_for(".announcements"))


def _push(s, ann: Announcement) -> int:
    """Queues one template message per subscribed resident reached, in one INSERT … SELECT.

    A park has hundreds of thousands of residents; a row-by-row loop would hold the
    transaction for minutes, so the database builds the outbox rows itself.
    """
    settings = current_app.config["REDSTEWARD"]
    url = settings["app"]["public_url"].rstrip("/") + f"/m/announcements/{ann.id}"
    fields = render_template("console/announcement_push.txt", ann=ann).strip().split("\n")
    payload = {"template_id": settings["templates"]["announcement"], "url": url, "purpose": "announcement",
               "data": {"thing1": {"value": _short(fields[0])},
                        "time2": {"value": fields[1] if len(fields) > 1 else ""}}}
    residents = select(Resident.openid).where(Resident.subscribed.is_(True))
    if ann.community_id is not None:
        residents = residents.join(Estate, Estate.id == Resident.estate_id) \
            .where(Estate.community_id == ann.community_id)
    prefix = f"announcement:{ann.id}:"
    now = utcnow()
    rows = residents.with_only_columns(
        literal("template", String), literal(prefix, String).concat(Resident.openid), Resident.openid,
        literal(payload, JSON), literal("pending", String), literal(0, Integer),
        literal(now, OutboxMessage.next_attempt_at.type), literal(now, OutboxMessage.created_at.type))
    s.execute(insert(OutboxMessage).from_select(
        ["kind", "idempotency_key", "recipient", "payload", "status", "attempts", "next_attempt_at",
         "created_at"], rows))
    # psycopg reports no row count for INSERT … SELECT; count the same residents instead.
    return s.scalar(select(func.count()).select_from(residents.subquery())) or 0


def _short(value: str) -> str:
    """A template field: one line of at most 20 characters (WeChat's rule)."""
    value = " ".join(value.split())
    return value if len(value) <= 20 else value[:19] + "…"


@bp.route("/handbook")
@login_required()
def handbook():
    """The FAQ and case handbook, searchable."""
    s = get_session()
    q = request.args.get("q", "").strip()
    stmt = select(HandbookEntry).order_by(HandbookEntry.kind, HandbookEntry.category, HandbookEntry.id).limit(200)
    if q:
        words = tokens(q, limit=8) or [q.lower()]
        stmt = stmt.where(or_(*[HandbookEntry.search_text.contains(f" {w} ", autoescape=True) for w in words],
                              HandbookEntry.question.contains(q, autoescape=True)))
    return render_template("console/handbook.html", rows=s.scalars(stmt).all(), q=q,
                           kinds=labels_of("handbook_kind"))


@bp.route("/handbook/new", methods=["GET", "POST"], defaults={"entry_id": None})
@bp.route("/handbook/<int:entry_id>/edit", methods=["GET", "POST"])
@login_required(*EDITORS)
def handbook_edit(entry_id: int | None):
    """Adds or edits a handbook entry."""
    s = get_session()
    entry = s.get(HandbookEntry, entry_id) if entry_id else HandbookEntry(key="console-" + secrets.token_hex(6))
    if entry is None:
        abort(404)
    errors = []
    if request.method == "POST":
        form = request.form
        if not form.get("question", "").strip() or len(form.get("question", "")) > 200:
            errors.append("question")
        if not form.get("answer", "").strip():
            errors.append("answer")
        if form.get("kind") not in HANDBOOK_KINDS:
            errors.append("kind")
        if not errors:
            entry.kind, entry.category = form["kind"], form.get("category", "").strip()[:64]
            entry.question, entry.answer = form["question"].strip(), form["answer"].strip()
            entry.updated_at = utcnow()
            entry.refresh_search_text()
            s.add(entry)
            s.flush()
            audit_log("handbook_edit", f"handbook:{entry.id}")
            s.commit()
            flash(render_template("console/saved.txt"), "ok")
            return redirect(url_for(".handbook"))
    return render_template("console/handbook_edit.html", entry=entry, kinds=labels_of("handbook_kind"),
                           errors=errors,
                           form=request.form), (400 if errors else 200)


@bp.route("/resources")
@login_required()
def resources():
    """The three resource directories, searchable."""
    s = get_session()
    directory = request.args.get("directory", "")
    q = request.args.get("q", "").strip()
    rows = search_resources(s, directory, q)
    counts = dict(s.execute(select(Resource.directory, func.count()).group_by(Resource.directory)).all())
    return render_template("console/resources.html", rows=rows, q=q, directory=directory,
                           directories=labels_of("resource_directory"), counts=counts)


@bp.route("/resources/new", methods=["GET", "POST"], defaults={"resource_id": None})
@bp.route("/resources/<int:resource_id>/edit", methods=["GET", "POST"])
@login_required(*RESOURCE_EDITORS)
def resource_edit(resource_id: int | None):
    """Adds or edits a resource directory entry."""
    s = get_session()
    res = s.get(Resource, resource_id) if resource_id else Resource()
    if res is None:
        abort(404)
    errors = []
    if request.method == "POST":
        form = request.form
        if form.get("directory") not in DIRECTORIES:
            errors.append("directory")
        if not form.get("name", "").strip() or len(form.get("name", "")) > 128:
            errors.append("name")
        if not errors:
            res.directory, res.name = form["directory"], form["name"].strip()
            for key, size in (("category", 64), ("provider", 128), ("phone", 32), ("address", 200)):
                setattr(res, key, form.get(key, "").strip()[:size])
            res.description = form.get("description", "").strip()
            res.updated_at = utcnow()
            res.refresh_search_text()
            s.add(res)
            s.flush()
            audit_log("resource_edit", f"resource:{res.id}")
            s.commit()
            flash(render_template("console/saved.txt"), "ok")
            return redirect(url_for(".resources", directory=res.directory))
    return render_template("console/resource_edit.html", res=res, directories=labels_of("resource_directory"),
                           errors=errors,
                           form=request.form), (400 if errors else 200)
