"""Full-text indexes for search on PostgreSQL (SQLite searches whole tokens with LIKE instead)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {"ix_announcements_fts": "announcements", "ix_handbook_fts": "handbook_entries"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} USING gin (to_tsvector('simple', search_text))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
