"""Console accounts: everyone's own account page (linking WeChat), and the admins' account management."""
from __future__ import annotations

import base64
import secrets

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from models import ConsoleUser, Liaison, Organisation, Steward
from models.labels import labels_of
from models.user import (WECHAT_ROLES, UserError, change_role, create_user, issue_bind_token,
                         link_wechat, set_active, unlink_wechat)

from ..db import get_session
from .auth import audit_log, current_user, login_required

bp = Blueprint("console_accounts", __name__, url_prefix="/console")

# Organisation kinds offered as the scope of each role in the forms (liaison: any handler).
SCOPE_KINDS = {"street_staff": ("street", "social_work_committee"), "steward": ("community",),
               "liaison": ("party_organisation", "residents_committee", "workstation", "owners_committee",
                           "property_company", "park_department", "social_work_committee")}


def _bind_link(user: ConsoleUser) -> dict:
    """A new one-time binding link for the user, with its QR code as an inline SVG image."""
    token = issue_bind_token(user)
    url = current_app.extensions["redsteward.services"].public_url + url_for("console_wechat.bind", token=token)
    import qrcode.image.svg  # with Pillow and lxml: only this page needs them, not every worker at start
    svg = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8).to_string()
    return {"url": url, "qr": "data:image/svg+xml;base64," + base64.b64encode(svg).decode()}


def _keep_my_session(user: ConsoleUser) -> None:
    """After changing one's own account, this session stays signed in (others end)."""
    if user.id == current_user().id:
        session["epoch"] = user.session_epoch


# --- one's own account -------------------------------------------------------------------

@bp.route("/account")
@login_required()
def account():
    """The signed-in user's account: role, scope and the WeChat link."""
    return render_template("console/account.html", user=current_user(), bind=None)


@bp.route("/account/wechat-link", methods=["POST"])
@login_required(*WECHAT_ROLES)
def account_bind_link():
    """Shows a fresh one-time link (and QR code) that links the WeChat opening it to this account."""
    user = current_user()
    bind = _bind_link(user)
    audit_log("wechat_bind_link", f"user:{user.username}")
    get_session().commit()
    return render_template("console/account.html", user=user, bind=bind)


@bp.route("/account/wechat-unlink", methods=["POST"])
@login_required()
def account_unlink():
    """Removes the WeChat link of one's own account."""
    user = current_user()
    if user.wechat_openid:
        unlink_wechat(user)
        audit_log("wechat_unlink", f"user:{user.username}")
        get_session().commit()
        _keep_my_session(user)
        flash(render_template("console/wechat_unlinked.txt"), "ok")
    return redirect(url_for(".account"))


# --- account management (admins) -----------------------------------------------------------

def _scopes(s) -> dict[str, list[Organisation]]:
    """The organisations each scoped role may be given, by name."""
    return {role: list(s.scalars(select(Organisation).where(Organisation.kind.in_(kinds))
                                 .order_by(Organisation.kind, Organisation.name)))
            for role, kinds in SCOPE_KINDS.items()}


def _target(user_id: int) -> ConsoleUser:
    """The account an admin works on, or 404."""
    return get_session().get(ConsoleUser, user_id) or abort(404)


def _directory_people(s, user: ConsoleUser) -> list[tuple[str, str]]:
    """(value, label) of the directory's stewards or liaisons of the user's organisation with an openid."""
    if user.org_id is None or not user.may_use_wechat:
        return []
    if user.role == "steward":
        rows = s.scalars(select(Steward).where(Steward.community_id == user.org_id).order_by(Steward.id))
        return [(f"steward:{p.id}", p.name) for p in rows]
    rows = s.scalars(select(Liaison).where(Liaison.organisation_id == user.org_id, Liaison.active.is_(True),
                                           Liaison.openid.is_not(None)).order_by(Liaison.id))
    return [(f"liaison:{p.id}", p.masked_name) for p in rows]


def _openid_of(s, value: str) -> str | None:
    """The openid of a directory person picked in the form ('steward:3', 'liaison:7')."""
    kind, _, pid = value.partition(":")
    model = {"steward": Steward, "liaison": Liaison}.get(kind)
    person = s.get(model, int(pid)) if model and pid.isdigit() else None
    return person.openid if person else None


def _page(user: ConsoleUser, status: int = 200, **extra):
    """An account's page for admins, with whatever a form just produced."""
    s = get_session()
    return render_template("console/user.html", user=user, scopes=_scopes(s), roles=labels_of("role"),
                           people=_directory_people(s, user), **extra), status


