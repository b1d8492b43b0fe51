"""Routing rules (routing.yaml): the default handler and deadline for a classified request."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .organisation import HANDLER_KINDS, TRIPARTITE_KINDS, Organisation
from .request import TYPES, ServiceRequest

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "routing.yaml"
MATCH_KEYS = ("type", "category", "estate")
# Words a steward may type for a handler kind, relative to the request's estate.
KIND_WORDS = {
    "物业": "property_company", "物业公司": "property_company", "业委会": "owners_committee",
    "党组织": "party_organisation", "社区党组织": "party_organisation", "党委": "party_organisation",
    "居委会": "residents_committee", "工作站": "workstation", "社工委": "social_work_committee",
    "街道": "social_work_committee", "组织部": "organisation_department",
}


class RoutingError(ValueError):
    """routing.yaml is wrong; the message says where."""


@dataclass(frozen=True)
class Suggestion:
    """A handler for a request and the deadline in working days."""

    handler: Organisation | None
    deadline_days: int | None  # None: the configured days per kind apply
    rule: int | None


@dataclass(frozen=True)
class Rules:
    """The parsed routing file."""

    rules: tuple[dict, ...]
    deadlines: dict

    def deadline_for(self, type_: str | None, category: str | None) -> int | None:
        """Working days the file sets for a type and category (category, type default, file default).

        None means the file is silent, and the configured days per kind (求助/咨询/建议) apply.
        """
        per_type = self.deadlines.get(type_ or "", {})
        if category and category in per_type:
            return int(per_type[category])
        if "default" in per_type:
            return int(per_type["default"])
        default = self.deadlines.get("default")
        return int(default) if default is not None else None


def parse(data: dict, source: str = "routing.yaml") -> Rules:
    """Validates the routing file's data and returns the rules; errors name the rule."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RoutingError(f"{source}: a top-level `rules:` list is required")
    for n, rule in enumerate(data["rules"], 1):
        where = f"{source}: rule {n}"
        if not isinstance(rule, dict) or "handler" not in rule:
            raise RoutingError(f"{where}: needs `match` and `handler`")
        match = rule.get("match") or {}
        unknown = set(match) - set(MATCH_KEYS)
        if unknown:
            raise RoutingError(f"{where}: unknown match key(s) {sorted(unknown)}")
        if "type" in match and match["type"] not in TYPES:
            raise RoutingError(f"{where}: unknown type {match['type']!r} (one of {list(TYPES)})")
        handler = rule["handler"]
        if isinstance(handler, dict):
            if not handler.get("org"):
                raise RoutingError(f"{where}: handler needs `org: <code>` or a kind")
        elif handler not in HANDLER_KINDS:
            raise RoutingError(f"{where}: unknown handler kind {handler!r} (one of {list(HANDLER_KINDS)})")
        if "deadline_days" in rule and (not isinstance(rule["deadline_days"], int) or rule["deadline_days"] < 1):
            raise RoutingError(f"{where}: deadline_days must be a whole number ≥ 1")
    deadlines = data.get("deadlines") or {}
    for key, value in deadlines.items():
        if key != "default" and key not in TYPES:
            raise RoutingError(f"{source}: deadlines: unknown type {key!r}")
        values = value.values() if isinstance(value, dict) else [value]
        if any(not isinstance(v, int) or v < 1 for v in values):
            raise RoutingError(f"{source}: deadlines.{key}: working days must be whole numbers ≥ 1")
    return Rules(tuple(data["rules"]), deadlines)


def load(path: str | Path | None = None) -> Rules:
    """Reads and validates routing.yaml (or another path)."""
    path = Path(path or DEFAULT_PATH)
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise RoutingError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, str(path))


def _matches(match: dict, req: ServiceRequest) -> bool:
    """True when every key of the rule's match fits the request."""
    estate_code = req.estate.code if req.estate else None
    actual = {"type": req.type, "category": req.category, "estate": estate_code}
    return all(actual[key] == value for key, value in match.items())


def suggest(session: Session, rules: Rules, req: ServiceRequest) -> Suggestion:
    """The default handler and deadline for a classified request (handler None if none fits)."""
    for n, rule in enumerate(rules.rules, 1):
        if not _matches(rule.get("match") or {}, req):
            continue
        handler = rule["handler"]
        if isinstance(handler, dict):
            org = session.scalar(select(Organisation).where(Organisation.code == handler["org"]))
        else:
            org = handler_of_kind(session, req, handler)
        if org is None:
            continue  # e.g. an estate without an owners' committee: try the next rule
        days = rule.get("deadline_days") or rules.deadline_for(req.type, req.category)
        return Suggestion(org, days, n)
    return Suggestion(None, rules.deadline_for(req.type, req.category), None)


def handler_of_kind(session: Session, req: ServiceRequest, kind: str) -> Organisation | None:
    """The organisation of a kind that answers for this request's estate or community."""
    if kind in TRIPARTITE_KINDS and req.estate is not None:
        org = req.estate.tripartite()[kind]
        if org is not None:
            return org
    community = req.community
    if kind in ("party_organisation", "residents_committee", "workstation") and community is not None:
        return session.scalar(select(Organisation).where(Organisation.parent_id == community.id,
                                                         Organisation.kind == kind).order_by(Organisation.id))
    if kind == "social_work_committee" and community is not None:
        street = community.ancestor("street")
        if street is not None:
            return session.scalar(select(Organisation).where(Organisation.parent_id == street.id,
                                                             Organisation.kind == kind))
    if kind == "organisation_department":
        return session.scalar(select(Organisation).where(Organisation.kind == kind).order_by(Organisation.id))
    return None


def find_handler(session: Session, req: ServiceRequest, words: str) -> list[Organisation]:
    """Handlers a steward's words may mean: a code, a name, a kind word (物业), or part of a name."""
    words = (words or "").strip()
    if not words:
        return []
    kinds = Organisation.kind.in_(HANDLER_KINDS)
    exact = session.scalars(select(Organisation).where(kinds, or_(Organisation.code == words,
                                                                  Organisation.name == words))).all()
    if exact:
        return list(exact)
    if words in KIND_WORDS:
        org = handler_of_kind(session, req, KIND_WORDS[words])
        return [org] if org is not None else []
    like = words.replace("%", "").replace("_", "")
    return list(session.scalars(select(Organisation).where(kinds, Organisation.name.contains(like))
                                .order_by(Organisation.id).limit(6)))
