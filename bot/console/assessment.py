"""The yearly (or any period's) assessment of handlers and stewards, on screen and as Excel."""
from __future__ import annotations

import io

from flask import Blueprint, render_template, request, send_file
from sqlalchemy import select

from models import Organisation, ServiceRequest, Steward, reporting, utcnow

from ..db import get_session
from .auth import audit_log, login_required
from .dashboard import period_from_args

bp = Blueprint("console_assessment", __name__, url_prefix="/console")

READERS = ("admin", "organisation_department")
DEFAULT_WEIGHTS = {"timeliness": 0.4, "effectiveness": 0.3, "satisfaction": 0.3}
DEFAULT_MIN_SAMPLE = 10
SORT_KEYS = ("score", "timeliness", "effectiveness", "satisfaction", "sample", "name")


def _options(args) -> dict:
    """Period, weights, minimum sample and sort order from the query string."""
    start, end, start_s, end_s = period_from_args(args)
    weights = {}
    for key, default in DEFAULT_WEIGHTS.items():
        try:
            weights[key] = max(0.0, float(args.get("w_" + key, default)))
        except ValueError:
            weights[key] = default
    min_sample = args.get("min_sample", DEFAULT_MIN_SAMPLE, type=int)
    sort = args.get("sort", "score")
    return {"start": start, "end": end, "from": start_s, "to": end_s, "weights": weights,
            "min_sample": max(0, min_sample if min_sample is not None else DEFAULT_MIN_SAMPLE),
            "sort": sort if sort in SORT_KEYS else "score", "desc": args.get("dir", "desc") != "asc"}


def _rank(rows: list[reporting.Assessed], opts: dict) -> list[dict]:
    """Scores, sorts and ranks rows; rows under the minimum sample are listed last, unranked."""
    out = []
    for row in rows:
        ranked = row.sample >= opts["min_sample"]
        out.append({"row": row, "score": row.score(opts["weights"]) if ranked else None, "ranked": ranked})
    key = opts["sort"]

    def sort_value(item):
        """Missing figures sort last in either direction."""
        if key == "name":
            return (0, item["row"].name)
        value = item["score"] if key == "score" else getattr(item["row"], key)
        return (0, -value if opts["desc"] else value) if value is not None else (1, 0)

    if key == "name" and opts["desc"]:
        out.sort(key=lambda item: item["row"].name, reverse=True)
    else:
        out.sort(key=sort_value)
    out.sort(key=lambda item: not item["ranked"])  # stable: unranked rows go last
    rank = 0
    for item in out:
        if item["ranked"]:
            rank += 1
            item["rank"] = rank
        else:
            item["rank"] = None
    return out


def compute(s, opts: dict) -> tuple[list[dict], list[dict]]:
    """Handler rows and steward rows for the options' period."""
    now = utcnow()
    by_handler = reporting.assess(s, ServiceRequest.handler_id, opts["start"], opts["end"], now)
    orgs = {o.id: o for o in s.scalars(select(Organisation).where(Organisation.id.in_(list(by_handler))))}
    handlers = [reporting.Assessed(key=k, name=orgs[k].name if k in orgs else str(k), **v,
                               extra={"kind": orgs[k].kind if k in orgs else ""})
                for k, v in by_handler.items()]
    by_community = reporting.assess(s, ServiceRequest.community_id, opts["start"], opts["end"], now)
    community_names = dict(s.execute(select(Organisation.id, Organisation.name)
                                     .where(Organisation.kind == "community")).all())
    stewards = [reporting.Assessed(key=st.id, name=st.name, **by_community[st.community_id],
                               extra={"community": community_names.get(st.community_id, "")})
                for st in s.scalars(select(Steward).order_by(Steward.id)) if st.community_id in by_community]
    return _rank(handlers, opts), _rank(stewards, opts)


@bp.route("/assessment")
@login_required(*READERS)
def assessment():
    """The assessment table for a period, with weights and minimum sample adjustable."""
    opts = _options(request.args)
    handlers, stewards = compute(get_session(), opts)
    return render_template("console/assessment.html", handlers=handlers, stewards=stewards, opts=opts,
                           args=request.args.to_dict())


@bp.route("/assessment.xlsx")
@login_required(*READERS)
def export():
    """The same assessment as an Excel workbook: one sheet for handlers, one for stewards."""
    s = get_session()
    opts = _options(request.args)
    handlers, stewards = compute(s, opts)
    headers = [h for h in render_template("console/assessment_headers.txt").splitlines() if h.strip()]
    sheets = [h for h in render_template("console/assessment_sheets.txt").splitlines() if h.strip()]
    from openpyxl import Workbook  # with numpy: only the export needs it, not every worker at start
    from openpyxl.styles import Font
    wb = Workbook()
    for index, (title, rows) in enumerate(zip(sheets, (handlers, stewards))):
        ws = wb.active if index == 0 else wb.create_sheet()
        ws.title = title
        ws.append(headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for item in rows:
            r = item["row"]
            ws.append([item["rank"], r.name, r.extra.get("kind") or r.extra.get("community", ""), r.total,
                       r.answered, r.on_time, r.overdue_open, _pct(r.timeliness), r.resolved,
                       r.resolved_first_time, _pct(r.effectiveness), r.satisfied, r.basically_satisfied,
                       r.unsatisfied, r.unrated, _pct(r.satisfaction),
                       round(item["score"] * 100, 1) if item["score"] is not None else None])
    audit_log("export_assessment", f"{opts['from']}..{opts['to']}")
    s.commit()
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    return send_file(buf, as_attachment=True, download_name=f"assessment-{opts['from']}-{opts['to']}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _pct(value: float | None) -> float | None:
    """A rate as a percentage with one decimal, or empty."""
    return round(value * 100, 1) if value is not None else None
