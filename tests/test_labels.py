"""templates/labels.yaml: every code name people see has a label there, checked at start-up."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import labels_check
from models import OutboxMessage, ServiceRequest, labels
from models.labels import DEFAULT_PATH, LabelsError

from .test_console_support import Console, org, park  # noqa: F401  (fixture)

SHIPPED = DEFAULT_PATH.read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing needle."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture(autouse=True)
def shipped_labels_afterwards():
    """Puts the shipped labels back in force, whatever a test loaded."""
    yield
    labels.use(labels.load())


@pytest.fixture
def edited(tmp_path):
    """Writes a copy of the shipped labels with one text replaced; returns its path."""
    def write(old: str, new: str):
        assert SHIPPED.count(old) == 1, old
        path = tmp_path / "labels.yaml"
        path.write_text(SHIPPED.replace(old, new), encoding="utf-8")
        return path
    return write


def test_the_shipped_file_labels_every_code_name_the_program_uses():
    found = labels.load()
    assert set(found.families) == set(labels.FAMILIES)
    for family, names in labels.FAMILIES.items():
        assert set(found[family]) == set(names), family
    assert found("timeline_action", "route") == "派单" and found("rating", "basically_satisfied") == "基本满意"


def test_a_missing_label_names_file_line_and_key_and_stops_start_up(edited, make_app):
    path = edited("  answered: 已答复\n", "")
    family_line = line_of(path.read_text(encoding="utf-8"), "request_status:")
    with pytest.raises(LabelsError) as exc:
        labels.load(path)
    assert exc.value.problems == [f"{path}:{family_line}: request_status.answered: no label"]
    with pytest.raises(LabelsError, match=f"{path}:{family_line}: request_status.answered: no label"):
        make_app(app={"labels_path": str(path)})


@pytest.mark.parametrize("old, new, needle, message", [
    ("  answered: 已答复\n", "  answerd: 已答复\n", "answerd:", "request_status.answerd: unknown code name"),
    ("  rated: 已评价\n  closed:", "  rated: 已评价\n  rated: 评过了\n  closed:", "评过了", "request_status.rated: given twice"),
    ("  unsatisfied: 不满意\n", "  unsatisfied:\n", "unsatisfied:", "rating.unsatisfied: the label must be text"),
    ("  route: 派单\n", "  route: 派单: 交办\n", "派单: 交办", "mapping values are not allowed here"),
    ("request_kind:", "request_kinds:", "request_kinds:", "request_kinds: unknown family"),
])
def test_a_typo_is_named_with_its_line(edited, old, new, needle, message):
    path = edited(old, new)
    with pytest.raises(LabelsError) as exc:
        labels.load(path)
    line = line_of(path.read_text(encoding="utf-8"), needle)
    assert any(p.startswith(f"{path}:") and message in p for p in exc.value.problems), exc.value.problems
    assert any(p.startswith(f"{path}:{line}: ") for p in exc.value.problems), (line, exc.value.problems)


def test_labels_check_command_prints_each_problem(edited):
    path = edited("  phone: 电话\n", "")
    result = CliRunner().invoke(labels_check, [str(path)])
    assert result.exit_code == 1
    assert f"{path}:{line_of(path.read_text(encoding='utf-8'), 'request_channel:')}: request_channel.phone: no label" \
        in result.output
    ok = CliRunner().invoke(labels_check, [str(DEFAULT_PATH)])
    assert ok.exit_code == 0 and "ok:" in ok.output


@pytest.fixture
def app(make_app, edited):
    """The app with labels of its own: 派单 reads 交办, 办理中 reads 正在办理, 满意 reads 很满意."""
    path = edited("  route: 派单\n", "  route: 交办\n")
    text = path.read_text(encoding="utf-8").replace("  routed: 办理中\n", "  routed: 正在办理\n")
    path.write_text(text.replace("  satisfied: 满意\n", "  satisfied: 很满意\n"), encoding="utf-8")
    return make_app(app={"labels_path": str(path)})


def test_a_changed_label_shows_on_the_console_and_in_the_template_message(park, sessions):
    req_id = park.config["TEST_IDS"]["hanlin"]
    console = Console(park, "hanlin")
    with sessions() as s:
        handler = org(s, "hlsy_pm").id
        openid = s.get(ServiceRequest, req_id).resident.openid
    console.post(f"/console/requests/{req_id}/classify", {"type": "market_service", "category": "物业服务"})
    assert console.post(f"/console/requests/{req_id}/route",
                        {"handler_id": str(handler), "deadline_days": "3"}).status_code == 302
    page = console.get(f"/console/requests/{req_id}").get_data(as_text=True)
    timeline = page[page.index("<ol"):]
    assert "<b>交办</b>" in timeline and "<b>派单</b>" not in timeline
    assert "正在办理" in page and "办理中" not in page
    inbox = console.get("/console/requests").get_data(as_text=True)
    assert "正在办理" in inbox
    with sessions() as s:
        to_resident = s.scalars(select(OutboxMessage).where(OutboxMessage.recipient == openid)).all()
    assert [m.payload["data"]["phrase2"]["value"] for m in to_resident] == ["正在办理"]


def test_a_changed_rating_label_is_asked_and_understood(park, sessions):
    from handlers import rating
    from handlers.texts import say
    assert "1 很满意" in say("rating_ask", ref="12345678", resolution="")
    assert rating.parse("很满意 谢谢") == ("satisfied", "谢谢")
    assert rating.parse("基本满意") == ("basically_satisfied", None)  # the usual words still count


def test_another_app_without_its_own_file_uses_the_shipped_labels(make_app):
    make_app()
    assert labels.label("timeline_action", "route") == "派单"
