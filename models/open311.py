"""Open311 GeoReport v2: the service catalogue, request mapping, queries and submissions.

Plain data in, plain data out: bot/open311.py turns these dicts into XML or JSON.
Nothing personal leaves: no names, phones or openids, descriptions are scrubbed, and
locations are given as the estate only.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, StrictUndefined
from sqlalchemy import ForeignKey, Integer, JSON, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from .apikey import ApiKey
from .base import Base, UTCDateTime, utcnow
from .organisation import Estate, Organisation
from .labels import label
from .request import KINDS, OPEN_STATUSES, TYPES, ServiceRequest, file_request
from .timeline import Actor, TimelineEntry
from .workflow import EARLY_CLOSE_REASONS

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_PATH = ROOT / "triage.yaml"
MESSAGES_PATH = ROOT / "templates" / "open311" / "messages.yaml"
PARK_TZ = ZoneInfo("Asia/Shanghai")
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
MAX_DESCRIPTION = 4000
# Timeline actions whose note the resident is shown; transfer and escalation notes stay inside.
PUBLIC_ACTIONS = ("answer", "resolve", "close")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


class Open311Error(Exception):
    """A client error answered in the spec's <errors> format with its HTTP status."""

    def __init__(self, status: int, message: str, /, **kw):
        """Renders the message from templates/open311/messages.yaml."""
        self.status = status
        self.description = _message(message, **kw)
        super().__init__(self.description)


@lru_cache(maxsize=1)
def _messages() -> dict:
    """The error and notice wording, compiled once."""
    env = Environment(undefined=StrictUndefined, autoescape=False)
    with open(MESSAGES_PATH, encoding="utf-8") as fh:
        return {name: env.from_string(text) for name, text in yaml.safe_load(fh).items()}


def _message(message: str, /, **kw) -> str:
    """One message, rendered."""
    return _messages()[message].render(**kw).strip()


# ---- the catalogue (triage.yaml) ------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    """One finer category, offered as an Open311 service."""

    code: str
    name: str
    type: str
    description: str
    keywords: tuple[str, ...]
    attributes: tuple[dict, ...]
    demo: tuple[str, ...]
    subjects: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """The categories of triage.yaml and the settings beside them."""

    services: tuple[Service, ...]
    settings: dict

    def by_code(self, code: str) -> Service | None:
        """The service with this service_code."""
        return next((s for s in self.services if s.code == code), None)

    def by_name(self, name: str | None) -> Service | None:
        """The service whose category name a request carries."""
        return next((s for s in self.services if s.name == name), None)


class CatalogueError(ValueError):
    """triage.yaml is wrong; the message names the category."""


