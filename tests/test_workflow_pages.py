"""The request page: signed links for the resident and for staff, timeline, actions, rating."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from handlers.request_links import page_url
from models import OutboxMessage, ServiceRequest, utcnow

from .park import park_with_request
from .wechat_standin import standin  # noqa: F401  (fixture)

STEWARD = "sandbox_steward_xinghu"
LIAISON = "sandbox_liaison_xhy_pm"


@pytest.fixture
def park(app, sessions):
    """The example park and one filed request; returns its reference."""
    return park_with_request(sessions, "o_page_resident", "地下车库漏水", name="张小芳", mobile="13812345678")


def link(app, ref, viewer="r") -> str:
    """The path and query of a page link, as sent in a template message."""
    url = urlsplit(page_url(app.extensions["redsteward.services"], ref, viewer))
    return f"{url.path}?{url.query}"


def status(sessions, ref) -> str:
    """The stored status."""
    with sessions() as s:
        return s.scalar(select(ServiceRequest.status).where(ServiceRequest.ref == ref))


def test_a_number_alone_or_a_forged_link_opens_nothing(app, client, park):
    assert client.get(f"/m/requests/{park}").status_code == 404
    good = link(app, park)
    assert client.get(good[:-3] + "abc").status_code == 404
    other = link(app, "99999999")
    assert client.get(f"/m/requests/{park}?" + other.split("?")[1]).status_code == 404
    page = client.get(good)
    assert page.status_code == 200 and "地下车库漏水" in page.get_data(as_text=True)


def test_staff_work_the_request_from_the_page(app, client, park, sessions):
    steward = link(app, park, STEWARD)
    html = client.get(steward).get_data(as_text=True)
    assert "分类受理" in html and "张*芳 138****5678" in html  # contact masked even for staff
    resp = client.post(steward, data={"action": "classify", "type": "market_service", "category": "物业服务"})
    assert resp.status_code == 303 and status(sessions, park) == "accepted"
    resp = client.post(steward, data={"action": "route", "handler": "物业"})
    assert resp.status_code == 303 and status(sessions, park) == "routed"
    liaison = link(app, park, LIAISON)
    html = client.get(liaison).get_data(as_text=True)
    assert "回复居民" in html and "value=\"classify\"" not in html
    # A liaison cannot classify, even by posting the form by hand.
    resp = client.post(liaison, data={"action": "classify", "type": "government", "category": "x"})
    assert resp.status_code == 400 and "别人刚处理过" in resp.get_data(as_text=True)
    assert client.post(liaison, data={"action": "answer", "text": "今天下午派人查看"}).status_code == 303
    resident_page = client.get(link(app, park)).get_data(as_text=True)
    assert "今天下午派人查看" in resident_page and "星湖苑物业服务中心" in resident_page
    with sessions() as s:
        to = [(m.recipient, m.payload.get("purpose")) for m in s.scalars(select(OutboxMessage))]
    assert (LIAISON, "new_request") in to and ("o_page_resident", "request_update") in to


def test_empty_reply_is_refused_kindly_and_changes_nothing(app, client, park, sessions):
    steward = link(app, park, STEWARD)
    client.post(steward, data={"action": "classify", "type": "market_service", "category": "物业服务"})
    client.post(steward, data={"action": "route", "handler": "物业"})
    resp = client.post(steward, data={"action": "answer", "text": "  "})
    assert resp.status_code == 400 and "请写上内容" in resp.get_data(as_text=True)
    assert status(sessions, park) == "routed"


def test_resident_rates_on_the_page(app, client, park, sessions):
    steward = link(app, park, STEWARD)
    client.post(steward, data={"action": "classify", "type": "market_service", "category": "物业服务"})
    client.post(steward, data={"action": "route", "handler": "星湖苑物业服务中心"})
    client.post(steward, data={"action": "resolve", "text": "已修补管道"})
    page = link(app, park)
    assert "请您评价" in client.get(page).get_data(as_text=True)
    resp = client.post(page, data={"rating": "unsatisfied", "comment": "还在滴水"})
    assert resp.status_code == 303 and status(sessions, park) == "reopened"
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已提交" in html and "还在滴水" in html and "请您评价" not in html
    assert client.post(page, data={"rating": "satisfied"}).status_code == 400  # nothing to rate now
    with sessions() as s:
        notes = [m for m in s.scalars(select(OutboxMessage)) if m.recipient == LIAISON]
    assert notes[-1].payload["data"]["phrase2"]["value"] == "重新办理"


def test_closing_as_duplicate_shows_the_reason_to_the_resident(app, client, park, sessions):
    steward = link(app, park, STEWARD)
    resp = client.post(steward, data={"action": "close", "reason": "duplicate", "note": "与编号 12345678 同一事项"})
    assert resp.status_code == 303 and status(sessions, park) == "closed"
    html = client.get(link(app, park)).get_data(as_text=True)
    assert "重复诉求：与编号 12345678 同一事项" in html


def test_a_department_opens_the_link_from_its_email(app, client, park, sessions):
    steward = link(app, park, STEWARD)
    client.post(steward, data={"action": "classify", "type": "government", "category": "规划建设"})
    client.post(steward, data={"action": "route", "handler": "园区规划建设委员会"})
    with sessions() as s:
        mail = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    url = next(line for line in mail.payload["body"].splitlines() if "/m/requests/" in line)
    dept = f"{urlsplit(url).path}?{urlsplit(url).query}"
    assert client.post(dept, data={"action": "answer", "text": "已列入明年计划"}).status_code == 303
    with sessions() as s:
        req = s.scalar(select(ServiceRequest))
        assert req.status == "answered" and req.answer == "已列入明年计划"
        assert req.answered_at <= utcnow()


def test_outside_the_sandbox_wechat_must_confirm_the_reader(make_app, standin):
    app = make_app(wechat={"sandbox": False, "appid": "wxprod0000000001", "appsecret": "prod-secret",
                           "token": "prodtoken", "api_base_url": standin.url},
                   app={"secret_key": "k" * 40, "pii_key": "p" * 40, "public_url": "https://steward.example.org"})
    ref = park_with_request(app.extensions["redsteward.sessions"], "o_prod_resident", "单元门禁坏了")
    steward = link(app, ref, STEWARD)
    https = {"base_url": "https://steward.example.org"}

    def sign_in_as(client, openid, code):
        """Opens the link, follows WeChat's silent OAuth as `openid`, returns the final response."""
        first = client.get(steward, **https)
        assert first.status_code == 302
        target = urlsplit(first.headers["Location"])
        assert target.netloc == "open.weixin.qq.com" and "scope=snsapi_base" in target.query
        assert "wxprod0000000001" in target.query and target.fragment == "wechat_redirect"
        state = dict(pair.split("=", 1) for pair in target.query.split("&"))["state"]
        standin.oauth_codes[code] = openid
        back = client.get(f"/m/oauth?code={code}&state={state}", **https)
        assert back.status_code == 302 and back.headers["Location"].startswith(f"/m/requests/{ref}?t=")
        return client.get(back.headers["Location"], **https)

    owner = sign_in_as(app.test_client(), STEWARD, "code-1")
    assert owner.status_code == 200 and "单元门禁坏了" in owner.get_data(as_text=True)
    forwarded = sign_in_as(app.test_client(), "o_someone_else", "code-2")
    assert forwarded.status_code == 403 and "发给别人" in forwarded.get_data(as_text=True)
    assert "单元门禁坏了" not in forwarded.get_data(as_text=True)
    # A made-up state or a code WeChat never issued opens nothing.
    stranger = app.test_client()
    stranger.get(steward, **https)
    assert stranger.get("/m/oauth?code=forged&state=guess", **https).status_code == 400
