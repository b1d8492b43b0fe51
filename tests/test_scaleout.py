"""Scale-out, shown: two gunicorn instances and two schedulers on one PostgreSQL and Redis, under load,
one instance and the active scheduler killed with SIGKILL mid-load, WeChat's retries answered."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis
import requests
import xmltodict
from sqlalchemy import create_engine, func, select

from bot.config import load_settings
from bot.outbox import LEASE, RECORD_EVERY, SEND_WINDOW
from bot.webhook import sign
from models import OutboxMessage, Resident, ServiceRequest

from .test_scheduler import _wait
from .wechat_standin import SMTPServer, WeChatStandIn, free_port

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("REDSTEWARD_SCALEOUT_PG", "postgresql://postgres@127.0.0.1:5432")
# Per run, so two suites running at once on one server never share (or drop) each other's data.
RUN = f"{os.getpid()}"
DB_NAME = f"rs_scaleout_{RUN}"
DB_URL = f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{DB_NAME}"
REDIS_URL = os.environ.get("REDSTEWARD_SCALEOUT_REDIS", "redis://127.0.0.1:6379/14")
TOKEN = "scaleouttoken"
APPID = f"wxscaleout{RUN}"  # names this run's shared token in Redis
RESIDENTS = 150
TAKEOVER_SECONDS = 2
IN_FLIGHT_SECONDS = 2.0  # how long a request on the wire when a process is killed may take to arrive
DELIVERY_TIMEOUT = 5.0  # WeChat waits 5 s for an answer, then retries
MAX_DELIVERIES = 3  # WeChat delivers a message at most three times
KILL_AT = 0.35  # share of the messages sent before the kills
SETTINGS = load_settings(environ={})  # the defaults the schedulers run with


def steps(n: int) -> list[tuple[str, str, str]]:
    """One resident's messages and a phrase each answer must contain: verify, then file a 求助."""
    phone = f"139{n:08d}"
    return [("click", "FLOW_VERIFY", "真实姓名"), ("text", "张小芳", "手机号"), ("text", phone, "社区"),
            ("text", "1", "小区"), ("text", "星湖苑", "楼栋"), ("text", "跳过", "党员"),
            ("text", "2", f"139****{phone[-4:]}"), ("text", "1", "实名认证完成"),
            ("click", "FLOW_HELP", "哪一类"), ("text", "1", "哪方面"), ("text", "公共设施", "描述"),
            ("text", f"{n}号楼道灯坏了一周了", "位置"), ("text", "跳过", "照片"), ("text", "完成", "核对"),
            ("text", "1", "编号")]


