"""The one scheduler process: elected by a lock, APScheduler with a persistent job store."""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from models import deadlines, utcnow

if TYPE_CHECKING:  # APScheduler is imported by the scheduler process, never by the web workers
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

logger = logging.getLogger(__name__)

scheduler_cli = AppGroup("scheduler", help="The scheduler of reminders, digests and the outbox.")
digest_cli = AppGroup("digest", help="The weekly 民意诉求承办单.")

# pg_advisory_lock key: any constant 64-bit number shared by every host of one deployment.
PG_LOCK_KEY = 0x5245445354455752  # "REDSTEWR"
JOBSTORE_TABLE = "apscheduler_jobs"

# The app whose jobs run in this process; set by `scheduler run` before any job fires.
_app: Flask | None = None


class FileLeadership:
    """Leadership on one host (SQLite): an exclusive fcntl lock the kernel drops when we die."""

    def __init__(self, path: str):
        """Remembers the lock file; nothing is opened yet."""
        self.path = Path(path)
        self._fh = None

    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; never blocks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def still_held(self) -> bool:
        """A file lock cannot be lost while the process lives."""
        return self._fh is not None

    def release(self) -> None:
        """Drops the lock so a standby takes over at once."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class PgLeadership:
    """Leadership across hosts: a PostgreSQL advisory lock held by one dedicated connection."""

    def __init__(self, url: str):
        """A pool-less engine, so the lock's connection is never shared or recycled."""
        self.engine = create_engine(url, poolclass=NullPool)
        self._conn = None

    def try_acquire(self) -> bool:
        """Takes the session-level advisory lock if free; the server drops it when we die."""
        try:
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}).scalar()
            conn.commit()
        except DBAPIError as exc:
            logger.warning("scheduler: database unreachable while electing: %s", exc.orig)
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        """Pings the lock's connection; a lost connection means a lost lock."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except DBAPIError:
            self._conn.invalidate()
            self._conn = None
            return False

    def release(self) -> None:
        """Unlocks and closes the connection."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            except DBAPIError:
                pass
            self._conn = None
        self.engine.dispose()


def leadership_for(settings: dict):
    """The lock that elects the scheduler for this database."""
    url = settings["database"]["url"]
    if url.startswith("postgresql"):
        return PgLeadership(url)
    return FileLeadership(settings["scheduler"]["lock_file"])


def job_table(settings: dict) -> dict[str, tuple]:
    """Every scheduled job: id → (trigger, misfire grace seconds)."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger
    sch = settings["scheduler"]
    tz = sch["timezone"]

    def at(hhmm: str, **kw) -> CronTrigger:
        """A cron trigger at a local HH:MM."""
        hour, minute = (int(x) for x in hhmm.split(":"))
        return CronTrigger(hour=hour, minute=minute, timezone=tz, **kw)

    return {
        # Frequent scans look at the state of the data: a missed run is simply the next one.
        "outbox": (IntervalTrigger(seconds=sch["outbox_interval_seconds"], timezone=tz), None),
        "deadlines": (IntervalTrigger(seconds=sch["scan_interval_seconds"], timezone=tz), None),
        "housekeeping": (IntervalTrigger(minutes=15, timezone=tz), None),
        "media": (IntervalTrigger(seconds=sch["outbox_interval_seconds"], timezone=tz), None),
        "retention": (at(settings["privacy"]["retention_time"]), 12 * 3600),
        "points_expiry": (at("00:10"), 12 * 3600),
        # Daily and weekly runs missed while down still run once when the scheduler returns.
        "daily_summary": (at(sch["daily_summary_time"]), 12 * 3600),
        "follow_up": (at(sch["follow_up_time"]), 12 * 3600),
        "digest": (at(sch["digest_time"], day_of_week=sch["digest_weekday"]), 6 * 86400),
    }


def run_job(name: str) -> dict:
    """Runs one job in this process's app (the job store keeps only this function and the name)."""
    app = _app or current_app._get_current_object()
    with app.app_context():
        return run_named(app, name)


