"""The scheduler process: one active across processes, a standby takes over, jobs on a real store."""
from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from aiosmtpd.controller import Controller

from bot import scheduler as sched
from models import Conversation, OutboxMessage, ProcessedMessage, Resident, enqueue

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")


class Mailbox:
    """A real SMTP server on loopback that keeps every message it receives."""

    def __init__(self):
        """Starts aiosmtpd on a free port."""
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        """Stores the parsed message, as a mail client would see it."""
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def wait_for(self, count: int, timeout: float) -> list:
        """Waits until `count` messages arrived (or the timeout passed); returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.05)
        return list(self.messages)


@pytest.fixture
def mailbox():
    """A loopback SMTP server for the duration of the test."""
    box = Mailbox()
    yield box
    box.controller.stop()


def _queue_mail(sessions, names: list[str]) -> None:
    """Queues one e-mail per name in the outbox."""
    with sessions() as s, s.begin():
        for name in names:
            enqueue(s, "email", "dept@park.local", {"to": ["dept@park.local"], "subject": name,
                                                    "body": name}, key=f"test:{name}")


class SchedulerProcess:
    """`flask --app wsgi scheduler run` as its own process, with its log in a file."""

    def __init__(self, config: Path, log: Path):
        """Starts the process."""
        self.log = log
        env = dict(os.environ, REDSTEWARD_CONFIG=str(config), PYTHONUNBUFFERED="1")
        with open(log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        """What the process logged so far."""
        return self.log.read_text()

    def leading(self) -> bool:
        """True once this process said it leads."""
        return ": leading" in self.output()

    def stop(self) -> None:
        """Terminates the process if it still runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait(predicate, timeout: float) -> bool:
    """Polls until the predicate holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
def test_two_schedulers_one_works_and_the_standby_takes_over(make_app, db_url, tmp_path, mailbox):
    """Two processes started at once: one sends each mail once; kill -9 it and the other carries on."""
    app = make_app()
    sessions = app.extensions["redsteward.sessions"]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[mail]\nport = {mailbox.port}\n'
        f'[scheduler]\nlock_file = "{tmp_path / "scheduler.lock"}"\n'
        'outbox_interval_seconds = 1\ntakeover_seconds = 1\n')
    _queue_mail(sessions, [f"first-{n}" for n in range(5)])
    procs = [SchedulerProcess(config, tmp_path / f"s{n}.log") for n in range(2)]
    try:
        assert _wait(lambda: len(mailbox.messages) >= 5, 30), [p.output() for p in procs]
        time.sleep(2)  # a second active scheduler would have sent duplicates by now
        assert sorted(m["Subject"] for m in mailbox.messages) == [f"first-{n}" for n in range(5)]
        leaders = [p for p in procs if p.leading()]
        assert len(leaders) == 1, [p.output() for p in procs]
        standby = next(p for p in procs if p is not leaders[0])
        assert "standing by" in standby.output()

        os.kill(leaders[0].proc.pid, signal.SIGKILL)
        leaders[0].proc.wait()
        killed_at = time.monotonic()
        _queue_mail(sessions, [f"second-{n}" for n in range(5)])
        assert _wait(standby.leading, 15), standby.output()
        took_over = time.monotonic() - killed_at
        assert took_over < 5, took_over  # takeover_seconds = 1, plus start-up
        assert _wait(lambda: len(mailbox.messages) >= 10, 30)
        time.sleep(1.5)
        subjects = sorted(m["Subject"] for m in mailbox.messages)
        assert subjects == sorted([f"first-{n}" for n in range(5)] + [f"second-{n}" for n in range(5)])
        with sessions() as s:
            assert {m.status for m in s.query(OutboxMessage)} == {"sent"}
    finally:
        for p in procs:
            p.stop()
    assert "scheduler stopped" in standby.output()  # SIGTERM stops it cleanly


def test_leadership_is_exclusive_and_released(make_app, tmp_path):
    """In one process too: a second lock is refused while the first is held, granted after release."""
    app = make_app(scheduler={"lock_file": str(tmp_path / "x.lock")})
    settings = app.config["REDSTEWARD"]
    first, second = sched.leadership_for(settings), sched.leadership_for(settings)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.still_held()
    first.release()
    assert second.try_acquire()
    second.release()


def _jobs_after_start(app) -> dict:
    """Builds the scheduler on the app's store, reads the next run times, shuts it down."""
    scheduler = sched.build_scheduler(app)
    try:
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)


