"""Entering the console from WeChat, end to end over real HTTP: the app on a loopback port, WeChat's
authorisation page and code exchange on another (tests/wechat_standin.py), or the sandbox's own stand-in."""
from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from bot import demo as demo_data
from models import AuditEntry, ConsoleUser
from models.user import link_wechat

from .park import park_with_request
from .test_console_support import Console, clear_redis_counters
from .wechat import WeChatSim
from .wechat_standin import free_port, standin  # noqa: F401  (fixture)

PROD_WECHAT = {"sandbox": False, "appid": "wxprod0000000001", "appsecret": "prod-secret", "token": "prodtoken"}
PROD_APP = {"secret_key": "k" * 40, "pii_key": "p" * 40}
STEWARD_WX = "o_wang_hongmei_wx"


def _serve(app, port: int):
    """Serves the app on a loopback port in a thread; returns the server to shut down."""
    srv = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _with_park(app, link: dict[str, str] | None = None):
    """Loads the demo park and its accounts, and links the given accounts to openids."""
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s:
        demo_data.load(s)
        for username, openid in (link or {}).items():
            link_wechat(s, s.scalar(select(ConsoleUser).where(ConsoleUser.username == username)), openid)
        s.commit()
    clear_redis_counters(app)
    return app


@pytest.fixture
def prod(make_app, standin):
    """An app outside sandbox mode served over HTTP, WeChat played by the stand-in; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(wechat={**PROD_WECHAT, "api_base_url": standin.url, "oauth_base_url": standin.url + "connect/"},
                   app={**PROD_APP, "public_url": url})
    # Plain HTTP on loopback: in production TLS ends at the proxy and the cookie is Secure.
    app.config["SESSION_COOKIE_SECURE"] = False
    _with_park(app, {"xinghu": STEWARD_WX})
    srv = _serve(app, port)
    yield app, url
    srv.shutdown()


def _enter(standin, url: str, openid: str, browser=requests):
    """Opens the console's WeChat entry as the given WeChat user; the final response."""
    standin.oauth_reader = openid
    return browser.get(f"{url}/console/wechat/login", timeout=10)


def _audit(app, action: str) -> list[AuditEntry]:
    """Audit entries of one action, oldest first."""
    with app.extensions["redsteward.sessions"]() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_a_linked_steward_enters_from_wechat_without_a_password(prod, standin):
    app, url = prod
    phone = requests.Session()
    resp = _enter(standin, url, STEWARD_WX, phone)
    assert resp.status_code == 200 and _landed(resp) == f"{url}/console/requests"
    assert "王红梅" in resp.text and "星湖社区" in resp.text
    asked = standin.authorize_requests[-1]
    assert asked["appid"] == PROD_WECHAT["appid"] and asked["scope"] == "snsapi_base"
    assert asked["redirect_uri"] == f"{url}/console/wechat/return" and asked["state"]
    # Only the steward's own community.
    assert phone.get(f"{url}/console/requests/999999", timeout=10).status_code == 404
    logins = _audit(app, "login")
    assert [(e.username, e.detail) for e in logins] == [("xinghu", {"via": "wechat"})]
    # Coming back with the same code and state (a replayed redirect) opens nothing.
    back = resp.history[-1].url
    assert "/console/wechat/return?code=" in back
    assert phone.get(back, timeout=10).status_code == 400
    assert requests.get(back, timeout=10).status_code == 400


def test_an_unlinked_wechat_is_told_whom_to_ask(prod, standin):
    app, url = prod
    resp = _enter(standin, url, "o_somebody_new")
    assert resp.status_code == 403
    assert "您的微信还没有绑定工作台账号" in resp.text and "工作台管理员" in resp.text and "我的账号" in resp.text
    assert requests.get(f"{url}/console/requests", timeout=10, allow_redirects=False).status_code == 302
    failed = _audit(app, "login_failed")
    assert failed[-1].detail == {"via": "wechat", "reason": "not linked"}


def test_a_disabled_account_cannot_enter_from_wechat(prod, standin):
    app, url = prod
    Console(app, "admin").post(f"/console/users/{_uid(app, 'xinghu')}/active", {"active": "0"})
    resp = _enter(standin, url, STEWARD_WX)
    assert resp.status_code == 403 and "账号已停用" in resp.text


