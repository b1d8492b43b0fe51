"""The Friday 民意诉求承办单 (HandlingForm): the week's complex requests, as HTML e-mail and Excel."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from models import Liaison, Organisation, ServiceRequest, routing
from models.deadlines import add_working_days, complex_days
from models.schedule import claim_period

from . import notify

TEMPLATE_DIR = Path(__file__).resolve().parent.parent.parent / "templates" / "digest"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUMMARY_CHARS = 200


@dataclass
class HandlingForm:
    """One compiled form: its window, its rows, and the HTML, text and Excel renderings."""

    start: datetime
    end: datetime
    rows: list[dict] = field(default_factory=list)
    title: str = ""
    html: str = ""
    text: str = ""
    xlsx: bytes = b""
    filename: str = ""  # the attachment's name, dated by the end of the window


@lru_cache(maxsize=1)
def _env() -> Environment:
    """The digest templates; HTML escaped, everything strict."""
    return Environment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, autoescape=select_autoescape(["html"]))


def _render(name: str, **context) -> str:
    """Renders templates/digest/<name>."""
    return _env().get_template(name).render(**context).strip()


def last_due(settings: dict, now: datetime) -> datetime:
    """The latest scheduled digest time at or before `now` (local), which names the week's form."""
    sch = settings["scheduler"]
    local = now.astimezone(ZoneInfo(sch["timezone"]))
    hour, minute = (int(x) for x in sch["digest_time"].split(":"))
    weekday = WEEKDAYS.index(sch["digest_weekday"].strip().lower()[:3])
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    due -= timedelta(days=(local.weekday() - weekday) % 7)
    return due - timedelta(days=7) if due > local else due


def complex_requests(session: Session, start: datetime, end: datetime) -> list[ServiceRequest]:
    """Requests that reached the organisation department in [start, end), oldest first (one query)."""
    return list(session.scalars(
        select(ServiceRequest)
        .where(ServiceRequest.level == "organisation_department",
               ServiceRequest.routed_at >= start, ServiceRequest.routed_at < end)
        .options(joinedload(ServiceRequest.estate), joinedload(ServiceRequest.community))
        .order_by(ServiceRequest.routed_at, ServiceRequest.id)))


def compile_form(session: Session, settings: dict, start: datetime, end: datetime) -> HandlingForm:
    """Builds the form for a window: one row per request, rendered three ways."""
    rules = routing.load()
    deadline = add_working_days(end, complex_days(settings))
    form = HandlingForm(start=start, end=end)
    for req in complex_requests(session, start, end):
        proposed = routing.suggest(session, rules, req).handler if req.type else None
        form.rows.append({
            "ref": req.ref,
            "estate": req.estate.name if req.estate else (req.community.name if req.community else ""),
            "type": "·".join(x for x in (req.kind_label, req.type_label, req.category) if x),
            "summary": " ".join(req.description.split())[:SUMMARY_CHARS],
            "handler": proposed.name if proposed is not None else "",
            "deadline": notify.local(deadline)[:10],
        })
    columns = _render("columns.txt").splitlines()
    context = {"rows": form.rows, "columns": columns, "start": notify.local(start), "end": notify.local(end),
               "url": f"{settings['app']['public_url'].rstrip('/')}/console/requests?level=organisation_department"}
    form.title = _render("title.txt", **context)
    context["title"] = form.title
    form.html = _render("form.html", **context)
    form.text = _render("form.txt", **context)
    form.xlsx = _workbook(form.title, columns, form.rows)
    form.filename = _render("filename.txt", day=f"{end:%Y%m%d}")
    return form


def _workbook(title: str, columns: list[str], rows: list[dict]) -> bytes:
    """The form as an Excel workbook: a title line, a header row, one row per request."""
    from openpyxl import Workbook  # the scheduler's and the digest command's, not the web app's
    from openpyxl.styles import Alignment, Font, PatternFill
    wb = Workbook()
    ws = wb.active
    ws.title = _render("sheet.txt")
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(columns)
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FBE9E7")
    for row in rows:
        ws.append([row["ref"], row["estate"], row["type"], row["summary"], row["handler"], row["deadline"]])
    for letter, width in zip("ABCDEF", (12, 16, 22, 60, 24, 14)):
        ws.column_dimensions[letter].width = width
    for row in ws.iter_rows(min_row=3):
        row[3].alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A3"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _send(session: Session, settings: dict, form: HandlingForm, key: str) -> int:
    """Queues the form to the organisation department: e-mail with the Excel, and a template message."""
    sent = 0
    attachment = {"filename": form.filename, "mime": XLSX_MIME, "data": base64.b64encode(form.xlsx).decode()}
    url = f"{settings['app']['public_url'].rstrip('/')}/console/requests?level=organisation_department"
    for dept in session.scalars(select(Organisation).where(Organisation.kind == "organisation_department")
                                .order_by(Organisation.id)):
        if dept.email:
            notify.email(session, [dept.email], form.title, form.text, f"{key}:mail:{dept.id}", html=form.html,
                         attachments=[attachment])
            sent += 1
        for liaison in session.scalars(select(Liaison).where(Liaison.organisation_id == dept.id,
                                                             Liaison.active.is_(True), Liaison.openid.is_not(None))):
            notify.template(session, settings, liaison.openid, "digest",
                            {"thing1": _render("notice.txt", count=len(form.rows)),
                             "time2": notify.local(form.end)}, url, f"{key}:tpl:{liaison.id}")
            sent += 1
    return sent


def weekly_digest(sessions: sessionmaker, settings: dict, now: datetime) -> dict:
    """The scheduled form for the week that ended at the last digest time; sent once per week."""
    end = last_due(settings, now)
    period = end.date().isoformat()
    with sessions() as s, s.begin():
        run = claim_period(s, "digest", period)
        if run is None:
            return {"rows": 0, "messages": 0}
        form = compile_form(s, settings, end - timedelta(days=7), end)
        sent = _send(s, settings, form, f"digest:{period}")
        run.result = {"rows": len(form.rows), "refs": [r["ref"] for r in form.rows], "messages": sent}
    return {"rows": len(form.rows), "messages": sent}


def digest_on_demand(sessions: sessionmaker, settings: dict, now: datetime) -> tuple[HandlingForm, dict]:
    """A form of the seven days up to now, sent now (`flask digest now`); once per minute at most."""
    with sessions() as s, s.begin():
        form = compile_form(s, settings, now - timedelta(days=7), now)
        sent = _send(s, settings, form, f"digest-now:{now:%Y%m%d%H%M}")
    return form, {"rows": len(form.rows), "messages": sent}
