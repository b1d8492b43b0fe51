"""menus.yaml: the WeChat menu and the flows behind it, validated with line numbers."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

import yaml
from jinja2 import Template, TemplateSyntaxError

from . import registry
from .texts import compile_expression, compile_snippet

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "menus.yaml"
STEP_TYPES = ("choice", "text", "phone", "location", "images", "voice_or_text")
BUTTON_TYPES = ("click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                "pic_photo_or_album", "pic_weixin", "location_select")


class MenuError(ValueError):
    """menus.yaml is wrong; `problems` lists 'file:line: message' strings."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _LineDict(dict):
    """A mapping that remembers the line it started on and each key's line."""

    line = 0
    key_lines: dict


class _LineLoader(yaml.SafeLoader):
    """safe_load, but mappings keep their line numbers."""

    def construct_mapping(self, node, deep=False):
        """Builds a _LineDict with 1-based line numbers; a key given twice is an error, not a silent overwrite."""
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {key_node.value!r}", problem_mark=key_node.start_mark)
                seen.add(key_node.value)
        mapping = _LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value
                             if isinstance(k, yaml.ScalarNode)}
        return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)


@dataclass
class Step:
    """One question of a flow."""

    id: str
    type: str
    prompt: Template
    optional: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    choices_from: str | None = None
    validator: str | None = None
    min_length: int = 1
    max_length: int = 500
    max_items: int = 3
    label: str = ""
    when: Any = None  # a compiled Jinja expression; the step is asked only when it is true


@dataclass
class Flow:
    """A conversation: ordered steps, a summary to confirm, and the completing handler."""

    name: str
    title: str
    steps: list[Step]
    handler: str
    summary: Template | None
    requires_verified: bool = False
    options: dict = field(default_factory=dict)

    def step(self, step_id: str) -> Step:
        """Finds a step by id."""
        return next(s for s in self.steps if s.id == step_id)

    def index(self, step_id: str) -> int:
        """Position of a step."""
        return [s.id for s in self.steps].index(step_id)


@dataclass
class Menus:
    """The loaded menus.yaml: WeChat's menu JSON, the click table, flows and keywords."""

    menu: dict
    clicks: dict[str, tuple[str, str]]  # key -> ("flow"|"action", name)
    flows: dict[str, Flow]
    keywords: dict[str, tuple[str, str]]

    def target_for_click(self, key: str) -> tuple[str, str] | None:
        """What a menu click starts."""
        return self.clicks.get(key)


def _bytes(s: str) -> int:
    """Length in UTF-8 bytes, as WeChat counts button names."""
    return len(s.encode("utf-8"))