def _new_password() -> tuple[str, bool]:
    """The password the admin typed, or a generated one (then it is shown once)."""
    if request.form.get("password_mode") == "set":
        return request.form.get("password", ""), False
    return secrets.token_urlsafe(9), True


@bp.route("/users", methods=["GET", "POST"])
@login_required("admin")
def users():
    """Every account with role, scope, state and WeChat link; the form that creates one."""
    s = get_session()
    error = None
    if request.method == "POST":
        form = request.form
        role = form.get("role", "")
        password, generated = _new_password()
        try:
            user = create_user(s, form.get("username", ""), password, role,
                               form.get(f"org_{role}") or None, form.get("display_name", "").strip()[:64] or None)
        except UserError as exc:
            s.rollback()
            error = exc.code
        else:
            audit_log("user_create", f"user:{user.username}", {"role": role, "org": user.org.code if user.org else None})
            s.commit()
            return _page(user, created=True, password=password if generated else None)
    rows = s.scalars(select(ConsoleUser).order_by(ConsoleUser.role, ConsoleUser.username)).all()
    return render_template("console/users.html", rows=rows, scopes=_scopes(s), roles=labels_of("role"),
                           error=error, form=request.form), 400 if error else 200


@bp.route("/users/<int:user_id>")
@login_required("admin")
def user_page(user_id: int):
    """One account: change role or scope, disable or enable, reset the password, WeChat link."""
    return _page(_target(user_id))


@bp.route("/users/<int:user_id>/<action>", methods=["POST"])
@login_required("admin")
def user_action(user_id: int, action: str):
    """One admin action on an account; each is audited, refusals change nothing."""
    s = get_session()
    user = _target(user_id)
    handler = ACTIONS.get(action) or abort(404)
    try:
        result = handler(s, user)
    except UserError as exc:
        s.rollback()
        return _page(_target(user_id), 400, error=exc.code)
    s.commit()
    _keep_my_session(user)
    return _page(user, **result)


def _role(s, user: ConsoleUser) -> dict:
    """Gives the account another role or scope."""
    if user.id == current_user().id:
        raise UserError("admins do not change their own role", "self")
    role = request.form.get("role", "")
    before = {"role": user.role, "org": user.org.code if user.org else None}
    change_role(s, user, role, request.form.get(f"org_{role}") or None)
    audit_log("user_update", f"user:{user.username}",
              {"before": before, "after": {"role": role, "org": user.org.code if user.org else None}})
    return {"done": "role"}


def _active(s, user: ConsoleUser) -> dict:
    """Disables or enables the account."""
    active = request.form.get("active") == "1"
    if user.id == current_user().id and not active:
        raise UserError("admins do not disable themselves", "self")
    set_active(s, user, active)
    audit_log("user_enable" if active else "user_disable", f"user:{user.username}")
    return {"done": "enabled" if active else "disabled"}


def _password(s, user: ConsoleUser) -> dict:
    """Sets a new password (typed by the admin, or generated and shown once); other sessions end."""
    password, generated = _new_password()
    user.set_password(password)
    user.end_sessions()
    audit_log("password_reset", f"user:{user.username}", {"generated": generated})
    return {"done": "password", "password": password if generated else None}


def _wechat_link(s, user: ConsoleUser) -> dict:
    """Links the WeChat of a steward or liaison of the directory (the account's own organisation)."""
    if request.form.get("person") not in {value for value, _ in _directory_people(s, user)}:
        raise UserError("pick a person of the account's organisation", "openid")
    link_wechat(s, user, _openid_of(s, request.form["person"]) or "")
    audit_log("wechat_link", f"user:{user.username}", {"via": "directory"})
    return {"done": "linked"}


def _wechat_unlink(s, user: ConsoleUser) -> dict:
    """Removes the account's WeChat link."""
    unlink_wechat(user)
    audit_log("wechat_unlink", f"user:{user.username}")
    return {"done": "unlinked"}


def _bind(s, user: ConsoleUser) -> dict:
    """A one-time binding link for the account, for the admin to pass on."""
    bind = _bind_link(user)
    audit_log("wechat_bind_link", f"user:{user.username}")
    return {"bind": bind}


ACTIONS = {"role": _role, "active": _active, "password": _password, "wechat-link": _wechat_link,
           "wechat-unlink": _wechat_unlink, "bind-link": _bind}