def parse_catalogue(data: dict, source: str = "triage.yaml") -> Catalogue:
    """Validates the categories and their attributes."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise CatalogueError(f"{source}: a top-level `categories:` list is required")
    services, seen = [], set()
    for n, item in enumerate(data["categories"], 1):
        where = f"{source}: category {n}"
        for field in ("code", "name", "type"):
            if not item.get(field):
                raise CatalogueError(f"{where}: `{field}` is required")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", item["code"]):
            raise CatalogueError(f"{where}: code {item['code']!r} must be lower-case letters, digits, _")
        if item["type"] not in TYPES:
            raise CatalogueError(f"{where}: unknown type {item['type']!r} (one of {list(TYPES)})")
        if item["code"] in seen or item["name"] in seen:
            raise CatalogueError(f"{where}: {item['code']!r} or {item['name']!r} appears twice")
        seen.update((item["code"], item["name"]))
        for attr in item.get("attributes") or []:
            if attr.get("datatype") not in DATATYPES or not attr.get("code"):
                raise CatalogueError(f"{where}: attribute needs `code` and a datatype of {DATATYPES}")
        services.append(Service(item["code"], item["name"], item["type"], item.get("description", ""),
                                tuple(item.get("keywords") or ()), tuple(item.get("attributes") or ()),
                                tuple(item.get("demo") or ()), tuple(item.get("subjects") or ()),
                                tuple(item.get("problems") or ())))
    settings = {k: v for k, v in data.items() if k != "categories"}
    return Catalogue(tuple(services), settings)


@lru_cache(maxsize=4)
def load_catalogue(path: str | None = None) -> Catalogue:
    """Reads and validates triage.yaml once per process."""
    path = Path(path or CATALOGUE_PATH)
    with open(path, encoding="utf-8") as fh:
        return parse_catalogue(yaml.safe_load(fh), str(path))


# ---- services -------------------------------------------------------------------------------

def service_list(catalogue: Catalogue) -> list[dict]:
    """GET services: every category with its group (the four types)."""
    return [{"service_code": s.code, "service_name": s.name, "description": s.description,
             "metadata": True, "type": "realtime", "keywords": ",".join(s.keywords),
             "group": label("request_type", s.type)} for s in catalogue.services]


def service_definition(session: Session, catalogue: Catalogue, code: str) -> dict:
    """GET service definition: the estate and kind every request needs, then the category's own."""
    service = catalogue.by_code(code)
    if service is None:
        raise Open311Error(404, "unknown_service", code=code)
    estates = session.scalars(select(Estate).order_by(Estate.code)).all()
    attributes = [
        {"variable": True, "code": "estate", "datatype": "singlevaluelist", "required": True,
         "datatype_description": _message("estate_datatype"), "order": 1,
         "description": _message("estate_description"),
         "values": [{"key": e.code, "name": e.name} for e in estates]},
        {"variable": True, "code": "kind", "datatype": "singlevaluelist", "required": False,
         "datatype_description": None, "order": 2, "description": _message("kind_description"),
         "values": [{"key": k, "name": label("request_kind", k)} for k in KINDS]},
    ]
    for order, attr in enumerate(service.attributes, 3):
        attributes.append({"variable": True, "code": attr["code"], "datatype": attr["datatype"],
                           "required": bool(attr.get("required")), "datatype_description": None,
                           "order": order, "description": attr.get("description", ""),
                           "values": [{"key": str(v["key"]), "name": v["name"]}
                                      for v in attr.get("values") or ()]})
    return {"service_code": service.code, "attributes": attributes}


# ---- requests -------------------------------------------------------------------------------

def w3c(moment: datetime | None) -> str | None:
    """ISO 8601 with the park's offset, to the second (2026-11-26T21:05:00+08:00)."""
    return moment.astimezone(PARK_TZ).isoformat(timespec="seconds") if moment else None


_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# Flat and room numbers pin a household down; the estate is as precise as we publish.
_ROOM = re.compile(r"(\d+\s*-\s*)?\d+\s*(室|号房|户|房间)")


def scrub(text: str, names: tuple[str, ...] = ()) -> str:
    """A description fit to publish: phones, ID numbers, e-mails, rooms and known names masked."""
    text = _ID_NUMBER.sub("***", text)
    text = _MOBILE.sub(lambda m: m.group()[:3] + "****" + m.group()[-4:], text)
    text = _LANDLINE.sub("***", text)
    text = _EMAIL.sub("***", text)
    text = _ROOM.sub("**室", text)
    for name in names:
        if name and len(name) >= 2:
            text = text.replace(name, name[0] + "*" * (len(name) - 1))
    return text


def _address(estate: Estate | None) -> str | None:
    """The estate and everything above it, most specific first."""
    if estate is None:
        return None
    parts, org = [estate.name], estate.community
    while org is not None:
        if org.kind in ("community", "street", "park"):
            parts.append(org.name)
        org = org.parent
    return "，".join(parts)