def test_job_store_keeps_a_missed_weekly_run_across_a_restart(make_app):
    """Down over Friday 16:00: after the restart the digest is still due once, not pushed a week."""
    app = make_app()
    with time_machine.travel(datetime(2026, 11, 25, 9, 0, tzinfo=SH), tick=False):  # Wednesday
        before = _jobs_after_start(app)
    assert before["digest"] == datetime(2026, 11, 27, 16, 0, tzinfo=SH)
    assert before["daily_summary"] == datetime(2026, 11, 26, 8, 30, tzinfo=SH)
    with time_machine.travel(datetime(2026, 11, 27, 19, 0, tzinfo=SH), tick=False):  # back Friday evening
        after = _jobs_after_start(app)
    assert after["digest"] == datetime(2026, 11, 27, 16, 0, tzinfo=SH)
    assert {"outbox", "deadlines", "housekeeping", "daily_summary", "follow_up", "digest"} <= set(after)


def test_a_changed_schedule_replaces_the_stored_one(make_app):
    """Moving the digest in config takes effect at the next start."""
    app = make_app()
    with time_machine.travel(datetime(2026, 11, 25, 9, 0, tzinfo=SH), tick=False):
        _jobs_after_start(app)
        moved = make_app(scheduler={"digest_weekday": "thu", "digest_time": "10:00"})
        jobs = _jobs_after_start(moved)
    assert jobs["digest"] == datetime(2026, 11, 26, 10, 0, tzinfo=SH)


def test_housekeeping_clears_stale_flows_and_old_dedup_records(app, sessions):
    """A flow idle beyond the keep time is cleared (its name kept); old message ids go, fresh stay."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=SH)
    with sessions() as s, s.begin():
        old, fresh = Resident(openid="o-old"), Resident(openid="o-fresh")
        s.add_all([old, fresh])
        s.flush()
        s.add(Conversation(resident_id=old.id, flow="help", step="description", data={"kind": "help"},
                           updated_at=datetime(2026, 11, 25, 11, 0, tzinfo=SH)))
        s.add(Conversation(resident_id=fresh.id, flow="help", step="description", data={"kind": "help"},
                           updated_at=datetime(2026, 11, 26, 11, 50, tzinfo=SH)))
        s.add(ProcessedMessage(key="old", created_at=datetime(2026, 11, 26, 11, 0, tzinfo=SH)))
        s.add(ProcessedMessage(key="new", created_at=datetime(2026, 11, 26, 11, 59, tzinfo=SH)))
    assert sched.run_named(app, "housekeeping", now=now) == {"conversations_cleared": 1, "dedup_purged": 1}
    with sessions() as s:
        convs = {c.resident_id: c for c in s.query(Conversation)}
        stale = convs[old.id]
        assert (stale.flow, stale.data, stale.expired_notice) == (None, {}, "help")
        assert convs[fresh.id].flow == "help"
        assert [m.key for m in s.query(ProcessedMessage)] == ["new"]
    assert sched.run_named(app, "housekeeping", now=now) == {"conversations_cleared": 0, "dedup_purged": 0}


def test_cli_lists_the_commands(app):
    """`flask scheduler` and `flask digest` exist with their subcommands."""
    runner = app.test_cli_runner()
    out = runner.invoke(args=["scheduler", "--help"]).output
    assert "run" in out and "run-job" in out
    assert "now" in runner.invoke(args=["digest", "--help"]).output
    wrong = runner.invoke(args=["scheduler", "run-job", "reminders"])
    assert wrong.exit_code == 2 and "no job 'reminders'; the jobs are: outbox, deadlines" in wrong.output
    assert runner.invoke(args=["scheduler", "run-job", "housekeeping"]).output.strip() == (
        "conversations_cleared=0 dedup_purged=0")
