"""`flask --app wsgi menu check` on broken files: every problem is named with its line."""
from __future__ import annotations

import pytest

from handlers.menus import DEFAULT_PATH

GOOD = """\
menu:
  - name: 我要求助
    sub_button:
      - name: 我要求助
        key: FLOW_HELP
        flow: pet
  - name: 帮助
    key: HELP
    action: help

flows:
  pet:
    title: 宠物登记
    handler: forms.submit
    steps:
      - id: name
        type: text
        prompt: 宠物叫什么名字？
        validator: person_name
    summary: |
      名字：{{ answers.name }}
"""


def check(app, tmp_path, text: str):
    """Runs the CLI on a file; returns (exit code, output)."""
    path = tmp_path / "menus.yaml"
    path.write_text(text, encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["menu", "check", str(path)])
    return result.exit_code, result.output


def test_the_good_file_and_the_shipped_file_pass(app, tmp_path):
    assert check(app, tmp_path, GOOD) == (0, "ok: 2 buttons, 2 clicks, 1 flows, 0 keywords\n")
    result = app.test_cli_runner().invoke(args=["menu", "check", str(DEFAULT_PATH)])
    assert result.exit_code == 0 and result.output.startswith("ok:")


def test_shipped_sub_menus_leave_room_within_wechat_limits():
    import yaml
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert len(doc["menu"]) <= 3
    assert all(len(b.get("sub_button", [])) <= 5 for b in doc["menu"])


@pytest.mark.parametrize("old,new,line,words", [
    ("  - name: 帮助\n", "  - name: 我要求助我要求助\n", 7, "24 bytes; WeChat allows 16"),
    ("      - name: 我要求助\n", "      - name: " + "很长的按钮名" * 4 + "\n", 4, "72 bytes; WeChat allows 60"),
    ("        key: FLOW_HELP\n", "        key: HELP\n", 8, "key 'HELP' is used twice"),  # named where it is used again
    ("        flow: pet\n", "        flow: parrot\n", 6, "flow 'parrot' is not defined"),
    ("    handler: forms.submit\n", "    handler: forms.sumbit\n", 14, "handler 'forms.sumbit' does not exist"),
    ("        validator: person_name\n", "        validator: persn_name\n", 19, "validator 'persn_name' does not exist"),
    ("    action: help\n", "    action: halp\n", 9, "action 'halp' does not exist"),
    ("        prompt: 宠物叫什么名字？\n", "        prompt: 宠物叫{{ answers.name 吗？\n", 18, "template error"),
    ("        type: text\n", "        type: essay\n", 17, "step type 'essay'"),
    ("        validator: person_name\n", "        validator: person_name\n        when: answers.name ==\n", 20,
     "when: expression error"),
    ("    title: 宠物登记\n", "    title: 宠物登记\n    title: 再来一次\n", 14, "duplicate key 'title'"),
    ("    summary: |\n", "    summary: [\n", 21, "YAML syntax"),
])
def test_broken_file_names_the_line(app, tmp_path, old, new, line, words):
    assert old in GOOD
    code, output = check(app, tmp_path, GOOD.replace(old, new, 1))
    assert code == 1
    assert f"menus.yaml:{line}:" in output and words in output, output


def test_too_many_buttons_and_sub_buttons(app, tmp_path):
    extra = "".join(f"  - name: 按钮{n}\n    key: K{n}\n    action: help\n" for n in range(3))
    code, output = check(app, tmp_path, GOOD.replace("\nflows:", extra + "\nflows:", 1))
    assert code == 1 and "menus.yaml:13:" in output and "menu has 5 buttons; WeChat allows 3" in output
    subs = "".join(f"      - name: 子{n}\n        key: S{n}\n        action: help\n" for n in range(5))
    code, output = check(app, tmp_path, GOOD.replace("        flow: pet\n", "        flow: pet\n" + subs, 1))
    assert code == 1 and "menus.yaml:3:" in output and "has 6 sub-buttons; WeChat allows 5" in output


def test_every_problem_is_reported_at_once(app, tmp_path):
    text = GOOD.replace("flow: pet", "flow: parrot").replace("handler: forms.submit", "handler: nope")
    code, output = check(app, tmp_path, text)
    assert code == 1 and "parrot" in output and "nope" in output
