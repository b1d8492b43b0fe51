"""Entering the console from WeChat: a steward or liaison whose account is linked to their openid.

`/console/wechat/login` sends the reader through WeChat's silent authorisation; back at
`/console/wechat/return` the openid opens the linked account in a new session. A one-time link
from the account page (`/console/wechat/bind/<token>`) links the WeChat that opens it.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for

from models import audit, utcnow
from models.user import UserError, link_wechat, user_for_bind_token, user_for_openid

from .. import wechat_oauth
from ..db import get_session
from .auth import client_ip, failure_counter, locked, start_session

bp = Blueprint("console_wechat", __name__, url_prefix="/console/wechat")

SESSION_KEY = "console_wx"


@bp.route("/login")
def login():
    """Starts WeChat's authorisation to sign in (from the link in chat or on a mobile page)."""
    return wechat_oauth.start(SESSION_KEY, ".oauth_return", purpose="login")


@bp.route("/bind/<token>")
def bind(token: str):
    """Opens a one-time binding link: checks it, then asks WeChat who is opening it."""
    if user_for_bind_token(get_session(), token) is None:
        return render_template("console/wechat_result.html", outcome="bind_expired"), 404
    return wechat_oauth.start(SESSION_KEY, ".oauth_return", purpose="bind", token=token)


@bp.route("/return")
def oauth_return():
    """WeChat's redirect back: signs the linked account in, or links the account of the binding link."""
    # Ask WeChat before touching the database: no transaction stays open across the HTTP call.
    try:
        pending, openid = wechat_oauth.finish(SESSION_KEY)
    except wechat_oauth.OAuthRefused as exc:
        pending, openid, refused = None, None, str(exc)
    except wechat_oauth.OAuthUnavailable:
        return render_template("console/wechat_result.html", outcome="unavailable"), 502
    keys = ["ip:" + client_ip()]
    counter = failure_counter()
    if locked(counter, keys):
        return render_template("console/wechat_result.html", outcome="locked"), 429
    s = get_session()
    if openid is None:
        counter.add(keys)
        audit.record(s, "-", "login_failed", detail={"via": "wechat", "reason": refused}, ip=client_ip())
        s.commit()
        abort(400)
    if pending.get("purpose") == "bind":
        return _bind(pending.get("token", ""), openid)
    user = user_for_openid(s, openid)
    if user is None or not user.active or not user.may_use_wechat:
        counter.add(keys)
        audit.record(s, user.username if user else "-", "login_failed",
                     detail={"via": "wechat", "reason": "not linked" if user is None else "inactive"},
                     ip=client_ip())
        s.commit()
        outcome = "not_linked" if user is None else "inactive"
        return render_template("console/wechat_result.html", outcome=outcome), 403
    if locked(counter, ["user:" + user.username.lower()]):
        return render_template("console/wechat_result.html", outcome="locked"), 429
    user.last_login_at = utcnow()
    start_session(user, via="wechat")
    return redirect(url_for("console_requests.inbox"))


def _bind(token: str, openid: str):
    """Links the openid to the account the token was issued to; the token is used up."""
    s = get_session()
    user = user_for_bind_token(s, token)
    if user is None:
        return render_template("console/wechat_result.html", outcome="bind_expired"), 404
    try:
        link_wechat(s, user, openid)
    except UserError:
        s.rollback()
        return render_template("console/wechat_result.html", outcome="bind_taken"), 409
    audit.record(s, user.username, "wechat_link", f"user:{user.username}", {"via": "link"},
                 user_id=user.id, ip=client_ip())
    s.commit()
    current_app.logger.info("console account %s linked to WeChat", user.id)
    return render_template("console/wechat_result.html", outcome="bound", user=user)