class _Checker:
    """Collects every problem of the file instead of stopping at the first."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[str] = []

    def err(self, node, key: str | None, message: str) -> None:
        """Records a problem at the line of `key` within `node` (or the node itself)."""
        line = getattr(node, "line", 0)
        if key is not None and isinstance(node, _LineDict):
            line = node.key_lines.get(key, line)
        self.problems.append(f"{self.path}:{line}: {message}")

    def template(self, node, key: str) -> Template | None:
        """Compiles admin wording at load time so a typo is found now, not by a resident."""
        source = node.get(key)
        if source is None:
            return None
        if not isinstance(source, str):
            self.err(node, key, f"{key} must be text")
            return None
        try:
            return compile_snippet(source)
        except TemplateSyntaxError as exc:
            self.err(node, key, f"{key}: template error: {exc.message}")
            return None


def load(path: str | Path = DEFAULT_PATH) -> Menus:
    """Reads and validates menus.yaml; raises MenuError naming each bad line."""
    path = Path(path)
    registry.load_all()
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise MenuError([f"{path.name}:{line}: YAML syntax: {getattr(exc, 'problem', exc)}"]) from None
    c = _Checker(path.name)
    if not isinstance(doc, _LineDict):
        raise MenuError([f"{path.name}:1: the file must be a mapping with 'menu' and 'flows'"])
    flows = _load_flows(c, doc.get("flows") or _LineDict())
    menu, clicks = _load_menu(c, doc, flows)
    keywords = _load_keywords(c, doc.get("keywords") or _LineDict(), flows)
    if c.problems:
        raise MenuError(c.problems)
    return Menus(menu=menu, clicks=clicks, flows=flows, keywords=keywords)


def _target(c: _Checker, node: _LineDict, flows: dict) -> tuple[str, str] | None:
    """Reads `flow:` or `action:` of a button or keyword and checks the name exists."""
    if "flow" in node:
        if node["flow"] not in flows:
            c.err(node, "flow", f"flow {node['flow']!r} is not defined under flows:")
        return ("flow", node["flow"])
    if "action" in node:
        if node["action"] not in registry.ACTIONS:
            c.err(node, "action", f"action {node['action']!r} does not exist "
                                  f"(known: {', '.join(sorted(registry.ACTIONS))})")
        return ("action", node["action"])
    return None


def _load_menu(c: _Checker, doc: _LineDict, flows: dict) -> tuple[dict, dict]:
    """Checks WeChat's menu limits and builds the JSON that menu/create takes."""
    buttons = doc.get("menu")
    clicks: dict[str, tuple[str, str]] = {}
    if not isinstance(buttons, list) or not buttons:
        c.err(doc, "menu", "menu: must list 1 to 3 buttons")
        return {"button": []}, clicks
    if len(buttons) > 3:
        c.err(buttons[3], None, f"menu has {len(buttons)} buttons; WeChat allows 3")
    out = []
    for b in buttons:
        if not isinstance(b, _LineDict):
            c.err(doc, "menu", "each menu button must be a mapping")
            continue
        name = str(b.get("name", ""))
        if not name:
            c.err(b, None, "button without a name")
        elif _bytes(name) > 16:
            c.err(b, "name", f"top-level button name {name!r} is {_bytes(name)} bytes; WeChat allows 16")
        if "sub_button" in b:
            subs = b["sub_button"]
            if not isinstance(subs, list) or not subs:
                c.err(b, "sub_button", "sub_button must list 1 to 5 buttons")
                continue
            if len(subs) > 5:
                c.err(b, "sub_button", f"{name!r} has {len(subs)} sub-buttons; WeChat allows 5")
            out.append({"name": name, "sub_button": [
                _leaf(c, s, 60, clicks, flows) for s in subs if isinstance(s, _LineDict)]})
        else:
            out.append(_leaf(c, b, 16, clicks, flows))
    return {"button": out}, clicks


def _leaf(c: _Checker, b: _LineDict, name_limit: int, clicks: dict, flows: dict) -> dict:
    """Checks one clickable button and records what its key starts."""
    name = str(b.get("name", ""))
    if not name:
        c.err(b, None, "button without a name")
    elif _bytes(name) > name_limit:
        c.err(b, "name", f"button name {name!r} is {_bytes(name)} bytes; WeChat allows {name_limit}")
    btype = b.get("type", "click")
    if btype not in BUTTON_TYPES:
        c.err(b, "type", f"unknown button type {btype!r}")
    item = {"type": btype, "name": name}
    if btype == "view":
        url = str(b.get("url", ""))
        if not re.match(r"^https?://", url):
            c.err(b, "url", "a view button needs an http(s) url")
        elif _bytes(url) > 1024:
            c.err(b, "url", "url longer than 1024 bytes")
        item["url"] = url
        return item
    key = str(b.get("key", ""))
    if not key:
        c.err(b, None, f"button {name!r} needs a key")
    elif _bytes(key) > 128:
        c.err(b, "key", f"key {key!r} is longer than 128 bytes")
    elif key in clicks:
        c.err(b, "key", f"key {key!r} is used twice")
    target = _target(c, b, flows)
    if target is None:
        c.err(b, None, f"button {name!r} needs flow: or action:")
    else:
        clicks[key] = target
    item["key"] = key
    return item


def _load_keywords(c: _Checker, node: _LineDict, flows: dict) -> dict[str, tuple[str, str]]:
    """Words a resident may type to start a flow or action (e.g. 求助)."""
    out = {}
    for word, spec in node.items():
        if not isinstance(spec, _LineDict):
            c.err(node, word, f"keyword {word!r} must map to flow: or action:")
            continue
        target = _target(c, spec, flows)
        if target is None:
            c.err(node, word, f"keyword {word!r} needs flow: or action:")
        else:
            out[str(word)] = target
    return out


