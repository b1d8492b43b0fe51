"""The outbox sending a batch on several threads: one token, the rate held, each message once.

Against the loopback WeChat API stand-in (which, like WeChat, delivers one message per
client_msg_id), on the suite's database, and Redis for the shared rate.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import outbox, pacing
from models import OutboxMessage, enqueue, utcnow

from .conftest import REDIS_URL
from .wechat_standin import dispatcher_process, free_port, run_outbox, standin  # noqa: F401  (fixture)


@pytest.fixture
def make(make_app, standin):
    """Builds an app sending to the stand-in with the given scheduler settings."""
    def build(**scheduler):
        return make_app(wechat={"api_base_url": standin.url, "timeout_seconds": 2.0},
                        scheduler={"outbox_rate_per_second": 0, "outbox_threads": 6, **scheduler})
    return build


def queue(app, n: int, prefix: str = "batch") -> list[int]:
    """Queues n template messages to n residents; returns their ids."""
    with app.extensions["redsteward.sessions"]() as s, s.begin():
        msgs = [enqueue(s, "template", f"o{prefix}{i:03d}", {"template_id": "TPL", "url": "",
                                                             "data": {"thing1": {"value": f"第{i}条"}}},
                        f"{prefix}:{i}") for i in range(n)]
        s.flush()
        return [m.id for m in msgs]


def statuses(app) -> dict:
    """How many stored messages are in each status."""
    with app.extensions["redsteward.sessions"]() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def delivered_keys(standin) -> list[str]:
    """client_msg_id of every delivered template message."""
    return [m["client_msg_id"] for m in standin.delivered if m["path"] == "message/template/send"]


def test_a_batch_on_threads_from_an_empty_database_fetches_one_token_and_sends_each_once(make, standin):
    app = make()
    queue(app, 60)
    assert run_outbox(app) == {"sent": 60, "retry": 0, "failed": 0, "deferred": 0}
    assert len(standin.token_requests) == 1  # six threads asked for the first token at once
    keys = delivered_keys(standin)
    assert len(keys) == 60 == len(set(keys)) == len(standin.attempts)
    assert statuses(app) == {"sent": 60}
    with app.extensions["redsteward.sessions"]() as s:
        assert s.scalar(select(func.count()).where(OutboxMessage.lease_owner.is_not(None))) == 0
    assert run_outbox(app)["sent"] == 0


def test_each_resident_gets_their_messages_in_the_order_they_were_queued(make, standin):
    app = make()
    standin.latency = (0.0, 0.02)  # sends finish out of order unless one person's wait for each other
    with app.extensions["redsteward.sessions"]() as s, s.begin():
        for who in range(12):
            for step in range(5):  # e.g. 已受理, 已答复, 已办结, then the rating question
                enqueue(s, "template", f"o_order{who:02d}", {"template_id": "TPL", "url": "",
                                                              "data": {"thing1": {"value": f"第{step}步"}}},
                        f"order:{who}:{step}")
    assert run_outbox(app)["sent"] == 60
    for who in range(12):
        got = [m["data"]["thing1"]["value"] for m in standin.to(f"o_order{who:02d}")]
        assert got == [f"第{step}步" for step in range(5)]


def test_a_token_rejected_mid_batch_is_refreshed_once_for_every_thread(make, standin):
    app = make()
    queue(app, 5, "warm")
    run_outbox(app)  # token 1 in use
    queue(app, 40)
    standin.grace_seconds = 0  # WeChat drops the old token the moment a new one is issued
    standin.fail_next(40001)
    assert run_outbox(app)["sent"] == 40
    assert len(standin.token_requests) == 2  # threads holding the old token found the new one in the store
    assert len(set(delivered_keys(standin))) == 45 == len(delivered_keys(standin))


def test_the_configured_rate_spaces_the_sends(make, standin):
    app = make(outbox_rate_per_second=20)
    queue(app, 30)
    assert run_outbox(app)["sent"] == 30
    arrivals = sorted(a["at"] for a in standin.attempts)
    assert arrivals[-1] - arrivals[0] >= 29 / 20 * 0.9  # six threads, yet no faster than 20 a second
    # Slots are 1/19 s apart, so a send leaving up to 50 ms late still keeps any second at 20.
    within_a_second = max(sum(1 for b in arrivals if a <= b < a + 1) for a in arrivals)
    assert within_a_second <= 20


def test_dispatchers_sharing_redis_share_one_rate(make_app):
    """Two processes' pacers on one Redis key hand out slots a whole interval apart between them."""
    import redis
    redis.Redis.from_url(REDIS_URL).delete("redsteward:outbox:next-slot:wxtest")
    a, b = (pacing.Pacer(10, REDIS_URL, "wxtest") for _ in range(2))
    slots = []
    for _ in range(10):
        for pacer in (a, b):
            slots.append(time.monotonic() + pacer.reserve())
    slots.sort()
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:])]
    assert min(gaps) >= 0.09 and slots[-1] - slots[0] >= 1.8


