"""`flask triage …`: how well smart triage does, and demo history for the sandbox to learn from."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from models import utcnow

from .db import get_session

triage_cli = AppGroup("triage", help="Smart triage: suggested type, category and handler.")


@triage_cli.command("evaluate")
@click.option("--seed", default=311, show_default=True, help="Seed of the generated requests.")
@click.option("--variants", default=3, show_default=True, help="Wordings generated per sentence.")
@click.option("--per-category", is_flag=True, help="Also print each category's precision.")
def evaluate(seed, variants, per_category):
    """Precision on a held-out split of generated demo requests (classifier and keyword rules)."""
    from handlers import triage_demo
    for r in triage_demo.evaluate(variants=variants, seed=seed):
        click.echo(f"{r.method}: trained on {r.trained_on}, tested on {r.tested_on} held-out requests")
        click.echo(f"  category precision (macro) {r.category_precision:.1%}   "
                   f"category accuracy {r.category_accuracy:.1%}   type accuracy {r.type_accuracy:.1%}")
        click.echo(f"  suggested for {r.answered:.1%}   accuracy on unseen hand-written sentences "
                   f"{r.phrase_accuracy:.1%}")
        if per_category:
            for name, precision in r.per_category.items():
                click.echo(f"    {name:<12} {precision:.1%}")


@triage_cli.command("demo-history")
@click.option("--variants", default=1, show_default=True, help="Wordings generated per sentence.")
def demo_history(variants):
    """File generated, closed requests in the demo park so the classifier has history to learn from."""
    from handlers import triage_demo
    session = get_session()
    count = triage_demo.load_history(session, utcnow(), variants=variants)
    session.commit()
    click.echo(f"{count} closed demo requests filed")


def init_app(app: Flask) -> None:
    """Registers the command group."""
    app.cli.add_command(triage_cli)
