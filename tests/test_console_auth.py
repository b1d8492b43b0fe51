"""Signing in to the console: passwords, rate limits, CSRF, session renewal, the user commands."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.console.auth import MAX_PER_USERNAME
from models import AuditEntry, ConsoleUser

from .test_console_support import Console, park  # noqa: F401  (fixture)


def test_login_with_the_right_password_opens_the_inbox(park):
    console = Console(park)
    resp = console.login("xinghu")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/requests")
    page = console.get("/console/requests").get_data(as_text=True)
    assert "王红梅" in page and "红管负责人" in page


def test_wrong_password_is_refused_kindly_and_logged(park, sessions):
    console = Console(park)
    resp = console.login("xinghu", "not-the-password")
    assert resp.status_code == 401
    assert "用户名或密码不对" in resp.get_data(as_text=True)
    assert console.get("/console/requests").status_code == 302
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.action == "login_failed", AuditEntry.username == "xinghu")) == 1


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(park):
    resp = Console(park).login("nobody-here", "whatever-password")
    assert resp.status_code == 401 and "用户名或密码不对" in resp.get_data(as_text=True)


def test_password_is_stored_as_an_argon2_hash(park, sessions):
    with sessions() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == "admin"))
        assert user.password_hash.startswith("$argon2id$") and "hongguan" not in user.password_hash


def test_too_many_failures_lock_the_username_even_with_the_right_password(park):
    console = Console(park)
    for _ in range(MAX_PER_USERNAME):
        assert console.login("hanlin", "guess-guess-guess").status_code == 401
    resp = console.login("hanlin")
    assert resp.status_code == 429 and "尝试次数过多" in resp.get_data(as_text=True)
    # Other accounts are not locked by someone guessing at 翰林's.
    assert Console(park).login("xinghu").status_code == 302


def test_too_many_failures_from_one_address_lock_that_address(park):
    park.config["CONSOLE_MAX_FAILURES_PER_ADDRESS"] = 4  # the default (30) works the same, only slower
    console = Console(park)
    for i in range(4):
        assert console.login(f"user{i}", "guess-guess-guess").status_code == 401
    assert console.login("admin").status_code == 429
    other = Console(park)
    other.client.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert other.login("admin").status_code == 302


def test_a_form_without_the_csrf_token_is_refused(park, sessions):
    console = Console(park, "admin")
    resp = console.client.post("/console/announcements", data={"channel": "news", "title": "伪造", "body": "x"})
    assert resp.status_code == 400 and "页面已过期" in resp.get_data(as_text=True)
    resp = console.client.post("/console/login", data={"username": "admin", "password": "hongguan-demo",
                                                       "csrf_token": "forged"})
    assert resp.status_code == 400


def test_login_starts_a_new_session(park):
    console = Console(park)
    console.get("/console/login")
    with console.client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
        before = sess["csrf"]
    console.login("admin")
    with console.client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["csrf"] != before and sess["uid"]


def test_logout_ends_the_session(park):
    console = Console(park, "admin")
    assert console.get("/console/requests").status_code == 200
    console.post("/console/logout")
    assert console.get("/console/requests").status_code == 302


def test_after_login_only_console_paths_are_followed(park):
    console = Console(park)
    page = console.client.get("/console/login")
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    resp = console.client.post("/console/login?next=https://evil.example/", data={
        "username": "admin", "password": "hongguan-demo", "csrf_token": token})
    assert resp.headers["Location"].endswith("/console/requests")


def test_a_deactivated_user_is_signed_out(park, sessions):
    console = Console(park, "xinghu")
    with sessions() as s:
        s.scalar(select(ConsoleUser).where(ConsoleUser.username == "xinghu")).active = False
        s.commit()
    assert console.get("/console/requests").status_code == 302


def test_session_cookie_is_secure_httponly_outside_sandbox(make_app):
    app = make_app(wechat={"appid": "wx123", "appsecret": "s", "token": "t"},
                   app={"secret_key": "k" * 32, "pii_key": "p" * 32})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    resp = app.test_client().get("/console/login")
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_cli_creates_an_admin_and_scoped_users(demo, sessions):
    runner = demo.test_cli_runner()
    result = runner.invoke(args=["user", "create-admin", "--username", "chief", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["user", "create", "--username", "s2", "--role", "steward", "--org", "xinghu",
                                 "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    with sessions() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == "s2"))
        assert user.role == "steward" and user.org.code == "xinghu"


def test_cli_refuses_a_scope_that_does_not_fit_the_role(demo):
    runner = demo.test_cli_runner()
    result = runner.invoke(args=["user", "create", "--username", "s3", "--role", "steward", "--org", "hx_street",
                                 "--password", "long-enough-pw"])
    assert result.exit_code != 0 and "must be scoped to a community" in result.output
    result = runner.invoke(args=["user", "create", "--username", "s4", "--role", "liaison",
                                 "--password", "long-enough-pw"])
    assert result.exit_code != 0 and "needs --org" in result.output
    result = runner.invoke(args=["user", "create-admin", "--username", "short", "--password", "short"])
    assert result.exit_code != 0 and "at least 10 characters" in result.output
