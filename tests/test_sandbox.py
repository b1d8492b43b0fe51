"""Sandbox mode as a person uses it: the simulator page, a chat, the steward's template message."""
from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from .wechat_standin import free_port


@pytest.fixture
def served(make_app):
    """The sandbox app on a real loopback port, so the outbox reaches the stand-in over HTTP."""
    port = free_port()
    app = make_app(app={"public_url": f"http://127.0.0.1:{port}"})
    from bot import demo
    with app.extensions["redsteward.sessions"]() as s:
        demo.load(s)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_simulator_page_shows_the_real_menu(served):
    page = requests.get(served + "/sandbox/", timeout=5).text
    for name in ("我要求助", "红管发布", "个人中心", "实名认证", "sandbox_steward_xinghu"):
        assert name in page


def test_a_filed_request_shows_as_a_template_message_to_the_steward(served):
    def send(**payload):
        r = requests.post(served + "/sandbox/send", json={"openid": "sim_r1", **payload}, timeout=10)
        assert r.status_code == 200
        return r.json()["reply"]

    send(kind="subscribe", scene="estate_xhy")
    send(kind="click", key="FLOW_VERIFY")
    for answer in ("王小明", "13912345678", "1", "1", "2栋", "2", "1"):
        reply = send(kind="text", content=answer)
    assert "实名认证完成" in reply["content"]
    send(kind="click", key="FLOW_HELP")
    for answer in ("1", "3", "小区东门路灯不亮"):
        send(kind="text", content=answer)
    send(kind="location", lat=31.31, lng=120.72, label="星湖街328号")
    send(kind="image")
    send(kind="text", content="完成")
    reply = send(kind="text", content="1")
    assert "编号" in reply["content"]
    ref = reply["content"].split("编号")[1].split("。")[0].strip()
    msgs = requests.get(served + "/sandbox/messages/sandbox_steward_xinghu", timeout=5).json()["messages"]
    assert len(msgs) == 1 and msgs[0]["endpoint"] == "message/template/send"
    assert msgs[0]["payload"]["data"]["character_string1"]["value"] == ref
    assert msgs[0]["payload"]["client_msg_id"]
    assert requests.get(served + "/sandbox/messages/sandbox_steward_hanlin", timeout=5).json()["messages"] == []


def test_simulator_reaches_the_webhook_in_safe_mode(make_app):
    from .conftest import AES_KEY
    app = make_app(wechat={"encrypt_mode": "safe", "encoding_aes_key": AES_KEY})
    reply = app.test_client().post("/sandbox/send", json={"openid": "o1", "kind": "text", "content": "帮助"})
    assert "实名认证" in reply.get_json()["reply"]["content"]


def test_the_same_click_twice_in_one_second_answers_at_once(make_app):
    """Two identical events share WeChat's de-dup key; the second must not wait on a lock."""
    import time as _time
    app = make_app()
    client = app.test_client()
    started = _time.monotonic()
    replies = [client.post("/sandbox/send", json={"openid": "o_twice", "kind": "click", "key": "ACTION_HELP"})
               for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].get_json()["reply"] == replies[1].get_json()["reply"]
    assert _time.monotonic() - started < 5
