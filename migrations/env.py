"""Alembic environment: the models' metadata, the URL from the app's settings."""
from alembic import context

import models
from models.base import make_engine

config = context.config
target_metadata = models.Base.metadata


def run_offline() -> None:
    """Emits SQL without a connection."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Runs migrations on a live connection (batch mode so SQLite can alter tables)."""
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                              compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # a CLI run or test leaves no connection open behind it


if context.is_offline_mode():
    run_offline()
else:
    run_online()
