"""The API client: every call under api_base_url, one shared token, bounded refresh on 40001."""
from __future__ import annotations

import threading
import time

import requests

import pytest
from wechatpy.exceptions import WeChatClientException

from bot.media import download
from bot.outbox import Permanent
from bot.wechat_api import ApiClient, RedisTokenStore, TokenStore, build_client

from .conftest import REDIS_URL
from .wechat_standin import ROOT, standin  # noqa: F401  (fixture)


@pytest.fixture
def settings(make_app, standin):
    app = make_app(wechat={"api_base_url": standin.url}, redis={"url": ""})
    return app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]


def test_calls_go_under_the_configured_base_url(settings, standin):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    client.post("message/template/send", data={"touser": "o1", "template_id": "t", "data": {}})
    assert [c["path"] for c in standin.calls] == ["stable_token", "message/template/send"]


def test_processes_share_one_token(settings, standin):
    cfg, sessions = settings
    a, b = build_client(cfg, sessions), build_client(cfg, sessions)
    a.post("menu/create", data={})
    b.post("menu/create", data={})
    assert len(standin.token_requests) == 1


def test_concurrent_first_calls_fetch_one_token(make_app, standin):
    app = make_app(wechat={"api_base_url": standin.url}, redis={"url": ""})
    cfg, sessions = app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]
    build_client(cfg, sessions).post("menu/create", data={})  # creates the row
    standin.expire(standin.tokens[0])
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
    assert len(standin.token_requests) == 2  # the expired one, then exactly one refresh for all four


def test_invalid_token_refreshes_once_and_retries_once(settings, standin):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    client.post("menu/create", data={})
    standin.fail_next(40001)
    client.post("menu/create", data={})
    assert len(standin.token_requests) == 2
    assert len(standin.calls_to("menu/create")) == 3


def test_token_errors_do_not_recurse_without_bound(settings, standin):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    standin.fail_next(42001, 42001, 42001, 42001)
    with pytest.raises(WeChatClientException) as exc:
        client.post("menu/create", data={})
    assert exc.value.errcode == 42001
    assert len(standin.calls_to("menu/create")) == 2


def test_token_fetch_honours_the_timeout(make_app, standin):
    app = make_app(wechat={"api_base_url": standin.url, "timeout_seconds": 0.5}, redis={"url": ""})
    client = build_client(app.config["REDSTEWARD"], app.extensions["redsteward.sessions"])
    standin.fail_next_token("hang")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        client.post("menu/create", data={})
    assert time.monotonic() - started < 2
    assert standin.calls_to("menu/create") == []


def test_redis_store_shares_the_token(make_app, standin):
    import redis
    r = redis.Redis.from_url(REDIS_URL)
    r.delete("redsteward:token:wxsandbox0000000")
    app = make_app(wechat={"api_base_url": standin.url}, redis={"url": REDIS_URL})
    cfg, sessions = app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]
    a, b = build_client(cfg, sessions), build_client(cfg, sessions)
    assert isinstance(a.store, RedisTokenStore)
    a.post("menu/create", data={})
    b.post("menu/create", data={})
    assert len(standin.token_requests) == 1
    r.delete("redsteward:token:wxsandbox0000000")


def test_media_is_fetched_once_byte_for_byte_and_an_unknown_id_is_gone(settings, standin, tmp_path):
    cfg, sessions = settings
    client = build_client(cfg, sessions)
    photo = (ROOT / "static" / "sandbox-photo.png").read_bytes()
    media_id = client.media.upload("image", ("photo.png", photo, "image/png"))["media_id"]
    cfg = {**cfg, "app": {**cfg["app"], "media_dir": str(tmp_path)}}
    stored = download(client, cfg, {"media_id": media_id, "file": "image/1.png"})
    assert stored.read_bytes() == photo
    assert download(client, cfg, {"media_id": media_id, "file": "image/1.png"}) == stored
    assert len(standin.calls_to("media/get")) == 1  # kept: WeChat's download quota is 10,000 a day
    with pytest.raises(Permanent, match="expired"):
        download(client, cfg, {"media_id": "expired-1", "file": "image/2.png"})
