"""The API client: every call under api_base_url, one shared token, bounded refresh on 40001."""
from __future__ import annotations

import threading
import time

import requests

import pytest
from wechatpy.exceptions import WeChatClientException

from bot.wechat_api import ApiClient, RedisTokenStore, TokenStore, build_client

from .apistub import ApiStub
from .conftest import REDIS_URL


@pytest.fixture
def stub():
    with ApiStub() as s:
        yield s


@pytest.fixture
def settings(make_app, stub):
    app = make_app(wechat={"api_base_url": stub.base_url}, redis={"url": ""})
    return app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]


def test_calls_go_under_the_configured_base_url(settings, stub):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    client.post("message/template/send", data={"touser": "o1", "template_id": "t", "data": {}})
    assert [c["endpoint"] for c in stub.calls] == ["stable_token", "message/template/send"]


def test_processes_share_one_token(settings, stub):
    cfg, sessions = settings
    a, b = build_client(cfg, sessions), build_client(cfg, sessions)
    a.post("menu/create", data={})
    b.post("menu/create", data={})
    assert stub.tokens_issued == 1


def test_concurrent_first_calls_fetch_one_token(make_app, stub, tmp_path):
    app = make_app(wechat={"api_base_url": stub.base_url}, redis={"url": ""})
    cfg, sessions = app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]
    build_client(cfg, sessions).post("menu/create", data={})  # creates the row
    stub.expire("tok1")
    clients = [build_client(cfg, sessions) for _ in range(4)]
    errors = []

    def call(c):
        try:
            c.post("menu/create", data={})
        except Exception as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)
    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert stub.tokens_issued == 2  # the expired one, then exactly one refresh for all four


def test_invalid_token_refreshes_once_and_retries_once(settings, stub):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    client.post("menu/create", data={})
    stub.fail_next(40001)
    client.post("menu/create", data={})
    assert stub.tokens_issued == 2
    assert len(stub.calls_to("menu/create")) == 3


def test_token_errors_do_not_recurse_without_bound(settings, stub):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    stub.fail_next(42001, 42001, 42001, 42001)
    with pytest.raises(WeChatClientException) as exc:
        client.post("menu/create", data={})
    assert exc.value.errcode == 42001
    assert len(stub.calls_to("menu/create")) == 2


def test_token_fetch_honours_the_timeout(make_app, stub):
    app = make_app(wechat={"api_base_url": stub.base_url, "timeout_seconds": 0.5}, redis={"url": ""})
    client = build_client(app.config["REDSTEWARD"], app.extensions["redsteward.sessions"])
    stub.fail_next("hang_token")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        client.post("menu/create", data={})
    assert time.monotonic() - started < 2
    assert stub.calls_to("menu/create") == []


def test_redis_store_shares_the_token(make_app, stub):
    import redis
    r = redis.Redis.from_url(REDIS_URL)
    r.delete("redsteward:token:wxsandbox0000000")
    app = make_app(wechat={"api_base_url": stub.base_url}, redis={"url": REDIS_URL})
    cfg, sessions = app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]
    a, b = build_client(cfg, sessions), build_client(cfg, sessions)
    assert isinstance(a.store, RedisTokenStore)
    a.post("menu/create", data={})
    b.post("menu/create", data={})
    assert stub.tokens_issued == 1
    r.delete("redsteward:token:wxsandbox0000000")
