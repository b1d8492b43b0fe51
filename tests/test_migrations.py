"""Alembic: an empty database migrated to head matches the models exactly, and downgrades."""
from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.cli import alembic_config
from models import Base
from models.base import make_engine

from .conftest import fresh_database


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_upgrade_from_empty_matches_the_models(tmp_path):
    url = fresh_database(tmp_path)
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], "models changed without a migration: run `make migration`"


def test_search_indexes_exist_on_postgresql(tmp_path):
    """The full-text indexes the search relies on are created by the migrations (PostgreSQL only)."""
    url = fresh_database(tmp_path)
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    names = {i["name"] for t in ("announcements", "handbook_entries") for i in inspect(engine).get_indexes(t)}
    engine.dispose()
    if engine.dialect.name == "postgresql":
        assert {"ix_announcements_fts", "ix_handbook_fts"} <= names
    else:
        assert not names & {"ix_announcements_fts", "ix_handbook_fts"}


def test_downgrade_to_empty_and_up_again(tmp_path):
    url = fresh_database(tmp_path)
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    command.upgrade(cfg, "head")
