"""Re-segment stored search words: the segmenter now uses a reduced jieba dictionary

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:00:00
"""
from alembic import op
from sqlalchemy.orm import Session

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stored words and a resident's query must come from the same cut, or whole words miss.
    from models.content import reindex
    session = Session(bind=op.get_bind())
    reindex(session)
    session.flush()


def downgrade() -> None:
    pass  # the words stay valid for search; `content reindex` cuts them again with any dictionary
