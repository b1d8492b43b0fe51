"""Commands under `flask --app wsgi …`: database, menu, demo data, outbox, personal-data keys."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from handlers import menus as menu_loader
from models import labels as label_loader

if TYPE_CHECKING:  # Alembic is imported by the commands that use it, not by the web app
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema.")
menu_cli = AppGroup("menu", help="menus.yaml: check and push to WeChat.")
labels_cli = AppGroup("labels", help="templates/labels.yaml: the display labels of code names.")
demo_cli = AppGroup("demo", help="Demo data for sandbox mode.")
outbox_cli = AppGroup("outbox", help="The outbox of template messages and e-mails.")
pii_cli = AppGroup("pii", help="Personal data at rest: key rotation.")


def alembic_config(url: str) -> Config:
    """Alembic's configuration, pointed at this app's database."""
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(app: Flask) -> None:
    """Creates or migrates the schema to the newest revision."""
    url = app.config["REDSTEWARD"]["database"]["url"]
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command
    command.upgrade(alembic_config(url), "head")


@db_cli.command("upgrade")
def db_upgrade():
    """Create or migrate the database to the newest schema."""
    upgrade_database(current_app)
    click.echo("database is at the newest schema")


def _checked(load, error: type, path):
    """What load(path) reads, or each problem printed as 'file:line: message' and exit status 1."""
    try:
        return load(path)
    except error as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(1)


@menu_cli.command("check")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
def menu_check(path):
    """Validate menus.yaml (or PATH) and name the line of each problem."""
    menus = _checked(menu_loader.load, menu_loader.MenuError, path or menu_loader.DEFAULT_PATH)
    click.echo(f"ok: {len(menus.menu['button'])} buttons, {len(menus.clicks)} clicks, "
               f"{len(menus.flows)} flows, {len(menus.keywords)} keywords")


@labels_cli.command("check")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
def labels_check(path):
    """Validate templates/labels.yaml (or PATH) and name the line of each problem."""
    found = _checked(label_loader.load, label_loader.LabelsError, path or label_loader.DEFAULT_PATH)
    click.echo(f"ok: {sum(map(len, found.families.values()))} labels in {len(found.families)} families")


@menu_cli.command("sync")
def menu_sync():
    """Push the checked menu to WeChat (menu/create)."""
    from .wechat_api import build_client
    settings = current_app.config["REDSTEWARD"]
    menus = current_app.extensions["redsteward.services"].menus
    client = build_client(settings, current_app.extensions["redsteward.sessions"])
    client.post("menu/create", data=menus.menu)
    click.echo(f"menu pushed to {settings['wechat']['api_base_url']}")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Only when the database has no organisations yet.")
def demo_load(if_empty):
    """Load the demo park: streets, communities, estates, stewards."""
    from . import demo
    from .db import get_session
    loaded = demo.load(get_session(), only_if_empty=if_empty)
    click.echo("demo data loaded" if loaded else "database not empty; demo data skipped")


@outbox_cli.command("send")
def outbox_send():
    """Send every due message once (the scheduler does this every few seconds)."""
    from . import outbox
    from .wechat_api import build_client
    settings = current_app.config["REDSTEWARD"]
    sessions = current_app.extensions["redsteward.sessions"]
    counts = outbox.dispatch_due(sessions, build_client(settings, sessions), settings)
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


def _census_table(census) -> None:
    """One line per encrypted column: values under the current key, previous keys, none; re-encrypted."""
    keys = len(current_app.config["REDSTEWARD"]["app"]["pii_previous_keys"])
    for column in sorted({c for c, _ in census.by_key}):
        parts = [f"current {census.by_key[(column, 0)]}"]
        parts += [f"previous {n}: {census.by_key[(column, n)]}" for n in range(1, keys + 1)]
        parts.append(f"unreadable {census.by_key[(column, None)]}")
        if census.rewritten[column]:
            parts.append(f"re-encrypted {census.rewritten[column]}")
        click.echo(f"{column:<32} " + ", ".join(parts))
    old = sum(census.count(n) for n in range(1, keys + 1))
    click.echo(f"total: current key {census.count(0)}, previous keys {old}, unreadable {census.count(None)}"
               + (f", re-encrypted {sum(census.rewritten.values())}" if census.rewritten else ""))


def _fail_on_unreadable(census) -> None:
    """Names where unreadable values are (never the values) and fails the command."""
    if census.count(None):
        for where in census.unreadable:
            click.echo(f"unreadable: {where}", err=True)
        click.echo("some values are under a key that is neither app.pii_key nor in app.pii_previous_keys",
                   err=True)
        sys.exit(1)


def _batch_echo(verb: str):
    """A progress callback printing a running count per column, at most one line per 10,000 values."""
    seen: dict[str, int] = {}

    def progress(column: str, rows: int) -> None:
        """Counts a batch and prints when a 10,000 boundary is crossed."""
        before = seen.get(column, 0)
        seen[column] = before + rows
        if seen[column] // 10_000 > before // 10_000:
            click.echo(f"  {column}: {seen[column]} {verb}")
    return progress


def _walk_encrypted(rewrite: bool, batch_size: int) -> None:
    """Counts (and with `rewrite`, re-encrypts) every stored value, prints per column, fails on unreadable."""
    from models import Base, pii
    sessions = current_app.extensions["redsteward.sessions"]
    walk = pii.rotate if rewrite else pii.census
    census = walk(sessions, Base.metadata, batch_size, progress=_batch_echo("checked" if rewrite else "read"))
    _census_table(census)
    _fail_on_unreadable(census)


@pii_cli.command("status")
@click.option("--batch-size", default=1000, show_default=True, help="Rows read per transaction.")
def pii_status(batch_size):
    """Count stored personal-data values by the key they are under (reads every value)."""
    _walk_encrypted(False, batch_size)


@pii_cli.command("rotate")
@click.option("--batch-size", default=500, show_default=True, help="Rows re-encrypted per transaction.")
def pii_rotate(batch_size):
    """Re-encrypt every value under a previous key with app.pii_key; safe to stop and run again."""
    _walk_encrypted(True, batch_size)
    click.echo("every value is now under app.pii_key")


@click.command("serve-setup")
def serve_setup():
    """What `make run` does before serving: migrate, load demo data into an empty sandbox."""
    upgrade_database(current_app)
    settings = current_app.config["REDSTEWARD"]
    if settings["wechat"]["sandbox"]:
        from . import demo
        from .db import get_session
        demo.load(get_session(), only_if_empty=True)
    base = settings["app"]["public_url"].rstrip("/")
    click.echo(f"\n  Red Steward ({'sandbox' if settings['wechat']['sandbox'] else 'production'})")
    click.echo(f"  Simulator: {base}/sandbox/")
    click.echo(f"  Webhook:   {base}/wechat\n")


park_cli = AppGroup("park", help="A generated park for benchmarks.")


@park_cli.command("generate")
@click.argument("requests", type=int, default=1_000_000)
def park_generate(requests):
    """Fill the (empty) database with a generated park: REQUESTS requests, half as many residents."""
    from .console.bench import generate
    with click.progressbar(length=requests + max(1, requests // 2), label="generating park") as bar:
        generate(current_app, requests, progress=bar.update)
    click.echo(f"{requests:,} requests and {requests // 2:,} residents generated")


reports_cli = AppGroup("reports", help="The daily rollups behind the dashboard and the assessment.")


@reports_cli.command("rebuild")
def reports_rebuild():
    """Recompute the rollups from the requests (after rows were written past the ORM, or to check)."""
    from models import rollup

    from .db import get_session
    session = get_session()
    t0 = time.perf_counter()
    rows = rollup.rebuild(session)
    session.commit()
    click.echo(f"{rows:,} rollup rows rebuilt in {time.perf_counter() - t0:.1f} s")


def init_app(app: Flask) -> None:
    """Registers the command groups."""
    from .content import content_cli
    from .qr import qr_cli
    for group in (db_cli, menu_cli, labels_cli, demo_cli, outbox_cli, pii_cli, content_cli, qr_cli, park_cli,
                  reports_cli):
        app.cli.add_command(group)
    app.cli.add_command(serve_setup)
    from .orgimport import org_cli
    app.cli.add_command(org_cli)
    from .activity_posters import activity_cli
    app.cli.add_command(activity_cli)