def public_notes(session: Session, request_ids: list[int]) -> dict[int, str]:
    """The latest public reply of each request: an answer, a resolution, or an early close's note."""
    notes: dict[int, str] = {}
    for start in range(0, len(request_ids), 500):
        rows = session.execute(
            select(TimelineEntry.request_id, TimelineEntry.action, TimelineEntry.note, TimelineEntry.data)
            .where(TimelineEntry.request_id.in_(request_ids[start:start + 500]),
                   TimelineEntry.action.in_(PUBLIC_ACTIONS), TimelineEntry.note.is_not(None))
            .order_by(TimelineEntry.id))
        for request_id, action, note, data in rows:
            if action == "close" and (data or {}).get("reason") not in EARLY_CLOSE_REASONS:
                continue  # a routine closure after rating says nothing new
            notes[request_id] = note
    return notes


def request_dicts(session: Session, reqs: list[ServiceRequest], catalogue: Catalogue) -> list[dict]:
    """Requests as the spec's <request>s: no personal data, located by their estate."""
    notes = public_notes(session, [r.id for r in reqs])
    return [request_dict(r, catalogue, notes.get(r.id)) for r in reqs]


def request_dict(req: ServiceRequest, catalogue: Catalogue, note: str | None) -> dict:
    """One request; `note` is its latest public reply."""
    service = catalogue.by_name(req.category)
    names = tuple(n for n in (req.resident.name if req.resident else None, req.contact_name) if n)
    return {
        "service_request_id": req.ref,
        "status": "open" if req.status in OPEN_STATUSES else "closed",
        "status_notes": scrub(note, names) if note else None,
        "service_name": service.name if service else req.category,
        "service_code": service.code if service else req.category,
        "description": scrub(req.description or "", names),
        "agency_responsible": req.handler.name if req.handler else None,
        "service_notice": None,
        "requested_datetime": w3c(req.created_at),
        "updated_datetime": w3c(req.updated_at or req.created_at),
        "expected_datetime": w3c(req.deadline_at),
        "address": _address(req.estate),
        "address_id": req.estate.code if req.estate else None,
        "zipcode": None,
    }


# One query per relationship for a whole page of requests, not one per request.
_EAGER = (selectinload(ServiceRequest.resident), selectinload(ServiceRequest.handler),
          selectinload(ServiceRequest.estate).selectinload(Estate.community))


def _parse_date(value: str, name: str) -> datetime:
    """A w3 datetime with its zone; a bare date or time means park time."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, "bad_date", name=name, value=value) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=PARK_TZ)


def _csv(value: str | None) -> list[str]:
    """A comma-delimited parameter as a list, blanks dropped."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def query_requests(session: Session, catalogue: Catalogue, params: dict, now: datetime | None = None,
                   scope: Organisation | None = None) -> list[ServiceRequest]:
    """GET requests: by ids, or by service_code, a ≤ 90-day window and status; at most 1,000."""
    now = now or utcnow()
    stmt = select(ServiceRequest).options(*_EAGER).where(ServiceRequest.ref.is_not(None))
    if scope is not None and scope.kind == "community":
        stmt = stmt.where(ServiceRequest.community_id == scope.id)
    ids = _csv(params.get("service_request_id"))
    if ids:  # the spec: ids override every other filter
        return list(session.scalars(stmt.where(ServiceRequest.ref.in_(ids[:MAX_RESULTS]))
                                    .order_by(ServiceRequest.created_at.desc())))
    start = _parse_date(params["start_date"], "start_date") if params.get("start_date") else None
    end = _parse_date(params["end_date"], "end_date") if params.get("end_date") else None
    if start and end and end - start > MAX_SPAN:
        raise Open311Error(400, "span_too_long")
    if start and end and end < start:
        raise Open311Error(400, "span_reversed")
    end = end or (start + MAX_SPAN if start else now)
    start = start or end - MAX_SPAN
    stmt = stmt.where(ServiceRequest.created_at >= start, ServiceRequest.created_at <= end)
    codes = _csv(params.get("service_code"))
    if codes:
        names = []
        for code in codes:
            service = catalogue.by_code(code)
            names.append(service.name if service else code)
        stmt = stmt.where(ServiceRequest.category.in_(names))
    statuses = _csv(params.get("status"))
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "bad_status", value=params.get("status"))
    if len(set(statuses)) == 1:
        is_open = ServiceRequest.status.in_(OPEN_STATUSES)
        stmt = stmt.where(is_open if statuses[0] == "open" else ~is_open)
    return list(session.scalars(stmt.order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
                                .limit(MAX_RESULTS)))



