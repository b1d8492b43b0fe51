"""Personal-data key rotation on the suite's database (SQLite, or PostgreSQL in CI's second pass).

Data written under key A; the config moves to key B with A as a previous key; everything
still reads; `pii rotate` re-encrypts it; A removed; everything still reads. A value under
a key nobody configured is refused with a clear error, never shown as garbage.
"""
from __future__ import annotations

import pytest
from cryptography.fernet import InvalidToken
from sqlalchemy import Text, select, type_coerce

from bot import demo as demo_data
from bot.config import ConfigError, load_settings
from models import Base, Liaison, Resident, ServiceRequest, file_request, pii

KEY_A, KEY_B, KEY_C = "key-A-" + "a" * 30, "key-B-" + "b" * 30, "key-C-" + "c" * 30
PEOPLE = [("oRot%02d" % n, f"王小{n}", f"139{n:08d}", f"32050{n:013d}", f"星湖苑{n}幢") for n in range(12)]


def write_people(app) -> None:
    """Residents with every personal field, a request with a contact, the demo park's liaisons."""
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s:
        demo_data.load(s)
    with sessions() as s, s.begin():
        for openid, name, mobile, id_number, address in PEOPLE:
            s.add(Resident(openid=openid, name=name, mobile=mobile, id_number=id_number, address=address))
        s.flush()
        first = s.scalar(select(Resident).where(Resident.openid == PEOPLE[0][0]))
        file_request(s, kind="help", description="路灯坏了", resident_id=first.id,
                     contact_name="李四", contact_mobile="13700001111")


def read_people(app) -> dict:
    """Every decrypted personal value, as the app reads them."""
    with app.extensions["redsteward.sessions"]() as s:
        residents = {r.openid: (r.name, r.mobile, r.id_number, r.address)
                     for r in s.scalars(select(Resident).where(Resident.openid.like("oRot%")))}
        contact = s.execute(select(ServiceRequest.contact_name, ServiceRequest.contact_mobile)).one()
        liaisons = sorted(s.scalars(select(Liaison.name)))
    return {"residents": residents, "contact": tuple(contact), "liaisons": liaisons}


def stored_tokens(app) -> list[str]:
    """The raw stored tokens of every encrypted column, undecrypted."""
    out = []
    with app.extensions["redsteward.sessions"]() as s:
        for table, name in pii.encrypted_columns(Base.metadata):
            out += s.scalars(select(type_coerce(table.c[name], Text)).where(table.c[name].is_not(None))).all()
    return out


def under(secret: str, token: str) -> bool:
    """Whether `token` was encrypted with `secret` (and only it is needed to read it)."""
    try:
        pii._fernet(secret).decrypt(token.encode())
        return True
    except InvalidToken:
        return False


def test_rotation_from_key_a_to_key_b_keeps_everything_readable(make_app):
    app_a = make_app(app={"pii_key": KEY_A})
    write_people(app_a)
    expected = read_people(app_a)
    assert expected["residents"]["oRot03"] == PEOPLE[3][1:] and expected["contact"] == ("李四", "13700001111")
    assert len(expected["liaisons"]) > 5 and all(expected["liaisons"])
    tokens = stored_tokens(app_a)
    assert tokens and all(under(KEY_A, t) for t in tokens)

    # The config moves to B, with A as a previous key: every value reads, new ones are written under B.
    app_b = make_app(app={"pii_key": KEY_B, "pii_previous_keys": [KEY_A]})
    assert read_people(app_b) == expected
    with app_b.extensions["redsteward.sessions"]() as s, s.begin():
        s.add(Resident(openid="oRotNew", name="赵新", mobile="13600002222"))
    with app_b.extensions["redsteward.sessions"]() as s:
        raw = s.scalar(select(type_coerce(Resident.__table__.c.mobile, Text)).where(Resident.openid == "oRotNew"))
    assert under(KEY_B, raw) and not under(KEY_A, raw)

    runner = app_b.test_cli_runner()
    status = runner.invoke(args=["pii", "status"])
    assert status.exit_code == 0, status.output
    old = len(tokens)
    assert f"total: current key 2, previous keys {old}, unreadable 0" in status.output
    assert "residents.id_number" in status.output and "previous 1: 12" in status.output

    rotated = runner.invoke(args=["pii", "rotate", "--batch-size", "5"])
    assert rotated.exit_code == 0, rotated.output
    assert f"re-encrypted {old}" in rotated.output
    assert all(under(KEY_B, t) for t in stored_tokens(app_b))
    again = runner.invoke(args=["pii", "rotate"])  # idempotent: nothing left to do
    assert again.exit_code == 0 and "re-encrypted" not in again.output
    assert f"total: current key {old + 2}, previous keys 0, unreadable 0" in again.output

    # A removed from the config: still everything readable.
    app_b_only = make_app(app={"pii_key": KEY_B})
    people = read_people(app_b_only)
    assert people == expected | {"residents": people["residents"]}
    assert {k: v for k, v in people["residents"].items() if k != "oRotNew"} == expected["residents"]
    assert people["residents"]["oRotNew"] == ("赵新", "13600002222", None, None)


