"""`flask --app wsgi user …`: create console accounts from the command line."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from models import ConsoleUser, Organisation, audit
from models.user import ROLES, UserError, create_user, shared_hash

from ..db import get_session

user_cli = AppGroup("user", help="Console accounts.")


def _create(username: str, password: str, role: str, org: str | None, name: str | None) -> None:
    """Creates the account or exits with the reason."""
    s = get_session()
    try:
        user = create_user(s, username, password, role, org, name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    audit.record(s, "cli", "user_create", f"user:{user.username}", {"role": role, "org": org})
    s.commit()
    click.echo(f"created {role} {user.username}" + (f" for {org}" if org else ""))


@user_cli.command("create-admin")
@click.option("--username", prompt=True, help="The admin's sign-in name.")
@click.password_option(help="At least 10 characters (asked twice when not given).")
def create_admin(username, password):
    """Create an admin account (sees and edits everything)."""
    _create(username, password, "admin", None, None)


@user_cli.command("create")
@click.option("--username", prompt=True)
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--org", "org", help="Code of the organisation the account is scoped to "
                                   "(a street, a community, or a handler).")
@click.option("--name", help="Display name.")
@click.password_option(help="At least 10 characters (asked twice when not given).")
def create(username, role, org, name, password):
    """Create an account with a role and the organisation it is scoped to."""
    _create(username, password, role, org, name)


# Sandbox accounts, one per role; the README's sandbox section lists them.
DEMO_PASSWORD = "hongguan-demo"
DEMO_USERS = (
    ("admin", "admin", None, "管理员"),
    ("orgdept", "organisation_department", "orgdept", "组织部 周文华"),
    ("huxi", "street_staff", "hx_street", "湖西街道 孙丽"),
    ("xinghu", "steward", "xinghu", "王红梅"),
    ("hanlin", "steward", "hanlin", "李建国"),
    ("xhy_pm", "liaison", "xhy_pm", "星湖苑物业 吴刚"),
)


def load_demo_users(session) -> int:
    """Creates the sandbox accounts that do not exist yet (their organisations must exist)."""
    made = 0
    for username, role, org, name in DEMO_USERS:
        if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
            continue
        if org and not session.scalar(select(Organisation.id).where(Organisation.code == org)):
            continue
        create_user(session, username, DEMO_PASSWORD, role, org, name, shared_hash(DEMO_PASSWORD))
        made += 1
    return made
