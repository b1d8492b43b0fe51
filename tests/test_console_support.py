"""Shared pieces of the console tests: the demo park with one account per role, and a signed-in client.

No tests live here; the console test modules import these fixtures and helpers.
"""
from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.console.users import DEMO_PASSWORD
from models import Estate, Organisation, Resident, file_request, routing, utcnow
from models import workflow as wf
from models.timeline import Actor

# username → role, as bot/console/users.py DEMO_USERS creates them with the demo park.
ACCOUNTS = {"admin": "admin", "orgdept": "organisation_department", "huxi": "street_staff",
            "xinghu": "steward", "hanlin": "steward", "xhy_pm": "liaison"}
STEWARD = Actor("steward", 1, "测试红管")


class Console:
    """A test client signed in to the console, sending the CSRF token with every form."""

    def __init__(self, app, username: str | None = None):
        """A fresh client; signs in when a username is given."""
        self.app = app
        self.client = app.test_client()
        if username:
            self.login(username)

    def token(self) -> str:
        """The session's CSRF token (a page visit creates it)."""
        with self.client.session_transaction() as sess:
            if "csrf" not in sess:
                self.client.get("/console/login")
        with self.client.session_transaction() as sess:
            return sess["csrf"]

    def login(self, username: str, password: str = DEMO_PASSWORD):
        """Signs in through the form, as a person would."""
        page = self.client.get("/console/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return self.client.post("/console/login", data={"username": username, "password": password,
                                                        "csrf_token": token})

    def get(self, url: str, **kw):
        """GET a console page."""
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, **kw):
        """POST a console form with the CSRF token."""
        return self.client.post(url, data={**(data or {}), "csrf_token": self.token()}, **kw)


def clear_redis_counters(app) -> None:
    """Forgets login failures counted in Redis by earlier tests (the database is fresh anyway)."""
    url = app.config["REDSTEWARD"]["redis"]["url"]
    if url:
        import redis
        client = redis.Redis.from_url(url)
        for key in client.scan_iter("console:login:*"):
            client.delete(key)
        client.close()


def org(s, code: str) -> Organisation:
    """The organisation with this code."""
    return s.scalar(select(Organisation).where(Organisation.code == code))


def estate(s, code: str) -> Estate:
    """The estate with this code."""
    return s.scalar(select(Estate).where(Estate.code == code))


def new_request(s, estate_code: str, description: str = "楼道灯坏了三天，晚上很黑", **fields):
    """Files a request in an estate (a resident with a mobile number filed it)."""
    place = estate(s, estate_code)
    resident = Resident(openid=f"o_{estate_code}_{os.urandom(4).hex()}", estate_id=place.id,
                        name="张小芳", mobile="13812345678", verified_at=utcnow())
    s.add(resident)
    s.flush()
    fields.setdefault("created_at", utcnow() - timedelta(hours=2))
    return file_request(s, kind="help", description=description, resident_id=resident.id,
                        estate_id=place.id, community_id=place.community_id, **fields)


def routed(s, req, handler_code: str, days: int = 5, at=None):
    """Classifies and routes a request with the workflow's own functions."""
    at = at or req.created_at
    wf.classify(s, req, STEWARD, "market_service", "物业服务", at)
    wf.route(s, req, STEWARD, org(s, handler_code), days, at)
    return req


@pytest.fixture
def park(demo, sessions, tmp_path):
    """The demo park, its accounts, and two requests: one routed in 星湖 (to 星湖苑物业), one new in 翰林.

    The routing rules are a copy, so a test that edits them leaves the shipped file alone.
    """
    clear_redis_counters(demo)
    rules = tmp_path / "routing.yaml"
    shutil.copy(routing.DEFAULT_PATH, rules)
    demo.config["ROUTING_PATH"] = str(rules)
    with sessions() as s:
        xinghu_req = routed(s, new_request(s, "xhy"), "xhy_pm")
        hanlin_req = new_request(s, "hlsy", "小区门口的路灯不亮了，请尽快修理")
        s.commit()
        ids = {"xinghu": xinghu_req.id, "hanlin": hanlin_req.id,
               "xinghu_ref": xinghu_req.ref, "hanlin_ref": hanlin_req.ref}
    demo.config["TEST_IDS"] = ids
    return demo
