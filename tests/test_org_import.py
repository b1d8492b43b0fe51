"""The organisation directory file: import through the CLI, idempotent re-import, named mistakes."""
from __future__ import annotations

import pytest
import yaml
from sqlalchemy import func, select, text

from bot import orgimport
from models import Estate, Liaison, Organisation, Steward


def counts(sessions) -> tuple[int, int, int, int]:
    """How many organisations, estates, stewards and liaisons are stored."""
    with sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Organisation, Estate, Steward, Liaison))


def example() -> dict:
    """The shipped example, parsed, to edit in a test."""
    return yaml.safe_load(orgimport.EXAMPLE_PATH.read_text(encoding="utf-8"))


def test_cli_import_is_idempotent(app, sessions):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["org", "import", str(orgimport.EXAMPLE_PATH)])
    assert first.exit_code == 0, first.output
    assert "organisations=" in first.output
    before = counts(sessions)
    assert runner.invoke(args=["org", "import", str(orgimport.EXAMPLE_PATH)]).exit_code == 0
    assert counts(sessions) == before
    with sessions() as s:
        xhy = s.scalar(select(Estate).where(Estate.code == "xhy"))
        assert {k: o.code for k, o in xhy.tripartite().items()} == {
            "party_organisation": "xinghu_party", "owners_committee": "xhy_oc", "property_company": "xhy_pm"}
        swc = s.scalar(select(Organisation).where(Organisation.code == "hx_swc"))
        assert swc.kind == "social_work_committee" and swc.parent.code == "hx_street"
        steward = s.scalar(select(Steward).where(Steward.openid == "sandbox_steward_xinghu"))
        assert steward.community.code == "xinghu"


def test_reimport_applies_edits_and_retires_dropped_liaisons(app, sessions, tmp_path):
    with sessions() as s:
        orgimport.import_file(s, orgimport.EXAMPLE_PATH)
    data = example()
    estate = data["park"]["streets"][0]["communities"][0]["estates"][0]
    estate["property_company"]["name"] = "星湖苑物业（新）"
    estate["property_company"]["liaisons"] = [{"name": "新联络人", "openid": "o_new_pm"}]
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with sessions() as s:
        orgimport.import_file(s, path)
        pm = s.scalar(select(Organisation).where(Organisation.code == "xhy_pm"))
        assert pm.name == "星湖苑物业（新）"
        active = {(l.openid, l.active) for l in pm.liaisons}
        assert active == {("sandbox_liaison_xhy_pm", False), ("o_new_pm", True)}


def test_liaison_names_are_encrypted_at_rest(app, sessions):
    with sessions() as s:
        orgimport.import_file(s, orgimport.EXAMPLE_PATH)
        raw = s.execute(text("SELECT name FROM liaisons")).scalars().all()
        assert raw and not any("吴刚" in value for value in raw)
        liaison = s.scalar(select(Liaison).where(Liaison.openid == "sandbox_liaison_xhy_pm"))
        assert liaison.name == "吴刚" and liaison.masked_name == "吴*"


@pytest.mark.parametrize("edit,problem", [
    (lambda d: d["park"]["streets"][0]["communities"][0].pop("code"), "park.streets[0].communities[0]: code"),
    (lambda d: d["park"]["departments"][0].update(code="xhy"), "code 'xhy' is used twice"),
    (lambda d: d["park"]["streets"][0]["social_work_committee"].pop("email"),
     "park.streets[0].social_work_committee: email is required"),
    (lambda d: d["park"]["streets"][0]["communities"][0]["stewards"][0].pop("openid"),
     "communities[0].stewards[0]: openid and name are required"),
    (lambda d: d["park"]["organisation_department"]["liaisons"][0].update(openid=None, email=None),
     "organisation_department.liaisons[0]: name and an openid or email"),
])
def test_mistakes_are_named_and_nothing_is_imported(app, sessions, tmp_path, edit, problem):
    data = example()
    edit(data)
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["org", "import", str(path)])
    assert result.exit_code == 1 and problem in result.output
    assert counts(sessions) == (0, 0, 0, 0)


def test_routing_check_command(app, tmp_path):
    runner = app.test_cli_runner()
    assert "ok:" in runner.invoke(args=["org", "routing-check"]).output
    bad = tmp_path / "routing.yaml"
    bad.write_text("rules:\n  - match: {type: misc}\n    handler: property_company\n", encoding="utf-8")
    result = runner.invoke(args=["org", "routing-check", str(bad)])
    assert result.exit_code == 1 and "unknown type 'misc'" in result.output