def test_an_interrupted_rotation_resumes_where_it_stopped(make_app):
    app_a = make_app(app={"pii_key": KEY_A})
    write_people(app_a)
    expected = read_people(app_a)
    app_b = make_app(app={"pii_key": KEY_B, "pii_previous_keys": [KEY_A]})
    sessions = app_b.extensions["redsteward.sessions"]
    batches = []

    def stop_after_two(column, rows):
        """The operator's Ctrl-C after the second committed batch."""
        batches.append(rows)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pii.rotate(sessions, Base.metadata, batch_size=4, progress=stop_after_two)
    tokens = stored_tokens(app_b)
    done = sum(under(KEY_B, t) for t in tokens)
    assert done == 8 and sum(under(KEY_A, t) for t in tokens) == len(tokens) - 8  # two batches committed
    assert read_people(app_b) == expected  # half-rotated data reads fine

    census = pii.rotate(sessions, Base.metadata, batch_size=4)
    assert sum(census.rewritten.values()) == len(tokens) - 8 and census.count(0) == 8
    assert all(under(KEY_B, t) for t in stored_tokens(app_b))
    assert read_people(make_app(app={"pii_key": KEY_B})) == expected


def test_a_value_under_an_unknown_key_is_a_clear_error_never_garbage(make_app):
    app_a = make_app(app={"pii_key": KEY_A})
    with app_a.extensions["redsteward.sessions"]() as s, s.begin():
        s.add(Resident(openid="oRotLost", name="钱七", mobile="13500003333"))
    app_c = make_app(app={"pii_key": KEY_C, "pii_previous_keys": [KEY_B]})  # A is forgotten
    with app_c.extensions["redsteward.sessions"]() as s:
        with pytest.raises(pii.PersonalDataKeyError, match="app.pii_previous_keys"):
            s.scalar(select(Resident.mobile).where(Resident.openid == "oRotLost"))

    runner = app_c.test_cli_runner()
    for command in (["pii", "status"], ["pii", "rotate"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 1
        assert "unreadable: residents.mobile id=" in result.output and "unreadable 1" in result.output
        assert "13500003333" not in result.output and "钱七" not in result.output
    assert all(under(KEY_A, t) for t in stored_tokens(app_c))  # rotate left what it could not read alone


def test_previous_keys_come_from_the_file_or_the_environment(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[app]\npii_previous_keys = ['old-2', 'old-1']\n", encoding="utf-8")
    assert load_settings(path, environ={})["app"]["pii_previous_keys"] == ["old-2", "old-1"]
    env = {"REDSTEWARD_APP_PII_PREVIOUS_KEYS": "old-2, old-1"}
    assert load_settings(path, environ=env)["app"]["pii_previous_keys"] == ["old-2", "old-1"]
    assert load_settings(environ={})["app"]["pii_previous_keys"] == []
    path.write_text("[app]\npii_previous_keys = 'old-1'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="app.pii_previous_keys"):
        load_settings(path, environ={})
