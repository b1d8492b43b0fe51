"""Backups: `flask db backup` of a live database, a wipe, `flask db restore`, and every row back.

Runs on the suite's database: SQLite (the online backup API) by default, PostgreSQL
(pg_dump/pg_restore) when REDSTEWARD_TEST_DATABASE_URL is set.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from models import Resident, ServiceRequest, file_request, make_engine


def wipe(url: str) -> None:
    """Loses the database: the SQLite file deleted, or every PostgreSQL table dropped."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(u.database + suffix).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_backup_wipe_restore_brings_every_row_back(make_app, tmp_path):
    """A resident (name encrypted) and a request survive backup → loss → restore."""
    app = make_app()
    url = app.config["REDSTEWARD"]["database"]["url"]
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s, s.begin():
        s.add(Resident(openid="oBackup1", name="王小明", mobile="13900001111"))
        s.flush()
        resident = s.scalar(select(Resident).where(Resident.openid == "oBackup1"))
        file_request(s, kind="help", description="楼道灯坏了", resident_id=resident.id)
    runner = app.test_cli_runner()
    dump = tmp_path / "redsteward.backup"
    result = runner.invoke(args=["db", "backup", str(dump)])
    assert result.exit_code == 0, result.output
    assert dump.stat().st_size > 0

    # Written after the backup: gone after the restore, as it should be.
    with sessions() as s, s.begin():
        s.add(Resident(openid="oAfterBackup"))
    app.extensions["redsteward.engine"].dispose()
    wipe(url)

    result = runner.invoke(args=["db", "restore", str(dump), "--yes"])
    assert result.exit_code == 0, result.output
    with sessions() as s:
        back = s.scalar(select(Resident).where(Resident.openid == "oBackup1"))
        assert (back.name, back.masked_mobile) == ("王小明", "139****1111")
        assert s.scalar(select(ServiceRequest.description)) == "楼道灯坏了"
        assert s.scalar(select(func.count()).select_from(Resident).where(Resident.openid == "oAfterBackup")) == 0


def test_restore_refuses_a_missing_file(make_app, tmp_path):
    """A wrong path is named, and the database is left alone."""
    app = make_app()
    result = app.test_cli_runner().invoke(args=["db", "restore", str(tmp_path / "nope"), "--yes"])
    assert result.exit_code != 0 and "no backup file" in result.output
