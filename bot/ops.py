"""Operations: /healthz, /readyz, /metrics (Prometheus), one access-log line per webhook call.

Metrics are multiprocess-safe under gunicorn: with PROMETHEUS_MULTIPROC_DIR set, every
worker writes its counters to files there and /metrics merges them. Figures that live
in the database (outbox backlog and failures, overdue requests, scheduler runs) are read
at scrape time, so every worker and host reports the same.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import click

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from flask.cli import with_appcontext
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from handlers import observe
from models import ops as figures
from models import utcnow

logger = logging.getLogger(__name__)
access_log = logging.getLogger("redsteward.access")
bp = Blueprint("ops", __name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Unlabelled metrics open their file there as they are defined, just below.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
MESSAGES = Counter("redsteward_messages_total", "Messages and events handled, by type and outcome",
                   ["type", "outcome"])
LATENCY = Histogram("redsteward_reply_seconds", "Time from receiving a webhook call to its reply",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RETRIES = Counter("redsteward_deduplicated_retries_total", "WeChat retries answered from the de-dup store")
FLOWS = Counter("redsteward_flows_total", "Flows ended, by flow and how", ["flow", "ending"])
REJECTED = Counter("redsteward_webhook_rejected_total", "Webhook calls refused, by HTTP status", ["status"])
_children: dict[tuple[str, str], object] = {}


def init_app(app: Flask) -> None:
    """Registers the endpoints, the proxy fix, the access log and the dispatcher observer."""
    ops = app.config["REDSTEWARD"]["ops"]
    if ops["proxy_count"]:
        n = int(ops["proxy_count"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.register_blueprint(bp)
    from .cli import db_cli
    for command in (db_backup, db_restore):
        if command.name not in db_cli.commands:
            db_cli.add_command(command)
    app.before_request(_start_clock)
    app.after_request(_access_line)
    if _observe not in observe.OBSERVERS:
        observe.OBSERVERS.append(_observe)


def _observe(outcome: str, msg, ended) -> None:
    """Counts a dispatched message and remembers it for this request's access line."""
    kind = msg.type if msg.type != "event" else f"event.{(msg.event or '').lower()}"
    counter = _children.get((kind, outcome))
    if counter is None:
        # labels() validates and locks on every call; the child is the same each time.
        counter = _children.setdefault((kind, outcome), MESSAGES.labels(kind, outcome))
    counter.inc()
    if outcome == "retry":
        RETRIES.inc()
    if ended:
        FLOWS.labels(*ended).inc()
    try:
        g.ops_message = (msg.source, kind, outcome)
    except RuntimeError:
        pass  # dispatched outside a request (a CLI or a test): nothing to log per request


def _start_clock() -> None:
    """Notes when a webhook call arrived."""
    if request.endpoint == "webhook.wechat":
        g.ops_started = time.perf_counter()


def _access_line(response: Response) -> Response:
    """One JSON line per webhook call: hashed openid, type, outcome, status, latency."""
    started = g.get("ops_started")
    if started is None or request.method != "POST":
        return response
    elapsed = time.perf_counter() - started
    LATENCY.observe(elapsed)
    openid, kind, outcome = g.get("ops_message") or (None, "-", "rejected")
    if response.status_code >= 400:
        REJECTED.labels(str(response.status_code)).inc()
        outcome = "rejected" if response.status_code < 500 else "unavailable"
    access_log.info(json.dumps({
        "event": "webhook", "openid": hashed(openid), "type": kind, "outcome": outcome,
        "status": response.status_code, "ms": round(elapsed * 1000, 1),
        "mode": "aes" if request.args.get("encrypt_type") == "aes" else "plain"}, ensure_ascii=False))
    return response


def hashed(openid: str | None) -> str | None:
    """A keyed digest of an openid: the same resident's lines match, the openid is not in them."""
    if not openid:
        return None
    # BLAKE2b takes a key natively: one call, no HMAC object to build per request.
    key = _log_key(current_app.config["SECRET_KEY"])
    return hashlib.blake2b(openid.encode(), key=key, digest_size=8).hexdigest()


@functools.lru_cache(maxsize=4)
def _log_key(secret: str) -> bytes:
    """The hashing key for log lines, derived from the app's secret key once."""
    return hashlib.sha256(b"redsteward-log:" + secret.encode()).digest()


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: database, Redis when configured, a scheduler seen recently, outbox backlog."""
    settings = current_app.config["REDSTEWARD"]
    ops = settings["ops"]
    checks: dict[str, dict] = {}
    sessions = current_app.extensions["redsteward.sessions"]
    with sessions() as s:
        checks["database"] = _check(lambda: _ping(s))
        if checks["database"]["ok"]:
            checks["outbox"] = _check(lambda: _backlog(s, ops["outbox_backlog_max"]))
            if ops["require_scheduler"]:
                checks["scheduler"] = _check(lambda: _scheduler(s, ops["scheduler_stale_seconds"]))
    if settings["redis"]["url"]:
        checks["redis"] = _redis_check(settings["redis"]["url"])
    ready = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return jsonify(body), 200 if ready else 503


def _check(probe) -> dict:
    """Runs one probe: its figures with ok, or ok=False and only the exception's class."""
    try:
        return {"ok": True, **probe()}
    except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready"
        # Only the class: an exception's text may carry a URL with a password.
        return {"ok": False, "error": type(exc).__name__}


