"""`flask --app wsgi content load FILE`: the FAQ/case handbook and announcements from YAML."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml
from flask.cli import AppGroup

from models.content import ContentError, load_content

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "content.example.yaml"

content_cli = AppGroup("content", help="Announcements and the FAQ/case handbook.")


def load_file(session, path: str | Path) -> dict[str, int]:
    """Loads one YAML content file in one transaction; nothing is stored if any entry is wrong."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        counts = load_content(session, doc)
    except (ContentError, yaml.YAMLError):
        session.rollback()
        raise
    session.commit()
    return counts


@content_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def content_load(path):
    """Create or update announcements and handbook entries from a YAML file (by key)."""
    from .db import get_session
    try:
        counts = load_file(get_session(), path)
    except ContentError as exc:
        click.echo(f"{path}: {exc}", err=True)
        sys.exit(1)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        click.echo(f"{path}:{mark.line + 1 if mark else 0}: YAML syntax: {getattr(exc, 'problem', exc)}",
                   err=True)
        sys.exit(1)
    click.echo(f"loaded {counts['handbook']} handbook entries, {counts['announcements']} announcements")


@content_cli.command("reindex")
def content_reindex():
    """Re-segment the search words of announcements, handbook entries and resources."""
    from models.content import reindex

    from .db import get_session
    session = get_session()
    counts = reindex(session)
    session.commit()
    click.echo(", ".join(f"{n} {table}" for table, n in counts.items()) + " re-segmented")