def test_a_forged_or_missing_state_opens_nothing(prod, standin):
    app, url = prod
    victim = requests.Session()
    # The attacker starts a flow in their own browser and makes the victim's browser finish it.
    attacker = requests.Session()
    standin.oauth_reader = "o_attacker"
    first = attacker.get(f"{url}/console/wechat/login", timeout=10, allow_redirects=False)
    authorize = attacker.get(first.headers["Location"], timeout=10, allow_redirects=False)
    back = authorize.headers["Location"]
    assert victim.get(back, timeout=10).status_code == 400
    assert victim.get(f"{url}/console/wechat/return?code=made-up&state=guess", timeout=10).status_code == 400
    # A right state with a code WeChat never issued is refused too.
    own = victim.get(f"{url}/console/wechat/login", timeout=10, allow_redirects=False)
    state = parse_qs(urlsplit(own.headers["Location"]).query)["state"][0]
    assert victim.get(f"{url}/console/wechat/return?code=made-up&state={state}", timeout=10).status_code == 400
    assert victim.get(f"{url}/console/requests", timeout=10, allow_redirects=False).status_code == 302


def test_wechat_sign_in_starts_a_new_session(prod, standin):
    """A cookie planted before the flow is not the signed-in session after it (session fixation)."""
    app, _ = prod
    client = app.test_client()
    client.get("/console/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
        csrf_before = sess["csrf"]
    standin.oauth_reader = STEWARD_WX
    start = client.get("/console/wechat/login")
    # WeChat's page is on another host: ask it directly, then come back as the browser would.
    back = requests.get(start.headers["Location"], timeout=10, allow_redirects=False).headers["Location"]
    done = client.get(back.removeprefix(app.config["REDSTEWARD"]["app"]["public_url"]))
    assert done.status_code == 302 and done.headers["Location"].endswith("/console/requests")
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["csrf"] != csrf_before and sess["uid"] == _uid(app, "xinghu")


def test_failures_from_one_address_lock_wechat_sign_in_too(prod, standin):
    app, url = prod
    app.config["CONSOLE_MAX_FAILURES_PER_ADDRESS"] = 3
    for _ in range(3):
        assert _enter(standin, url, "o_stranger").status_code == 403
    resp = _enter(standin, url, STEWARD_WX)
    assert resp.status_code == 429 and "尝试次数过多" in resp.text


def test_a_steward_binds_their_wechat_once_with_the_link_from_their_account_page(prod, standin):
    app, url = prod
    desk = requests.Session()
    page = desk.get(f"{url}/console/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    desk.post(f"{url}/console/login", data={"username": "hanlin", "password": "hongguan-demo", "csrf_token": token},
              timeout=10)
    account = desk.get(f"{url}/console/account", timeout=10).text
    assert "未绑定" in account
    token = re.search(r'name="csrf_token" value="([^"]+)"', account).group(1)
    shown = desk.post(f"{url}/console/account/wechat-link", data={"csrf_token": token}, timeout=10).text
    link = re.search(r'<p class="once">([^<]+)</p>', shown).group(1)
    assert link.startswith(f"{url}/console/wechat/bind/") and "data:image/svg+xml;base64," in shown
    phone = requests.Session()
    standin.oauth_reader = "o_li_jianguo_wx"
    bound = phone.get(link, timeout=10)
    assert bound.status_code == 200 and "绑定成功" in bound.text
    # The link works once.
    assert "绑定链接已失效" in requests.get(link, timeout=10).text
    entered = _enter(standin, url, "o_li_jianguo_wx", phone)
    assert _landed(entered) == f"{url}/console/requests" and "李建国" in entered.text
    assert "已绑定" in desk.get(f"{url}/console/account", timeout=10).text
    assert [e.detail for e in _audit(app, "wechat_link")] == [{"via": "link"}]
    # A WeChat linked to one account cannot be bound to a second one.
    second = Console(app, "xhy_pm").post("/console/account/wechat-link").get_data(as_text=True)
    other_link = re.search(r'<p class="once">([^<]+)</p>', second).group(1)
    resp = phone.get(other_link, timeout=10)
    assert resp.status_code == 409 and "已绑定其他账号" in resp.text


def test_wechat_unavailable_gets_a_kind_page(make_app):
    port, dead = free_port(), free_port()
    app = make_app(wechat={**PROD_WECHAT, "api_base_url": f"http://127.0.0.1:{dead}/",
                           "oauth_base_url": f"http://127.0.0.1:{dead}/connect/", "timeout_seconds": 2.0},
                   app={**PROD_APP, "public_url": f"http://127.0.0.1:{port}"})
    client = app.test_client()
    state = parse_qs(urlsplit(client.get("/console/wechat/login").headers["Location"]).query)["state"][0]
    resp = client.get(f"/console/wechat/return?code=c&state={state}")
    assert resp.status_code == 502 and "暂时无法确认您的身份" in resp.get_data(as_text=True)


def test_in_the_sandbox_the_same_flow_runs_against_its_own_stand_in(make_app):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = _with_park(make_app(app={"public_url": url}), {"xhy_pm": "sandbox_liaison_xhy_pm"})
    srv = _serve(app, port)
    try:
        phone = requests.Session()
        ask = phone.get(f"{url}/console/wechat/login", timeout=10)
        assert ask.url.startswith(f"{url}/sandbox/connect/oauth2/authorize?") and "微信网页授权" in ask.text
        assert "sandbox_liaison_xhy_pm" in ask.text  # offered among the directory's people
        query = {k: v[0] for k, v in parse_qs(urlsplit(ask.url).query).items()}
        granted = phone.get(f"{url}/sandbox/connect/oauth2/authorize",
                            params={**query, "openid": "sandbox_liaison_xhy_pm"}, timeout=10)
        assert _landed(granted) == f"{url}/console/requests" and "星湖苑物业" in granted.text
        code_url = granted.history[-2].headers["Location"] if len(granted.history) > 1 else None
        assert code_url and "/console/wechat/return?code=" in code_url
        # The sandbox's codes work once, like WeChat's.
        code = parse_qs(urlsplit(code_url).query)["code"][0]
        exchange = requests.get(f"{url}/sandbox/api/sns/oauth2/access_token", timeout=10,
                                params={"appid": app.config["REDSTEWARD"]["wechat"]["appid"],
                                        "secret": app.config["REDSTEWARD"]["wechat"]["appsecret"], "code": code})
        assert exchange.json()["errcode"] == 40163
        # Another site cannot be the redirect target.
        evil = phone.get(f"{url}/sandbox/connect/oauth2/authorize", timeout=10,
                         params={**query, "redirect_uri": "https://evil.example/steal", "openid": "x"})
        assert evil.status_code == 400
    finally:
        srv.shutdown()


def test_staff_find_the_console_in_chat_and_on_their_request_page(app, client, sessions):
    ref = park_with_request(sessions, "o_resident_entry", "楼道灯坏了")
    reply = WeChatSim(app, client).text("sandbox_steward_xinghu", "工作台")
    assert f"{app.config['REDSTEWARD']['app']['public_url']}/console/wechat/login" in reply
    assert "工作台" in WeChatSim(app, client).text("sandbox_steward_xinghu", "红管帮助")
    # A resident typing the word gets no console link.
    assert "/console/" not in WeChatSim(app, client).text("o_resident_entry", "工作台")
    from handlers.request_links import page_token
    secret = app.config["SECRET_KEY"]
    staff_page = client.get(f"/m/requests/{ref}?t={page_token(secret, ref, 'sandbox_steward_xinghu')}")
    assert 'id="console-entry"' in staff_page.get_data(as_text=True)
    resident_page = client.get(f"/m/requests/{ref}?t={page_token(secret, ref, 'r')}")
    assert 'id="console-entry"' not in resident_page.get_data(as_text=True)


def _landed(resp) -> str:
    """Where the browser ended up (the #wechat_redirect marker of WeChat's URL rides along in requests)."""
    return resp.url.split("#", 1)[0]


def _uid(app, username: str) -> int:
    """An account's id."""
    with app.extensions["redsteward.sessions"]() as s:
        return s.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username))