def _load_flows(c: _Checker, node: _LineDict) -> dict[str, Flow]:
    """Builds each flow and checks its steps."""
    flows: dict[str, Flow] = {}
    if not isinstance(node, _LineDict):
        c.err(node, None, "flows: must be a mapping of flow names")
        return flows
    for name, spec in node.items():
        if not isinstance(spec, _LineDict):
            c.err(node, name, f"flow {name!r} must be a mapping")
            continue
        handler = spec.get("handler")
        if not handler:
            c.err(spec, None, f"flow {name!r} needs a handler")
        elif handler not in registry.COMPLETERS:
            c.err(spec, "handler", f"handler {handler!r} does not exist "
                                   f"(known: {', '.join(sorted(registry.COMPLETERS))})")
        steps_node = spec.get("steps")
        if not isinstance(steps_node, list) or not steps_node:
            c.err(spec, "steps", f"flow {name!r} needs at least one step")
            steps_node = []
        steps, seen = [], set()
        for s in steps_node:
            step = _load_step(c, s, seen)
            if step:
                steps.append(step)
        known = {"title", "handler", "steps", "summary", "requires_verified", "options"}
        for key in spec:
            if key not in known:
                c.err(spec, key, f"unknown key {key!r} in flow {name!r} (known: {', '.join(sorted(known))})")
        flows[name] = Flow(name=name, title=str(spec.get("title", name)), steps=steps,
                           handler=str(handler), summary=c.template(spec, "summary"),
                           requires_verified=bool(spec.get("requires_verified", False)),
                           options=dict(spec.get("options") or {}))
    return flows


def _load_step(c: _Checker, s, seen: set) -> Step | None:
    """Checks one step: its type, id, prompt, choices and referenced names."""
    if not isinstance(s, _LineDict):
        c.problems.append(f"{c.path}:0: a step must be a mapping")
        return None
    known = {"id", "type", "prompt", "optional", "choices", "choices_from", "validator",
             "min_length", "max_length", "max_items", "label", "when"}
    for key in s:
        if key not in known:
            c.err(s, key, f"unknown key {key!r} in step (known: {', '.join(sorted(known))})")
    sid, stype = s.get("id"), s.get("type")
    if not sid:
        c.err(s, None, "step without an id")
    elif sid in seen:
        c.err(s, "id", f"step id {sid!r} is used twice in this flow")
    seen.add(sid)
    if stype not in STEP_TYPES:
        c.err(s, "type", f"step type {stype!r} is not one of {', '.join(STEP_TYPES)}")
    prompt = c.template(s, "prompt")
    if prompt is None and "prompt" not in s:
        c.err(s, None, f"step {sid!r} needs a prompt")
    choices = []
    if stype == "choice":
        raw = s.get("choices")
        if raw is None and not s.get("choices_from"):
            c.err(s, None, f"choice step {sid!r} needs choices: or choices_from:")
        for item in raw or []:
            if isinstance(item, dict):
                choices.append((str(item.get("value")), str(item.get("label", item.get("value")))))
            else:
                choices.append((str(item), str(item)))
    for key, table in (("validator", registry.VALIDATORS), ("choices_from", registry.CHOICES)):
        if s.get(key) and s[key] not in table:
            c.err(s, key, f"{key} {s[key]!r} does not exist (known: {', '.join(sorted(table))})")
    when = None
    if s.get("when") is not None:
        try:
            when = compile_expression(str(s["when"]))
        except TemplateSyntaxError as exc:
            c.err(s, "when", f"when: expression error: {exc.message}")
    return Step(id=str(sid), type=str(stype), prompt=prompt or compile_snippet(""), when=when,
                optional=bool(s.get("optional", False)), choices=choices,
                choices_from=s.get("choices_from"), validator=s.get("validator"),
                min_length=int(s.get("min_length", 1)), max_length=int(s.get("max_length", 500)),
                max_items=int(s.get("max_items", 3)), label=str(s.get("label", sid)))
