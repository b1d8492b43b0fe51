"""Display labels of code names (statuses, kinds, ratings, …), kept in templates/labels.yaml.

A model declares the code names it stores with `codes(family, names)`, as a table declares its
columns; `load` then checks that the file gives every one of them a label (and nothing else),
naming file, line and key of each problem. One set of labels is in force per process, like the
reply templates: the app loads it at start-up, anything else gets the shipped file on first use.
"""
from __future__ import annotations

from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "templates" / "labels.yaml"

# family -> code names the program uses; filled by `codes` as the model modules are imported.
FAMILIES: dict[str, tuple[str, ...]] = {}


class LabelsError(ValueError):
    """labels.yaml is wrong; `problems` lists 'file:line: family.code: message' strings."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def codes(family: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Declares code names that people see through their labels; returns them unchanged."""
    FAMILIES[family] = tuple(dict.fromkeys((*FAMILIES.get(family, ()), *names)))
    return names


class Labels:
    """The labels of one file: family -> {code: label}, in the file's order."""

    def __init__(self, families: dict[str, dict[str, str]], path: str):
        self.families = families
        self.path = path

    def __call__(self, family: str, code: str | None) -> str:
        """The label of a code; a code the program no longer declares (old rows) shows as itself."""
        return self.families.get(family, {}).get(code or "", code or "")

    def __getitem__(self, family: str) -> dict[str, str]:
        """All labels of a family, code -> label, for choices and legends."""
        return self.families[family]

    def pick(self, family: str, names) -> dict[str, str]:
        """The labels of some codes of a family, in the order given."""
        return {code: self.families[family][code] for code in names}


def load(path: str | Path = DEFAULT_PATH) -> Labels:
    """Reads and checks a labels file; raises LabelsError naming every problem."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            root = yaml.compose(f, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise LabelsError([f"{path}:1: cannot read: {exc.strerror}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise LabelsError([f"{path}:{mark.line + 1 if mark else 1}: {exc.problem or exc}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise LabelsError([f"{path}:1: expected a mapping of families (request_status: …)"])
    problems: list[str] = []
    found: dict[str, dict[str, str]] = {}
    present = set()
    for family, family_line, entries in _pairs(root, path, "", problems):
        present.add(family)
        if family not in FAMILIES:
            problems.append(f"{path}:{family_line}: {family}: unknown family (known: {', '.join(sorted(FAMILIES))})")
            continue
        if not isinstance(entries, yaml.MappingNode):
            problems.append(f"{path}:{family_line}: {family}: expected code: label lines")
            continue
        found[family] = {}
        for code, line, value in _pairs(entries, path, family + ".", problems):
            key = f"{family}.{code}"
            if code not in FAMILIES[family]:
                problems.append(f"{path}:{line}: {key}: unknown code name (known: {', '.join(FAMILIES[family])})")
            elif not isinstance(value, yaml.ScalarNode) or value.tag != "tag:yaml.org,2002:str" \
                    or not value.value.strip():
                problems.append(f"{path}:{line}: {key}: the label must be text")
            else:
                found[family][code] = value.value.strip()
        for code in FAMILIES[family]:
            if code not in found[family]:
                problems.append(f"{path}:{family_line}: {family}.{code}: no label")
    last = root.end_mark.line + 1
    for family in FAMILIES:
        if family not in present:
            problems.append(f"{path}:{last}: {family}: missing (labels for {', '.join(FAMILIES[family])})")
    if problems:
        raise LabelsError(problems)
    return Labels(found, path)


def _pairs(node: yaml.MappingNode, path: str, prefix: str, problems: list[str]):
    """(key, 1-based line, value node) of a mapping; a key given twice is a problem, not an overwrite."""
    seen = set()
    for key, value in node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode):
            problems.append(f"{path}:{line}: {prefix}?: a key must be a plain word")
            continue
        if key.value in seen:
            problems.append(f"{path}:{line}: {prefix}{key.value}: given twice")
            continue
        seen.add(key.value)
        yield key.value, line, value


_current: Labels | None = None


def use(labels: Labels) -> None:
    """Puts a checked set of labels in force for this process."""
    global _current
    _current = labels


def current() -> Labels:
    """The labels in force (the shipped file, checked, when the app has not loaded one)."""
    if _current is None:
        use(load())
    return _current


def label(family: str, code: str | None) -> str:
    """The label in force for a code (e.g. label('request_status', 'answered'))."""
    return current()(family, code)


def labels_of(family: str) -> dict[str, str]:
    """Code -> label of a whole family in force, in the file's order (choices, legends)."""
    return current()[family]


def pick(family: str, names) -> dict[str, str]:
    """Code -> label in force of some codes of a family, in the order given."""
    return current().pick(family, names)


def add_to(env) -> None:
    """Gives a Jinja environment `{{ code|label('family') }}` and `labels_of('family')`."""
    env.filters["label"] = lambda code, family: label(family, code)
    env.globals["labels_of"] = labels_of