def find_request(session: Session, ref: str) -> ServiceRequest:
    """GET a request by its service_request_id (the reference number)."""
    req = session.scalar(select(ServiceRequest).options(*_EAGER)
                         .where(ServiceRequest.ref == (ref or "").strip()))
    if req is None:
        raise Open311Error(404, "unknown_request", ref=ref)
    return req


# ---- submissions ----------------------------------------------------------------------------

class Open311Submission(Base):
    """A request filed through the API: its token, the key that filed it, what it sent."""

    __tablename__ = "open311_submissions"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict | None] = mapped_column(JSON)
    device_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=1)

    request: Mapped[ServiceRequest] = relationship()

    def __repr__(self) -> str:
        return f"<Open311Submission {self.token} request={self.request_id}>"


def _estate_for(session: Session, form: dict, attributes: dict, scope: Organisation) -> Estate:
    """The estate a submission belongs to: attribute[estate], else an estate named in the address."""
    stmt = select(Estate)
    if scope.kind == "community":
        stmt = stmt.where(Estate.community_id == scope.id)
    estates = session.scalars(stmt.order_by(Estate.id)).all()
    code = attributes.get("estate")
    if code:
        found = next((e for e in estates if e.code == code), None)
        if found is None:
            raise Open311Error(400, "estate_out_of_scope", value=code)
        return found
    address = form.get("address_string") or ""
    named = [e for e in estates if e.name and e.name in address]
    if len(named) == 1:
        return named[0]
    raise Open311Error(400, "estate_needed")


def _check_attributes(service: Service, attributes: dict) -> dict:
    """Keeps the category's own attributes, checking required ones and list values."""
    kept = {}
    for attr in service.attributes:
        value = attributes.get(attr["code"])
        if value in (None, "", []):
            if attr.get("required"):
                raise Open311Error(400, "attribute_required", code=attr["code"],
                                   description=attr.get("description", ""))
            continue
        if attr["datatype"] in ("singlevaluelist", "multivaluelist"):
            allowed = {str(v["key"]): v["name"] for v in attr.get("values") or ()}
            values = value if isinstance(value, list) else [value]
            if attr["datatype"] == "singlevaluelist" and len(values) > 1:
                raise Open311Error(400, "attribute_single", code=attr["code"])
            bad = [v for v in values if v not in allowed]
            if bad:
                raise Open311Error(400, "attribute_value", code=attr["code"], value=bad[0],
                                   allowed=",".join(allowed))
            kept[attr["code"]] = {"value": value, "label": "、".join(allowed[v] for v in values)}
        elif attr["datatype"] == "number":
            try:
                float(value)
            except (TypeError, ValueError):
                raise Open311Error(400, "attribute_number", code=attr["code"], value=value) from None
            kept[attr["code"]] = {"value": value, "label": str(value)}
        else:
            kept[attr["code"]] = {"value": value, "label": str(value)[:200]}
    return kept


def _coordinate(form: dict, name: str, low: float, high: float) -> float | None:
    """lat or long as a number in range, or None when absent."""
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, "bad_coordinate", name=name, value=raw) from None
    if not low <= value <= high:
        raise Open311Error(400, "bad_coordinate", name=name, value=raw)
    return value


