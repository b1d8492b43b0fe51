"""Account management in the console: admins create, change, disable and reset accounts; all audited."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from models import AuditEntry, ConsoleUser
from models.user import UserError, change_role, create_user, link_wechat, set_active

from .test_console_support import Console, park  # noqa: F401  (fixture)


def _user(sessions, username: str) -> ConsoleUser | None:
    """An account as stored."""
    with sessions() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
        if user is not None:
            user.org  # noqa: B018  (load before the session closes)
        return user


def _actions(sessions, target: str) -> list[str]:
    """The audited actions on an account, oldest first."""
    with sessions() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.target == f"user:{target}")
                              .order_by(AuditEntry.id)))


def _shown_password(html: str) -> str:
    """The password the page shows once."""
    return re.search(r'<p class="once">([^<]+)</p>', html).group(1)


def test_an_admin_creates_a_steward_who_signs_in_with_the_generated_password(park, sessions):
    admin = Console(park, "admin")
    resp = admin.post("/console/users", {"username": "chen_xh", "display_name": "陈晓红", "role": "steward",
                                         "org_steward": "xinghu", "org_liaison": "xhy_pm",
                                         "password_mode": "generate"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "账号已创建" in html and "只显示这一次" in html
    password = _shown_password(html)
    user = _user(sessions, "chen_xh")
    assert user.role == "steward" and user.org.code == "xinghu" and user.display_name == "陈晓红"
    assert password not in user.password_hash
    # The page of the account shows the password no more.
    assert password not in admin.get(f"/console/users/{user.id}").get_data(as_text=True)
    listing = admin.get("/console/users").get_data(as_text=True)
    assert "chen_xh" in listing and "陈晓红" in listing and "星湖社区" in listing
    steward = Console(park)
    assert steward.login("chen_xh", password).status_code == 302
    inbox = steward.get("/console/requests").get_data(as_text=True)
    assert "陈晓红" in inbox and park.config["TEST_IDS"]["xinghu_ref"] in inbox
    assert park.config["TEST_IDS"]["hanlin_ref"] not in inbox
    assert _actions(sessions, "chen_xh") == ["user_create"]


@pytest.mark.parametrize("form,message", [
    ({"username": "x1", "role": "steward", "org_steward": ""}, "需要选择所属组织"),
    ({"username": "x2", "role": "street_staff", "org_street_staff": "xinghu"}, "所选组织与角色不符"),
    ({"username": "admin", "role": "admin"}, "用户名已被使用"),
    ({"username": "x3", "role": "janitor"}, "请选择角色"),
    ({"username": "x4", "role": "admin", "password_mode": "set", "password": "short"}, "至少 10 个字符"),
])
def test_a_wrong_account_form_is_explained_and_creates_nothing(park, sessions, form, message):
    resp = Console(park, "admin").post("/console/users", {"password_mode": "generate", **form})
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)
    if form["username"] != "admin":
        assert _user(sessions, form["username"]) is None


def test_disabling_signs_the_account_out_at_once_and_enabling_lets_it_back(park, sessions):
    steward = Console(park, "xinghu")
    assert steward.get("/console/requests").status_code == 200
    admin = Console(park, "admin")
    uid = _user(sessions, "xinghu").id
    html = admin.post(f"/console/users/{uid}/active", {"active": "0"}).get_data(as_text=True)
    assert "账号已停用" in html
    assert steward.get("/console/requests").status_code == 302
    assert Console(park).login("xinghu").status_code == 401
    admin.post(f"/console/users/{uid}/active", {"active": "1"})
    assert Console(park).login("xinghu").status_code == 302
    assert _actions(sessions, "xinghu") == ["user_disable", "user_enable"]


def test_an_admin_cannot_disable_themselves_or_change_their_own_role(park, sessions):
    admin = Console(park, "admin")
    uid = _user(sessions, "admin").id
    for action, form in (("active", {"active": "0"}), ("role", {"role": "steward", "org_steward": "xinghu"})):
        resp = admin.post(f"/console/users/{uid}/{action}", form)
        assert resp.status_code == 400 and "不能停用自己的账号" in resp.get_data(as_text=True)
    user = _user(sessions, "admin")
    assert user.active and user.role == "admin"
    assert admin.get("/console/users").status_code == 200
    assert _actions(sessions, "admin") == []


def test_the_last_admin_cannot_be_disabled_or_demoted(park, sessions):
    with sessions() as s:
        only = s.scalar(select(ConsoleUser).where(ConsoleUser.username == "admin"))
        for refused in (lambda: set_active(s, only, False), lambda: change_role(s, only, "steward", "xinghu")):
            with pytest.raises(UserError) as exc:
                refused()
            assert exc.value.code == "last_admin"
        second = create_user(s, "admin2", "second-admin-pw", "admin")
        s.flush()
        set_active(s, only, False)  # another active admin remains
        with pytest.raises(UserError):
            set_active(s, second, False)
    # Through the page: a second admin, then the first disables... the second, who is not the last.
    admin = Console(park, "admin")
    admin.post("/console/users", {"username": "admin3", "role": "admin", "password_mode": "generate"})
    uid = _user(sessions, "admin3").id
    assert "账号已停用" in admin.post(f"/console/users/{uid}/active", {"active": "0"}).get_data(as_text=True)


def test_a_password_reset_ends_the_accounts_sessions(park, sessions):
    steward = Console(park, "hanlin")
    admin = Console(park, "admin")
    uid = _user(sessions, "hanlin").id
    resp = admin.post(f"/console/users/{uid}/password", {"password_mode": "set", "password": "fresh-password-7"})
    assert "密码已重置" in resp.get_data(as_text=True)
    assert steward.get("/console/requests").status_code == 302
    assert Console(park).login("hanlin").status_code == 401
    assert Console(park).login("hanlin", "fresh-password-7").status_code == 302
    generated = _shown_password(admin.post(f"/console/users/{uid}/password",
                                           {"password_mode": "generate"}).get_data(as_text=True))
    assert Console(park).login("hanlin", generated).status_code == 302
    assert admin.get("/console/requests").status_code == 200  # the admin's own session is untouched
    with sessions() as s:
        details = [e.detail for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "password_reset"))]
    assert details == [{"generated": False}, {"generated": True}]  # never the password itself


def test_a_new_scope_applies_at_once(park, sessions):
    ids = park.config["TEST_IDS"]
    admin = Console(park, "admin")
    uid = _user(sessions, "xinghu").id
    admin.post(f"/console/users/{uid}/role", {"role": "steward", "org_steward": "hanlin"})
    steward = Console(park, "xinghu")
    assert steward.get(f"/console/requests/{ids['hanlin']}").status_code == 200
    assert steward.get(f"/console/requests/{ids['xinghu']}").status_code == 404
    admin.post(f"/console/users/{uid}/role", {"role": "liaison", "org_liaison": "xhy_pm"})
    assert steward.get("/console/requests").status_code == 302  # signed out by the change
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "user_update")
                          .order_by(AuditEntry.id.desc())).first()
    assert entry.detail == {"before": {"role": "steward", "org": "hanlin"},
                            "after": {"role": "liaison", "org": "xhy_pm"}}


def test_an_admin_links_and_unlinks_a_wechat_from_the_directory(park, sessions):
    admin = Console(park, "admin")
    uid = _user(sessions, "xinghu").id
    page = admin.get(f"/console/users/{uid}").get_data(as_text=True)
    person = re.search(r'<option value="(steward:\d+)">王红梅</option>', page).group(1)
    assert "已绑定" in admin.post(f"/console/users/{uid}/wechat-link", {"person": person}).get_data(as_text=True)
    assert _user(sessions, "xinghu").wechat_openid == "sandbox_steward_xinghu"
    # The same WeChat cannot open a second account.
    other = _user(sessions, "hanlin").id
    with sessions() as s:
        with pytest.raises(UserError):
            link_wechat(s, s.get(ConsoleUser, other), "sandbox_steward_xinghu")
    # A person of another organisation is not offered, and not accepted either.
    resp = admin.post(f"/console/users/{other}/wechat-link", {"person": person})
    assert resp.status_code == 400 and _user(sessions, "hanlin").wechat_openid is None
    assert "已解除微信绑定" in admin.post(f"/console/users/{uid}/wechat-unlink").get_data(as_text=True)
    assert _user(sessions, "xinghu").wechat_openid is None
    assert _actions(sessions, "xinghu") == ["wechat_link", "wechat_unlink"]
    audit = admin.get("/console/audit?action=wechat_link").get_data(as_text=True)
    assert "绑定微信" in audit and "user:xinghu" in audit


def test_park_wide_roles_are_not_offered_a_wechat_link(park, sessions):
    page = Console(park, "orgdept").get("/console/account").get_data(as_text=True)
    assert "生成微信绑定链接" not in page and "用户名和密码登录" in page
    assert Console(park, "orgdept").post("/console/account/wechat-link").status_code == 403
