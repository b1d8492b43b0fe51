"""The organisation directory, the routing rules and the audit log."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from models import Estate, Organisation, Steward
from models.audit import ACTIONS, AuditEntry
from handlers import stewarding
from models import routing
from models.organisation import Liaison
from models.labels import labels_of

from ..db import get_session
from .auth import audit_log, current_user, login_required

bp = Blueprint("console_directory", __name__, url_prefix="/console")

STAFF = ("admin", "organisation_department", "street_staff", "steward")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
AUDIT_PAGE = 50


@bp.route("/orgs")
@login_required(*STAFF)
def orgs():
    """The park's organisations as a tree, with estates, stewards and liaisons."""
    s = get_session()
    all_orgs = s.scalars(select(Organisation).order_by(Organisation.kind, Organisation.name)).all()
    children: dict[int | None, list[Organisation]] = {}
    for org in all_orgs:
        children.setdefault(org.parent_id, []).append(org)
    estates: dict[int, list[Estate]] = {}
    for estate in s.scalars(select(Estate).order_by(Estate.name)):
        estates.setdefault(estate.community_id, []).append(estate)
    stewards: dict[int, list[Steward]] = {}
    for steward in s.scalars(select(Steward).order_by(Steward.id)):
        stewards.setdefault(steward.community_id, []).append(steward)
    liaisons: dict[int, list[Liaison]] = {}
    for liaison in s.scalars(select(Liaison).where(Liaison.active.is_(True)).order_by(Liaison.id)):
        liaisons.setdefault(liaison.organisation_id, []).append(liaison)
    return render_template("console/orgs.html", children=children, estates=estates,
                           stewards=stewards, liaisons=liaisons)


@bp.route("/orgs/<int:org_id>/edit", methods=["GET", "POST"])
@login_required("admin")
def org_edit(org_id: int):
    """Edits an organisation's name and e-mail address."""
    s = get_session()
    org = s.get(Organisation, org_id) or abort(404)
    errors = []
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        email = request.form.get("email", "").strip()
        if not name or len(name) > 128:
            errors.append("name")
        if email and not EMAIL_RE.match(email):
            errors.append("email")
        if not errors:
            before = {"name": org.name, "email": org.email}
            org.name, org.email = name, email or None
            audit_log("org_edit", f"org:{org.code}", {"before": before, "after": {"name": name, "email": email}})
            s.commit()
            flash(render_template("console/saved.txt"), "ok")
            return redirect(url_for(".orgs"))
    return render_template("console/org_edit.html", org=org, errors=errors, form=request.form), \
        (400 if errors else 200)


@bp.route("/audit")
@login_required("admin")
def audit():
    """The audit log, newest first, filterable by action and user."""
    s = get_session()
    where = []
    action = request.args.get("action", "")
    username = request.args.get("username", "").strip()
    if action in ACTIONS:
        where.append(AuditEntry.action == action)
    if username:
        where.append(AuditEntry.username == username)
    total = s.scalar(select(func.count(AuditEntry.id)).where(*where)) or 0
    pages = max(1, math.ceil(total / AUDIT_PAGE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = s.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id.desc())
                     .limit(AUDIT_PAGE).offset((page - 1) * AUDIT_PAGE)).all()
    return render_template("console/audit.html", rows=rows, actions=labels_of("audit_action"),
                           action=action, username=username, page=page, pages=pages, total=total)


def routing_path() -> Path:
    """The routing file the workflow reads (app.routing_path when configured)."""
    configured = current_app.config["REDSTEWARD"]["app"].get("routing_path") or current_app.config.get("ROUTING_PATH")
    return Path(configured or routing.DEFAULT_PATH)


@bp.route("/routing", methods=["GET", "POST"])
@login_required(*STAFF)
def routing_rules():
    """The routing rules and deadlines; admins edit the YAML, checked before it is saved."""
    path = routing_path()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    error = None
    if request.method == "POST":
        if current_user().role != "admin":
            abort(403)
        text = request.form.get("yaml", "").replace("\r\n", "\n")
        try:
            routing.parse(yaml.safe_load(text), path.name)
        except yaml.YAMLError as exc:
            error = str(exc)
        except routing.RoutingError as exc:
            error = str(exc)
        if error is None:
            # Write beside it and rename, so a reader never sees half a file.
            tmp = path.with_suffix(".yaml.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            # This worker's chat commands read the new rules at once; other workers on restart.
            stewarding._rules.cache_clear()
            audit_log("routing_edit", path.name, {"bytes": len(text.encode())})
            get_session().commit()
            flash(render_template("console/saved.txt"), "ok")
            return redirect(url_for(".routing_rules"))
    try:
        rules = routing.parse(yaml.safe_load(text), path.name) if text else None
    except (yaml.YAMLError, routing.RoutingError):
        rules = None
    return render_template("console/routing.html", text=text, rules=rules, error=error,
                           types=labels_of("request_type")), \
        (400 if error else 200)