def _server(sql: str) -> None:
    """One statement on the PostgreSQL server (a missing server fails the test)."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _fresh_database() -> None:
    """Creates this run's empty database and empties the Redis db."""
    _server(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    _server(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).flushdb()


def _env(config: Path) -> dict:
    """The process environment: the config file only (no REDSTEWARD_* from the caller's shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDSTEWARD_")}
    env.update(REDSTEWARD_CONFIG=str(config), PYTHONUNBUFFERED="1")
    return env


class Proc:
    """A process in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict, log: Path):
        """Starts it."""
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole group: the master and its workers die at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM to the group if it still runs, SIGKILL if it lingers."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _flask(*args: str, env: dict) -> str:
    """Runs a `flask --app wsgi` command to the end; its output."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _healthy(port: int) -> bool:
    """True once the instance answers /healthz."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class WeChat:
    """WeChat's side: signed XML to an instance, a retry of the same XML to the survivor on failure."""

    def __init__(self, ports: list[int]):
        """Knows both instances; counts deliveries."""
        self.ports = ports
        self.down: set[int] = set()  # what a load balancer learns from refused connections
        self.lock = threading.Lock()
        self.sent = 0
        self.deliveries = 0
        self.retried = 0
        self.answered_on_retry = 0
        self.unanswered: list[tuple] = []
        self.wrong: list[tuple] = []
        self.clock = int(time.time())
        self.ids = iter(range(int(time.time()) * 1000, 10 ** 15))
        self.kill_after = int(RESIDENTS * len(steps(0)) * KILL_AT)
        self.kill_now = threading.Event()

    def xml(self, openid: str, kind: str, value: str) -> str:
        """One message's XML; MsgId and CreateTime unique, kept for the retries."""
        with self.lock:
            self.clock += 1
            data = {"ToUserName": "gh_scaleout", "FromUserName": openid, "CreateTime": self.clock}
            if kind == "click":
                data.update(MsgType="event", Event="CLICK", EventKey=value)
            else:
                data.update(MsgType="text", Content=value, MsgId=next(self.ids))
        return xmltodict.unparse({"xml": data}, full_document=False)

    def deliver(self, port: int, body: str) -> str | None:
        """One signed POST; the reply text, or None for no answer (refused, timeout, error)."""
        ts, nonce = str(int(time.time())), secrets.token_hex(4)
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce), "openid": "x"}
        try:
            resp = requests.post(f"http://127.0.0.1:{port}/wechat", params=query, data=body.encode(),
                                 timeout=DELIVERY_TIMEOUT)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            # Refused, or cut off in the middle of the answer by the kill: no answer either way.
            with self.lock:
                self.down.add(port)
            return None
        except requests.Timeout:
            return None
        if resp.status_code != 200 or resp.text in ("", "success"):
            return None
        return xmltodict.parse(resp.text)["xml"].get("Content", "")

    def message(self, n: int, openid: str, kind: str, value: str) -> str | None:
        """Sends one message as WeChat does: up to three deliveries, retries to the other instance."""
        body = self.xml(openid, kind, value)
        home = self.ports[n % 2]
        with self.lock:
            self.sent += 1
            if self.sent == self.kill_after:
                self.kill_now.set()
            port = home if home not in self.down else self.ports[1 - n % 2]
        for attempt in range(MAX_DELIVERIES):
            with self.lock:
                self.deliveries += 1
                self.retried += attempt > 0
            reply = self.deliver(port, body)
            if reply is not None:
                if attempt:
                    with self.lock:
                        self.answered_on_retry += 1
                return reply
            with self.lock:
                alive = [p for p in self.ports if p not in self.down and p != port]
            port = alive[0] if alive else port
        return None

    def resident(self, n: int) -> None:
        """One resident's whole conversation; stops at the first unanswered message."""
        openid = f"o_scale_{RUN}_{n:04d}"
        for kind, value, expected in steps(n):
            reply = self.message(n, openid, kind, value)
            if reply is None:
                with self.lock:
                    self.unanswered.append((openid, value))
                return
            if expected not in reply:
                with self.lock:
                    self.wrong.append((openid, value, reply[:120]))
                return