def test_without_redis_the_rate_is_kept_in_the_process(caplog):
    pacer = pacing.Pacer(10, f"redis://127.0.0.1:{free_port()}/0", "wxdown")
    with caplog.at_level(logging.WARNING, logger="bot.pacing"):
        waits = [pacer.reserve() for _ in range(5)]
    assert waits[0] < 0.01 and all(later - earlier >= 0.09 for earlier, later in zip(waits, waits[1:]))
    assert len([r for r in caplog.records if "Redis unreachable" in r.message]) == 1


def test_only_the_lease_owner_records_an_outcome(make, standin, caplog):
    """A dispatcher whose lease ran out and was taken over does not overwrite the new holder's record."""
    app = make()
    [msg_id] = queue(app, 1)
    settings, sessions = app.config["REDSTEWARD"], app.extensions["redsteward.sessions"]
    [mine] = outbox._claim(sessions, 10, utcnow(), "a" * 32)
    [theirs] = outbox._claim(sessions, 10, utcnow() + outbox.LEASE + timedelta(seconds=1), "b" * 32)
    counts = {"sent": 0, "retry": 0, "failed": 0, "deferred": 0}
    with caplog.at_level(logging.WARNING, logger="bot.outbox"):
        outbox._record(sessions, "a" * 32, [(mine, "retry", "wechat -1: busy")], settings, counts)
    assert counts["retry"] == 0 and "lease lost" in caplog.text
    with sessions() as s:
        row = s.get(OutboxMessage, msg_id)
        assert (row.status, row.attempts, row.lease_owner, row.last_error) == ("sending", 2, "b" * 32, None)
    outbox._record(sessions, "b" * 32, [(theirs, "sent", None)], settings, counts)
    assert counts["sent"] == 1 and statuses(app) == {"sent": 1}


def test_sends_the_lease_cannot_cover_are_given_back_untried(make, standin, monkeypatch):
    app = make(outbox_rate_per_second=5)
    monkeypatch.setattr(outbox, "SEND_WINDOW", timedelta(seconds=2))
    queue(app, 5)
    pacer = pacing.pacer_for(app.config["REDSTEWARD"])
    started = time.monotonic()
    for _ in range(10):
        pacer.reserve()  # another sender took the next 2.5 s of the rate (a slot each 0.25 s)
    assert run_outbox(app) == {"sent": 0, "retry": 0, "failed": 0, "deferred": 0}
    assert standin.attempts == []
    with app.extensions["redsteward.sessions"]() as s:
        rows = s.scalars(select(OutboxMessage)).all()
        assert {(r.status, r.attempts, r.lease_owner) for r in rows} == {("pending", 0, None)}
    time.sleep(started + 3.9 - time.monotonic())  # past those slots and the five this batch took
    assert run_outbox(app)["sent"] == 5


def test_a_dispatcher_killed_mid_batch_loses_nothing_and_delivers_each_once(make, standin, db_url):
    """kill -9 while a batch is half sent: after the lease every message is delivered exactly once."""
    app = make()
    queue(app, 40)
    standin.hang_seconds = 0.3
    standin.fail_next(*["hang"] * 40)  # every send takes 0.3 s, so the kill lands mid-batch
    proc = dispatcher_process(db_url, standin.url, outbox_threads=4)
    try:
        deadline = time.monotonic() + 30
        while len(standin.attempts) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(standin.attempts) >= 20, "the dispatcher never got going"
    finally:
        proc.kill()
        proc.wait()
    before = statuses(app)
    assert before.get("sent", 0) >= 4 and before.get("sending", 0) >= 4  # some recorded, some in the air
    with app.extensions["redsteward.sessions"]() as s:
        recorded = set(s.scalars(select(OutboxMessage.idempotency_key).where(OutboxMessage.status == "sent")))
    tried = len(standin.attempts)

    assert run_outbox(app)["sent"] == 0  # the lease still holds
    counts = run_outbox(app, outbox.LEASE + timedelta(seconds=1))
    assert counts["sent"] == 40 - before.get("sent", 0)
    assert statuses(app) == {"sent": 40}
    keys = delivered_keys(standin)
    assert len(keys) == 40 == len(set(keys))
    resent = [a["client_msg_id"] for a in standin.attempts[tried:]]
    assert not set(resent) & {k[:64] for k in recorded}  # what was recorded as sent is never sent again
