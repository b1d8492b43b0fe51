"""The authorisation matrix: every role against every console page, action and export, by direct URL.

Expected answers: 200 (or a redirect after a successful form) where the role may act, 403 where the
role may not use the feature at all, 404 where the object is outside the user's scope.
"""
from __future__ import annotations

import pytest
import os

from sqlalchemy import func, select

from models import AuditEntry, OutboxMessage, Steward
from models.user import create_user, link_wechat

from .test_console_support import ACCOUNTS, Console, estate, new_request, org, park, routed  # noqa: F401

EVERYONE = set(ACCOUNTS)
STAFF = EVERYONE - {"xhy_pm"}
PARK_READERS = {"admin", "orgdept"}
# Who sees the 星湖 request (routed to 星湖苑物业) and the 翰林 request (not yet routed).
SEES_XINGHU = {"admin", "orgdept", "huxi", "xinghu", "xhy_pm"}
SEES_HANLIN = {"admin", "orgdept", "huxi", "hanlin"}

# (name, method, url template, form data, who gets through; everyone else gets `denied`).
PAGES = [
    ("inbox", "GET", "/console/requests", None, EVERYONE, 403),
    ("inbox filtered", "GET", "/console/requests?status=open&overdue=1", None, EVERYONE, 403),
    ("detail xinghu", "GET", "/console/requests/{xinghu}", None, SEES_XINGHU, 404),
    ("detail hanlin", "GET", "/console/requests/{hanlin}", None, SEES_HANLIN, 404),
    ("record offline page", "GET", "/console/requests/new", None, STAFF, 403),
    ("orgs", "GET", "/console/orgs", None, STAFF, 403),
    ("org edit page", "GET", "/console/orgs/1/edit", None, {"admin"}, 403),
    ("routing", "GET", "/console/routing", None, STAFF, 403),
    ("audit", "GET", "/console/audit", None, {"admin"}, 403),
    ("announcements", "GET", "/console/announcements", None, STAFF, 403),
    ("handbook", "GET", "/console/handbook?q=电梯", None, EVERYONE, 403),
    ("handbook new page", "GET", "/console/handbook/new", None, PARK_READERS, 403),
    ("resources", "GET", "/console/resources?directory=market", None, EVERYONE, 403),
    ("resource new page", "GET", "/console/resources/new", None, PARK_READERS | {"huxi"}, 403),
    ("dashboard", "GET", "/console/dashboard", None, PARK_READERS, 403),
    ("assessment", "GET", "/console/assessment", None, PARK_READERS, 403),
    ("assessment export", "GET", "/console/assessment.xlsx", None, PARK_READERS, 403),
    ("accounts", "GET", "/console/users", None, {"admin"}, 403),
    ("an account", "GET", "/console/users/{target}", None, {"admin"}, 403),
    ("own account", "GET", "/console/account", None, EVERYONE, 403),
]
WECHAT_USERS = {"xinghu", "hanlin", "xhy_pm"}



def outcome(ok: set, **others) -> dict:
    """user → expected outcome: 'ok' for the set given, the keyword's value for named users, else 403."""
    return {user: others.get(user, "ok" if user in ok else 403) for user in ACCOUNTS}