@pytest.mark.slow
def test_two_instances_two_schedulers_survive_sigkill_under_load(tmp_path):
    """Every message answered, one request each, the standby leads in time, one digest, no double sends."""
    started = time.monotonic()
    _fresh_database()
    smtp = SMTPServer().start()
    api = WeChatStandIn().start()
    ports = [free_port(), free_port()]
    procs: list[Proc] = []
    phases: dict[str, float] = {}
    try:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[app]\npublic_url = "http://127.0.0.1:{ports[0]}"\nmedia_dir = "{tmp_path / "media"}"\n'
            f'[database]\nurl = "{DB_URL}"\n'
            f'[redis]\nurl = "{REDIS_URL}"\n'
            f'[wechat]\nsandbox = true\nappid = "{APPID}"\ntoken = "{TOKEN}"\napi_base_url = "{api.url}"\n'
            f'[mail]\nport = {smtp.port}\n'
            f'[scheduler]\noutbox_interval_seconds = 1\ntakeover_seconds = {TAKEOVER_SECONDS}\n'
            f'lock_file = "{tmp_path / "scheduler.lock"}"\n')
        env = _env(config)
        # As a park's IT staff would: the schema from the Alembic migrations.
        _flask("db", "upgrade", env=env)
        for n, port in enumerate(ports):
            procs.append(Proc([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                               "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"], env,
                              tmp_path / f"web{n}.log"))
        schedulers = [Proc([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"], env,
                           tmp_path / f"sched{n}.log") for n in range(2)]
        procs += schedulers
        _flask("demo", "load", env=env)  # while the processes start; the load waits for both
        assert _wait(lambda: all(_healthy(p) for p in ports), 30), [p.output() for p in procs]
        assert _wait(lambda: any(": leading" in s.output() for s in schedulers), 30), \
            [s.output() for s in schedulers]
        phases["start-up seconds"] = round(time.monotonic() - started, 1)
        active = next(s for s in schedulers if ": leading" in s.output())
        standby = next(s for s in schedulers if s is not active)

        wechat = WeChat(ports)
        kills: list[str] = []
        killed_at: list[float] = []
        took_over: list[float] = []

        def chaos():
            """Mid-load: SIGKILL instance 0's gunicorn group and the active scheduler's."""
            wechat.kill_now.wait()
            procs[0].kill()
            active.kill()
            killed_at.append(time.monotonic())
            kills.extend(["gunicorn master + 2 workers (instance 0)", "active scheduler"])
            if _wait(lambda: ": leading" in standby.output(), 30):
                took_over.append(time.monotonic() - killed_at[0])

        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        load_started = time.monotonic()
        with ThreadPoolExecutor(max_workers=24) as pool:
            list(pool.map(wechat.resident, range(RESIDENTS)))
        phases["load seconds"] = round(time.monotonic() - load_started, 1)
        killer.join(35)

        # The Friday digest period, triggered on both hosts at once: one form goes out.
        runs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run-job",
                                  "digest"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        digest_out = [r.communicate(timeout=60)[0] for r in runs]
        assert all(r.returncode == 0 for r in runs), digest_out

        engine = create_engine(DB_URL)
        try:
            def outbox_drained() -> bool:
                """Nothing left to send (a row the killed scheduler held comes back after its lease)."""
                with engine.connect() as c:
                    return not c.scalar(select(func.count()).select_from(OutboxMessage)
                                        .where(OutboxMessage.status != "sent"))
            assert _wait(outbox_drained, 75), "outbox not drained"
            phases["digest and outbox seconds"] = round(time.monotonic() - started - sum(phases.values()), 1)
            with engine.connect() as c:
                per_resident = dict(c.execute(
                    select(Resident.openid, func.count(ServiceRequest.id))
                    .join(ServiceRequest, ServiceRequest.resident_id == Resident.id)
                    .group_by(Resident.openid)).all())
        finally:
            engine.dispose()
    finally:
        for p in procs:
            p.stop()
        smtp.stop()
        api.stop()
        _server(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

    calls = Counter(a.get("client_msg_id") for a in api.attempts if a["path"] == "message/template/send")
    delivered = Counter(d.get("client_msg_id") for d in api.delivered if d["path"] == "message/template/send")
    digests = [m for m in smtp.box.messages if "民意诉求承办单" in str(m["Subject"])]
    figures = {"residents": RESIDENTS, "messages sent": wechat.sent, "deliveries": wechat.deliveries,
               "deliveries retried": wechat.retried, "answered on a retry": wechat.answered_on_retry,
               "kills (SIGKILL)": len(kills), "takeover seconds": round(took_over[0], 2) if took_over else None,
               "template messages": sum(delivered.values()),
               "template sends repeated": sum(calls.values()) - len(calls), **phases,
               "test seconds": round(time.monotonic() - started, 1)}
    print("\nscale-out figures: " + ", ".join(f"{k}={v}" for k, v in figures.items()))

    assert kills and wechat.retried > 0, figures  # the kills happened mid-load and cost deliveries
    assert not wechat.unanswered, wechat.unanswered[:5]
    assert not wechat.wrong, wechat.wrong[:5]
    assert wechat.sent == RESIDENTS * len(steps(0))
    assert per_resident == {f"o_scale_{RUN}_{n:04d}": 1 for n in range(RESIDENTS)}
    assert took_over and took_over[0] <= TAKEOVER_SECONDS + 1, (figures, standby.output())
    assert len(digests) == 1, ([m["Subject"] for m in smtp.box.messages], digest_out)
    assert None not in calls and set(calls) == set(delivered) and max(delivered.values()) == 1
    # Only sends the killed scheduler had made, or had in flight, without recording their outcome
    # may be sent again (after its lease), with the same client_msg_id, which WeChat delivers once:
    # at most one per sending thread plus one batch of outcomes not yet written.
    repeated = {k for k, v in calls.items() if v > 1}
    assert len(repeated) <= SETTINGS["scheduler"]["outbox_threads"] + RECORD_EVERY, repeated
    # The first try is the killed scheduler's: made before the signal, or on the wire as it landed and
    # read by the stand-in a moment after. The second waits for the lease: a send starts at most
    # SEND_WINDOW into a lease, and the retry comes after it ends.
    for key in repeated:
        tries = sorted(a["at"] for a in api.attempts if a.get("client_msg_id") == key)
        assert len(tries) == 2 and tries[0] < killed_at[0] + IN_FLIGHT_SECONDS, (key, tries, killed_at)
        assert tries[1] - tries[0] >= (LEASE - SEND_WINDOW).total_seconds(), (key, tries, killed_at)
    assert sum(delivered.values()) == RESIDENTS + 1  # a steward told of each request; the digest liaison