def submit(session: Session, catalogue: Catalogue, key: ApiKey, form: dict, attributes: dict,
           now: datetime | None = None, idempotency_key: str | None = None
           ) -> tuple[Open311Submission, bool]:
    """POST a request: checks it, files it in the key's scope; returns (submission, created)."""
    now = now or utcnow()
    if idempotency_key:
        earlier = session.scalar(select(Open311Submission).where(
            Open311Submission.api_key_id == key.id, Open311Submission.idempotency_key == idempotency_key))
        if earlier is not None:
            earlier.attempts += 1
            return earlier, False
    service = catalogue.by_code((form.get("service_code") or "").strip())
    if service is None:
        raise Open311Error(400, "unknown_service", code=form.get("service_code") or "")
    lat = _coordinate(form, "lat", -90, 90)
    long = _coordinate(form, "long", -180, 180)
    if (lat is None or long is None) and not (form.get("address_string") or "").strip() \
            and not form.get("address_id"):
        raise Open311Error(400, "location_needed")
    description = (form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description_needed")
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, "description_too_long", limit=MAX_DESCRIPTION, length=len(description))
    kind = attributes.get("kind") or "help"
    if kind not in KINDS:
        raise Open311Error(400, "attribute_value", code="kind", value=kind, allowed=",".join(KINDS))
    if form.get("address_id") and not attributes.get("estate"):
        attributes = {**attributes, "estate": form["address_id"]}
    estate = _estate_for(session, form, attributes, key.scope)
    kept = _check_attributes(service, attributes)
    if kept:
        labels = {a["code"]: a.get("description") or a["code"] for a in service.attributes}
        description += "\n" + "\n".join(_message("attribute_line", label=labels[c], value=v["label"])
                                        for c, v in kept.items())
    contact = " ".join(p for p in (form.get("last_name"), form.get("first_name")) if p).strip() or None
    req = file_request(session, Actor("system", key.id, key.name), kind=kind, category=service.name,
                       description=description, channel="open311", estate_id=estate.id,
                       community_id=estate.community_id, created_at=now, updated_at=now,
                       contact_name=contact, contact_mobile=(form.get("phone") or "").strip() or None,
                       location=_location(form, lat, long))
    sub = Open311Submission(token=secrets.token_hex(12), api_key_id=key.id, request_id=req.id,
                            idempotency_key=idempotency_key or None, attributes=kept or None,
                            device_id=(form.get("device_id") or "")[:128] or None, created_at=now)
    session.add(sub)
    session.flush()
    return sub, True


def _location(form: dict, lat: float | None, long: float | None) -> dict:
    """Where the client said it is, for the steward only (never published)."""
    location = {"source": "open311", "address": (form.get("address_string") or "").strip()[:200] or None}
    if lat is not None and long is not None:
        location.update(latitude=lat, longitude=long)
    return location


def submission_dict(sub: Open311Submission) -> dict:
    """The POST answer: the id at once (requests are filed synchronously) and the token."""
    return {"service_request_id": sub.request.ref, "token": sub.token,
            "service_notice": _message("service_notice"), "account_id": None}


def find_token(session: Session, token: str) -> dict:
    """GET service_request_id from a token."""
    sub = session.scalar(select(Open311Submission).where(Open311Submission.token == (token or "").strip()))
    if sub is None:
        raise Open311Error(404, "unknown_token", token=token)
    return {"service_request_id": sub.request.ref, "token": sub.token}


def check_jurisdiction(session: Session, value: str | None) -> None:
    """This server answers for one park: a jurisdiction_id, if given, is the park's code."""
    value = (value or "").strip()
    if not value:
        return
    park = session.scalar(select(Organisation.code).where(Organisation.kind == "park").order_by(Organisation.id))
    if value != park:
        raise Open311Error(404, "unknown_jurisdiction", value=value, expected=park or "")


def catalogue_changed(path: str | None = None) -> datetime:
    """When the service list last changed: the catalogue file's modification time."""
    return datetime.fromtimestamp(Path(path or CATALOGUE_PATH).stat().st_mtime, tz=PARK_TZ)


def discovery(base_url: str, contact: str, key_service: str, changeset: datetime) -> dict:
    """The service discovery document pointing at this endpoint."""
    stamp = w3c(changeset)
    return {"changeset": stamp, "contact": contact, "key_service": key_service,
            "endpoints": [{"specification": SPEC_URL, "url": base_url.rstrip("/"), "changeset": stamp,
                           "type": "production", "formats": ["text/xml", "application/json"]}]}