# (name, url template, form, user → 'ok' | 'refused' (kindly, nothing changed) | an HTTP status).
ACTIONS = [
    # The 翰林 request is new: classifying is its first step.
    ("classify hanlin", "/console/requests/{hanlin}/classify", {"type": "government", "category": "市容"},
     outcome(SEES_HANLIN, xinghu=404, xhy_pm=404)),
    ("close hanlin", "/console/requests/{hanlin}/close", {"reason": "withdrawn", "note": "居民已撤回"},
     outcome(SEES_HANLIN, xinghu=404, xhy_pm=404)),
    ("merge hanlin into the 星湖 one", "/console/requests/{hanlin}/merge", {"ref": "{xinghu_ref}"},
     outcome({"admin", "orgdept", "huxi"}, hanlin="refused", xinghu=404, xhy_pm=404)),
    # The 星湖 request is routed to 星湖苑物业: its liaison answers; a foreign steward cannot see it.
    ("answer xinghu", "/console/requests/{xinghu}/answer", {"text": "已安排电工今天下午维修。"},
     outcome(SEES_XINGHU, hanlin=404)),
    ("resolve xinghu", "/console/requests/{xinghu}/resolve", {"text": "灯已修好。"},
     outcome(SEES_XINGHU, hanlin=404)),
    ("escalate xinghu", "/console/requests/{xinghu}/escalate", {"reason": "物业迟迟不修"},
     outcome(SEES_XINGHU, hanlin=404)),
    ("transfer xinghu", "/console/requests/{xinghu}/transfer", {"handler_id": "{xhy_oc}"},
     outcome(SEES_XINGHU, hanlin=404)),
    ("classify hanlin with an unknown type", "/console/requests/{hanlin}/classify",
     {"type": "nonsense", "category": "市容"},
     outcome(set(), admin="refused", orgdept="refused", huxi="refused", hanlin="refused", xinghu=404,
             xhy_pm=404)),
    ("reveal mobile xinghu", "/console/requests/{xinghu}/mobile", {}, outcome(SEES_XINGHU, hanlin=404)),
    ("reveal mobile hanlin", "/console/requests/{hanlin}/mobile", {},
     outcome(SEES_HANLIN, xinghu=404, xhy_pm=404)),
    ("record offline in 星湖苑", "/console/requests/new",
     {"channel": "visit", "kind": "help", "estate_id": "{xhy_estate}", "description": "走访时居民反映电梯异响"},
     outcome({"admin", "orgdept", "huxi", "xinghu"}, hanlin=400)),
    ("publish park-wide", "/console/announcements", {"channel": "news", "title": "全园区通知", "body": "内容"},
     outcome(PARK_READERS, huxi=400, xinghu=400, hanlin=400)),
    ("publish to 星湖", "/console/announcements",
     {"channel": "news", "title": "星湖通知", "body": "内容", "community_id": "{xinghu_org}"},
     outcome({"admin", "orgdept", "huxi", "xinghu"}, hanlin=400)),
    ("edit an organisation", "/console/orgs/{xinghu_org}/edit", {"name": "星湖社区", "email": "xh@park.local"},
     outcome({"admin"})),
    ("edit the routing rules", "/console/routing", {"yaml": "rules: []\n"}, outcome({"admin"})),
    ("add a handbook entry", "/console/handbook/new", {"kind": "faq", "question": "问？", "answer": "答。"},
     outcome(PARK_READERS)),
    ("add a resource", "/console/resources/new", {"directory": "market", "name": "家电维修"},
     outcome(PARK_READERS | {"huxi"})),
    # Account management: admins only; the target accounts are fresh for every actor.
    ("create a steward account", "/console/users",
     {"username": "new_{fresh}", "role": "steward", "org_steward": "xinghu", "password_mode": "generate"},
     outcome({"admin"})),
    ("change an account's role and scope", "/console/users/{target}/role",
     {"role": "liaison", "org_liaison": "xhy_pm"}, outcome({"admin"})),
    ("disable an account", "/console/users/{target}/active", {"active": "0"}, outcome({"admin"})),
    ("enable an account", "/console/users/{target}/active", {"active": "1"}, outcome({"admin"})),
    ("reset a password (set)", "/console/users/{target}/password",
     {"password_mode": "set", "password": "a-new-password-42"}, outcome({"admin"})),
    ("reset a password (generated)", "/console/users/{target}/password", {"password_mode": "generate"},
     outcome({"admin"})),
    ("link a directory WeChat", "/console/users/{bare}/wechat-link", {"person": "steward:{steward}"},
     outcome({"admin"})),
    ("unlink WeChat", "/console/users/{target}/wechat-unlink", {}, outcome({"admin"})),
    ("binding link for an account", "/console/users/{target}/bind-link", {}, outcome({"admin"})),
    ("an unknown account action", "/console/users/{target}/promote", {}, outcome(set(), admin=404)),
    ("an account that does not exist", "/console/users/999999/active", {"active": "0"}, outcome(set(), admin=404)),
    ("own binding link", "/console/account/wechat-link", {}, outcome(WECHAT_USERS)),
]