def _ping(s) -> dict:
    """One round trip to the database."""
    s.execute(text("SELECT 1"))
    return {}


def _backlog(s, limit: int) -> dict:
    """The outbox backlog against its threshold."""
    backlog = figures.outbox_backlog(s)
    return {"ok": backlog <= limit, "backlog": backlog, "max": limit}


def _scheduler(s, stale: int) -> dict:
    """How far behind the scheduler's outbox job is (None: no scheduler ever ran)."""
    lag = figures.scheduler_lag(s, utcnow())
    return {"ok": lag is not None and lag <= stale, "lag_seconds": None if lag is None else round(lag, 1)}


def _redis_check(url: str) -> dict:
    """PING with a short timeout."""
    import redis
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        client.ping()
        client.close()
        return {"ok": True}
    except redis.RedisError as exc:
        return {"ok": False, "error": type(exc).__name__}


@bp.get("/metrics")
def metrics():
    """Prometheus text format; needs the configured bearer token, or a loopback client."""
    token = current_app.config["REDSTEWARD"]["ops"]["metrics_token"]
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401)
    elif request.remote_addr not in ("127.0.0.1", "::1"):
        abort(403)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (MESSAGES, LATENCY, RETRIES, FLOWS, REJECTED):
            registry.register(metric)
    registry.register(DatabaseCollector(current_app.extensions["redsteward.sessions"]))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")


class DatabaseCollector:
    """Gauges read from the database at scrape time: the same answer from every worker."""

    def __init__(self, sessions):
        """Keeps the session factory."""
        self.sessions = sessions

    def collect(self):
        """Outbox backlog and failures, overdue requests, scheduler runs and lag."""
        with self.sessions() as s:
            now = utcnow()
            yield _gauge("redsteward_outbox_backlog", "Outgoing messages waiting", figures.outbox_backlog(s))
            failed = GaugeMetricFamily("redsteward_outbox_failed", "Outgoing messages given up on, by error code",
                                       labels=["code"])
            for code, count in sorted(figures.outbox_failures(s).items()):
                failed.add_metric([code], count)
            yield failed
            yield _gauge("redsteward_requests_overdue", "Open requests past their deadline",
                         figures.overdue_requests(s, now))
            runs = GaugeMetricFamily("redsteward_scheduler_job_runs", "Daily and weekly job runs recorded, by job",
                                     labels=["job"])
            for job, count in sorted(figures.job_runs(s).items()):
                runs.add_metric([job], count)
            yield runs
            lag = figures.scheduler_lag(s, now)
            yield _gauge("redsteward_scheduler_lag_seconds", "How far the scheduler is behind (-1: never seen)",
                         -1 if lag is None else lag)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    """A single-value gauge."""
    return GaugeMetricFamily(name, doc, value=value)


def backup(url: str, dest: str | os.PathLike) -> None:
    """Writes a consistent copy of a live database: SQLite's online backup API, or pg_dump -Fc."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        # The backup API copies page by page under SQLite's own locks: safe while serving.
        _sqlite_copy(u.database, dest)
        return
    subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--file", str(dest), _libpq(u)], check=True,
                   env=_pg_env(u))


def _sqlite_copy(source, dest) -> None:
    """Copies one SQLite database over another with SQLite's online backup API."""
    src = sqlite3.connect(source)
    out = sqlite3.connect(dest)
    try:
        with out:
            src.backup(out)
    finally:
        out.close()
        src.close()


def restore(url: str, source: str | os.PathLike) -> None:
    """Replaces the database's contents with a backup made by `backup` (stop the services first)."""
    if not Path(source).is_file():
        raise click.ClickException(f"no backup file at {source}")
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        _sqlite_copy(source, u.database)
        return
    subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                    "--dbname", _libpq(u), str(source)], check=True, env=_pg_env(u))


def _libpq(u) -> str:
    """The SQLAlchemy URL as a libpq connection string, without the password."""
    return u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _pg_env(u) -> dict:
    """The environment for pg_dump/pg_restore: the password through PGPASSWORD, not argv."""
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    return env


@click.command("backup")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False))
def db_backup(file):
    """Write a consistent backup of the database to FILE while the service runs."""
    backup(current_app.config["REDSTEWARD"]["database"]["url"], file)
    click.echo(f"backup written to {file}")


@click.command("restore")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database.")
def db_restore(file, yes):
    """Replace the database with the backup in FILE (stop web and scheduler first)."""
    if not yes:
        click.confirm("This replaces every row of the database. Continue?", abort=True)
    current_app.extensions["redsteward.engine"].dispose()
    restore(current_app.config["REDSTEWARD"]["database"]["url"], file)
    click.echo(f"database restored from {file}")
