"""Signing in and out, the current user, role checks, CSRF and the login rate limit."""
from __future__ import annotations

import functools
import hmac
import secrets
from datetime import timedelta, timezone

from flask import (Blueprint, Flask, abort, current_app, g, redirect, render_template, request,
                   session, url_for)

from models import audit
from models.pii import mask_mobile, mask_name
from models.user import ConsoleUser, authenticate, failures_since, record_failure

from ..db import get_session

bp = Blueprint("console_auth", __name__, url_prefix="/console")

# Failures allowed in the window before sign-in is refused for a while.
WINDOW = timedelta(minutes=15)
MAX_PER_USERNAME = 5
MAX_PER_ADDRESS = 30
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
CHINA = timezone(timedelta(hours=8))


def init_app(app: Flask) -> None:
    """Loads the user for console pages, checks CSRF on every form and exposes helpers."""
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=8))
    app.before_request(_load_user_and_check_csrf)
    app.context_processor(lambda: {"csrf_token": csrf_token, "me": g.get("user")})
    app.add_template_filter(cn_time, "cn_time")
    app.add_template_filter(mask_name, "mask_name")
    app.add_template_filter(mask_mobile, "mask_mobile")
    for code in (403, 404, 405):
        app.register_error_handler(code, _console_error)


def cn_time(value) -> str:
    """An aware datetime as the park reads it: 2026-11-26 21:08."""
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


def _console_error(exc):
    """A kind page for console errors; other parts of the app keep their plain answers."""
    if not _is_console(request.path):
        return exc
    return render_template("console/error.html", code=exc.code, reason=None), exc.code


def _is_console(path: str) -> bool:
    """True for console URLs (the webhook and the sandbox have their own rules)."""
    return path == "/console" or path.startswith("/console/")


def _load_user_and_check_csrf():
    """Puts the signed-in user on g and refuses a console form without the session's token."""
    if not _is_console(request.path):
        return None
    g.user = None
    uid = session.get("uid")
    if uid is not None:
        user = get_session().get(ConsoleUser, uid)
        if user is not None and user.active and session.get("epoch", 0) == user.session_epoch:
            g.user = user
        else:
            session.clear()
    if request.method in UNSAFE_METHODS:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        expected = session.get("csrf") or ""
        if not expected or not hmac.compare_digest(sent, expected):
            return render_template("console/error.html", code=400, reason="csrf"), 400
    return None


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def current_user() -> ConsoleUser:
    """The signed-in user (views are wrapped in login_required, so there is one)."""
    return g.user


def login_required(*roles: str):
    """Sends strangers to the login page and refuses (403) roles not listed; no roles: any."""
    def decorate(view):
        """Wraps one view."""
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            """Checks the user before running the view."""
            user = g.get("user")
            if user is None:
                return redirect(url_for("console_auth.login", next=request.full_path))
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def client_ip() -> str:
    """The caller's address (the proxy in front sets X-Forwarded-For only when configured)."""
    return request.remote_addr or "unknown"


def audit_log(action: str, target: str | None = None, detail: dict | None = None) -> None:
    """Records what the current user did, in the request's transaction."""
    user = g.get("user")
    audit.record(get_session(), user.username if user else "-", action, target, detail,
                 user_id=user.id if user else None, ip=client_ip())


class _RedisLimiter:
    """Failure counters in Redis, shared by every worker, expiring with the window."""

    def __init__(self, url: str):
        """Connects lazily to the configured Redis."""
        import redis
        self.client = redis.Redis.from_url(url)

    def count(self, key: str) -> int:
        """Failures of a key in the current window."""
        return int(self.client.get("console:login:" + key) or 0)

    def add(self, keys: list[str]) -> None:
        """Counts one failure against each key."""
        pipe = self.client.pipeline()
        for key in keys:
            pipe.incr("console:login:" + key)
            pipe.expire("console:login:" + key, int(WINDOW.total_seconds()), nx=True)
        pipe.execute()


class _DatabaseLimiter:
    """Failure counters as rows, when no Redis is configured."""

    def count(self, key: str) -> int:
        """Failures of a key in the last window."""
        return failures_since(get_session(), key, WINDOW)

    def add(self, keys: list[str]) -> None:
        """Counts one failure against each key (committed with the audit entry)."""
        record_failure(get_session(), keys)


def failure_counter():
    """Redis when configured, else the database."""
    url = current_app.config["REDSTEWARD"]["redis"]["url"]
    if not url:
        return _DatabaseLimiter()
    limiter = current_app.extensions.get("redsteward.console_limiter")
    if limiter is None:
        limiter = current_app.extensions["redsteward.console_limiter"] = _RedisLimiter(url)
    return limiter


def locked(limiter, keys: list[str]) -> bool:
    """True while a username or an address has had too many failures in the window."""
    per_user = current_app.config.get("CONSOLE_MAX_FAILURES_PER_USERNAME", MAX_PER_USERNAME)
    per_address = current_app.config.get("CONSOLE_MAX_FAILURES_PER_ADDRESS", MAX_PER_ADDRESS)
    return any(limiter.count(key) >= (per_address if key.startswith("ip:") else per_user)
               for key in keys)


def start_session(user: ConsoleUser, via: str | None = None) -> None:
    """Audits the sign-in and starts a new session, so a planted session id is worthless."""
    s = get_session()
    audit.record(s, user.username, "login", detail={"via": via} if via else None, user_id=user.id,
                 ip=client_ip())
    s.commit()
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["epoch"] = user.session_epoch
    session["csrf"] = secrets.token_urlsafe(32)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; a new session on success."""
    if request.method == "GET":
        return render_template("console/login.html", error=None, username="")
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    keys = ["user:" + username.lower(), "ip:" + client_ip()]
    limiter = failure_counter()
    if locked(limiter, keys):
        return render_template("console/login.html", error="locked", username=username), 429
    s = get_session()
    user = authenticate(s, username, password)
    if user is None:
        limiter.add(keys)
        audit.record(s, username or "-", "login_failed", ip=client_ip())
        s.commit()
        return render_template("console/login.html", error="invalid", username=username), 401
    start_session(user)
    target = request.args.get("next", "")
    # Only same-site paths: an open redirect would make the login page a phishing aid.
    if not target.startswith("/console") or target.startswith("//"):
        target = url_for("console_requests.inbox")
    return redirect(target)


@bp.route("/logout", methods=["POST"])
def logout():
    """Ends the session."""
    user = g.get("user")
    if user is not None:
        s = get_session()
        audit.record(s, user.username, "logout", user_id=user.id, ip=client_ip())
        s.commit()
    session.clear()
    return redirect(url_for("console_auth.login"))


@bp.route("/")
@login_required()
def home():
    """The console's front page is the inbox."""
    return redirect(url_for("console_requests.inbox"))