def _ids(app, sessions) -> dict:
    """Fresh requests for one actor (so one role's action cannot block the next), and ids forms use."""
    fresh = os.urandom(4).hex()
    with sessions() as s:
        xinghu_req = routed(s, new_request(s, "xhy"), "xhy_pm")
        hanlin_req = new_request(s, "hlsy", "小区门口的路灯不亮了，请尽快修理")
        target = create_user(s, f"target_{fresh}", "target-password", "steward", "xinghu", "目标账号")
        link_wechat(s, target, f"o_target_{fresh}")
        bare = create_user(s, f"bare_{fresh}", "target-password", "steward", "xinghu")
        steward = s.scalar(select(Steward).where(Steward.openid == "sandbox_steward_xinghu"))
        s.commit()
        return {"xinghu": xinghu_req.id, "hanlin": hanlin_req.id, "xinghu_ref": xinghu_req.ref,
                "hanlin_ref": hanlin_req.ref, "xhy_oc": org(s, "xhy_oc").id, "xinghu_org": org(s, "xinghu").id,
                "xhy_estate": estate(s, "xhy").id, "fresh": fresh, "target": target.id, "bare": bare.id,
                "steward": steward.id}


def _audited(sessions, username: str) -> int:
    """How many audit entries a user has."""
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.username == username))


@pytest.mark.parametrize("user", sorted(ACCOUNTS))
def test_pages_by_role(park, sessions, user):
    ids = _ids(park, sessions)
    console = Console(park, user)
    for name, method, url, _, allowed, denied in PAGES:
        resp = console.get(url.format(**ids))
        expected = 200 if user in allowed else denied
        assert resp.status_code == expected, f"{user} {name}: {resp.status_code}, expected {expected}"


@pytest.mark.parametrize("name,url,data,expected", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_actions_by_role(park, sessions, name, url, data, expected):
    for user in sorted(ACCOUNTS):
        ids = _ids(park, sessions)
        console = Console(park, user)
        before = _audited(sessions, user)
        resp = console.post(url.format(**ids), {k: v.format(**ids) for k, v in data.items()})
        want = expected[user]
        if want == "ok":
            assert resp.status_code in (200, 302), f"{user} {name}: {resp.status_code}"
            assert _audited(sessions, user) == before + 1, f"{user} {name}: not done"
        elif want == "refused":
            assert resp.status_code == 302, f"{user} {name}: {resp.status_code}"
            assert _audited(sessions, user) == before, f"{user} {name}: done though it should be refused"
        else:
            assert resp.status_code == want, f"{user} {name}: {resp.status_code}, expected {want}"
            assert _audited(sessions, user) == before, f"{user} {name}: done though refused"


def test_anonymous_visitors_are_sent_to_the_login_page_everywhere(park, sessions):
    ids = _ids(park, sessions)
    client = park.test_client()
    for name, method, url, _, _, _ in PAGES:
        resp = client.get(url.format(**ids))
        assert resp.status_code == 302 and "/console/login" in resp.headers["Location"], name


def test_a_steward_lists_and_counts_only_their_community(park, sessions):
    ids = _ids(park, sessions)
    page = Console(park, "xinghu").get("/console/requests").get_data(as_text=True)
    assert ids["xinghu_ref"] in page and ids["hanlin_ref"] not in page
    assert "共 2 件" in page  # the fixture's request and this test's, both in 星湖
    page = Console(park, "hanlin").get(f"/console/requests?q={ids['xinghu_ref']}").get_data(as_text=True)
    assert f"/console/requests/{ids['xinghu']}\"" not in page and "没有符合条件的诉求" in page


def test_revealing_a_mobile_number_is_logged_for_admins_to_see(park, sessions):
    ids = _ids(park, sessions)
    detail = Console(park, "xinghu").get(f"/console/requests/{ids['xinghu']}").get_data(as_text=True)
    assert "138****5678" in detail and "13812345678" not in detail
    resp = Console(park, "xinghu").post(f"/console/requests/{ids['xinghu']}/mobile")
    assert "13812345678" in resp.get_data(as_text=True)
    audit = Console(park, "admin").get("/console/audit?action=reveal_mobile").get_data(as_text=True)
    assert "xinghu" in audit and f"request:{ids['xinghu_ref']}" in audit and "查看完整手机号" in audit


def test_a_steward_cannot_publish_to_another_community(park, sessions):
    ids = _ids(park, sessions)
    with sessions() as s:
        hanlin_id = org(s, "hanlin").id
    resp = Console(park, "xinghu").post("/console/announcements", {
        "channel": "news", "title": "越权通知", "body": "x", "community_id": str(hanlin_id), "push": "1"})
    assert resp.status_code == 400 and "只能发布到您负责的社区" in resp.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.idempotency_key.like("announcement:%"))) == 0
