"""Console hostile input beyond test_console_auth.py: CSRF on every form route, a planted session cookie."""
from __future__ import annotations

import re

from flask import url_for
from werkzeug.routing import IntegerConverter

from bot.console.users import DEMO_PASSWORD

from .test_console_support import Console, park  # noqa: F401  (fixture)


def _sample_url(app, rule) -> str:
    """A concrete URL for a rule: 1 for numeric parts, "x" for the others."""
    values = {name: 1 if isinstance(conv, IntegerConverter) else "x" for name, conv in rule._converters.items()}
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _console_post_rules(app) -> list:
    """Every POST route under /console, as the app registers them today."""
    return sorted((r for r in app.url_map.iter_rules() if "POST" in r.methods and r.rule.startswith("/console")),
                  key=lambda r: r.rule)


def test_every_console_form_refuses_a_post_without_the_csrf_token(park):
    rules = _console_post_rules(park)
    assert len(rules) > 10  # the console's forms are all found, not silently none
    console = Console(park, "admin")
    for rule in rules:
        url = _sample_url(park, rule)
        for token in (None, "forged"):
            data = {"title": "伪造", "body": "x", "note": "x", "password": "x"}
            if token:
                data["csrf_token"] = token
            resp = console.client.post(url, data=data)
            assert resp.status_code == 400, (rule.rule, token, resp.status_code)
            assert "页面已过期" in resp.get_data(as_text=True), rule.rule
    assert console.get("/console/requests").status_code == 200  # still signed in, nothing broke


def test_a_session_cookie_planted_before_login_is_useless_after_it(park):
    """Session fixation: the attacker's pre-login cookie never becomes the signed-in session."""
    name = park.config["SESSION_COOKIE_NAME"]
    attacker = park.test_client()
    page = attacker.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    planted = attacker.get_cookie(name).value
    victim = park.test_client()
    victim.set_cookie(name, planted)
    resp = victim.post("/console/login", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/requests")
    assert victim.get_cookie(name).value != planted
    assert victim.get("/console/requests").status_code == 200
    # The attacker still holds the planted cookie: it is not signed in as the victim.
    assert attacker.get_cookie(name).value == planted
    assert attacker.get("/console/requests").status_code == 302