def run_named(app: Flask, name: str, now=None) -> dict:
    """Runs a job by name with the app's sessions and settings; returns its counts."""
    from handlers import jobs
    settings = app.config["REDSTEWARD"]
    sessions = app.extensions["redsteward.sessions"]
    now = now or utcnow()
    if name == "outbox":
        from . import outbox
        from .wechat_api import build_client
        result = outbox.dispatch_due(sessions, build_client(settings, sessions), settings, now=now)
    elif name == "media":
        from .voice import download_job
        result = download_job(app, now)
    else:
        result = jobs.JOBS[name](sessions, settings, now)
    if any(result.values()):
        logger.info("job %s: %s", name, result)
    return result


def build_scheduler(app: Flask) -> BackgroundScheduler:
    """A paused scheduler on the persistent job store, with this deployment's jobs in it."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    settings = app.config["REDSTEWARD"]
    store = SQLAlchemyJobStore(engine=app.extensions["redsteward.engine"], tablename=JOBSTORE_TABLE)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=settings["scheduler"]["timezone"],
                                    job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.start(paused=True)
    for job_id, (trigger, grace) in job_table(settings).items():
        existing = scheduler.get_job(job_id)
        if existing is None:
            scheduler.add_job("bot.scheduler:run_job", trigger, args=[job_id], id=job_id, name=job_id,
                              misfire_grace_time=grace, coalesce=True, max_instances=1)
        elif str(existing.trigger) != str(trigger) or existing.misfire_grace_time != grace:
            # The config changed; otherwise keep the stored next run time so a missed run still runs.
            existing.modify(misfire_grace_time=grace)
            existing.reschedule(trigger)
    for job in scheduler.get_jobs():
        if job.id not in job_table(settings):
            job.remove()
    return scheduler


def run_forever(app: Flask, stop: threading.Event) -> None:
    """Waits for leadership, runs the jobs while it lasts, and stops cleanly on `stop`."""
    global _app
    _app = app
    settings = app.config["REDSTEWARD"]
    poll = settings["scheduler"]["takeover_seconds"]
    me = f"{socket.gethostname()}:{os.getpid()}"
    while not stop.is_set():
        lock = leadership_for(settings)
        if not lock.try_acquire():
            logger.info("scheduler %s: standing by (another scheduler is active)", me)
            while not stop.wait(poll) and not lock.try_acquire():
                pass
            if stop.is_set():
                lock.release()
                return
        logger.info("scheduler %s: leading", me)
        scheduler = build_scheduler(app)
        scheduler.resume()
        try:
            while not stop.wait(poll):
                if not lock.still_held():
                    logger.warning("scheduler %s: lost the lock; standing by again", me)
                    break
        finally:
            scheduler.shutdown(wait=True)
            lock.release()


@scheduler_cli.command("run")
def scheduler_run():
    """Run the scheduler (one is active per deployment; the others stand by)."""
    app = current_app._get_current_object()
    # Every few seconds a run of the outbox would otherwise log two lines.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_forever(app, stop)
    click.echo("scheduler stopped")


@scheduler_cli.command("run-job")
@click.argument("name")
def scheduler_run_job(name):
    """Run one job now, in this process (e.g. deadlines, daily_summary, follow_up)."""
    known = job_table(current_app.config["REDSTEWARD"])
    if name not in known:
        raise click.BadParameter(f"no job {name!r}; the jobs are: {', '.join(known)}", param_hint="NAME")
    result = run_named(current_app._get_current_object(), name)
    click.echo(" ".join(f"{k}={v}" for k, v in result.items()) or "nothing to do")


@digest_cli.command("now")
@click.option("--save", type=click.Path(dir_okay=False), help="Also write the Excel file here.")
def digest_now(save):
    """Compile the 民意诉求承办单 of the last seven days and send it now."""
    from handlers.jobs import digest
    app = current_app._get_current_object()
    form, result = digest.digest_on_demand(app.extensions["redsteward.sessions"], app.config["REDSTEWARD"],
                                           utcnow())
    if save:
        Path(save).write_bytes(form.xlsx)
        click.echo(f"saved {save}")
    click.echo(f"{form.title}: {result['rows']} requests, {result['messages']} messages queued")


def init_app(app: Flask) -> None:
    """Sets the park's calendar overrides and registers the scheduler and digest commands."""
    calendar = app.config["REDSTEWARD"]["deadlines"]
    deadlines.configure(calendar["holidays"], calendar["workdays"])
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(digest_cli)
