"""The dashboard: the programme's headline figures and charts, all from aggregate queries."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, render_template, request
from sqlalchemy import select

from models import Organisation, reporting, utcnow
from models.rollup import PARK_TZ
from models.labels import labels_of

from ..db import get_session
from . import charts
from .auth import login_required

bp = Blueprint("console_dashboard", __name__, url_prefix="/console")

CHINA = PARK_TZ
READERS = ("admin", "organisation_department")


def period_from_args(args, default_days: int = 365) -> tuple[datetime, datetime, str, str]:
    """[start, end) from ?from=YYYY-MM-DD&to=YYYY-MM-DD (China dates, `to` inclusive)."""
    today = utcnow().astimezone(CHINA).date()
    try:
        end_day = datetime.strptime(args.get("to", ""), "%Y-%m-%d").date()
    except ValueError:
        end_day = today
    try:
        start_day = datetime.strptime(args.get("from", ""), "%Y-%m-%d").date()
    except ValueError:
        start_day = end_day - timedelta(days=default_days - 1)
    if start_day > end_day:
        start_day, end_day = end_day, start_day
    start = datetime.combine(start_day, datetime.min.time(), CHINA)
    end = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), CHINA)
    return start, end, start_day.isoformat(), end_day.isoformat()


def _months(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """Each month ('2026-11', its start, its end) from start to end in China time, clipped to the period."""
    first = start.astimezone(CHINA)
    y, m, out = first.year, first.month, []
    while True:
        month_start = datetime(y, m, 1, tzinfo=CHINA)
        if month_start >= end:
            return out
        y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
        month_end = datetime(y2, m2, 1, tzinfo=CHINA)
        out.append((f"{y:04d}-{m:02d}", max(month_start, start), min(month_end, end)))
        y, m = y2, m2


@bp.route("/dashboard")
@login_required(*READERS)
def dashboard():
    """Headline figures, requests by month and type, by community, and response times."""
    s, now = get_session(), utcnow()
    start, end, start_s, end_s = period_from_args(request.args)
    months = _months(start, end)
    monthly = reporting.by_month_and_type(s, months)
    names = dict(s.execute(select(Organisation.id, Organisation.name)
                           .where(Organisation.kind == "community")).all())
    per_community = {(names.get(cid, "—"), key): n
                     for (cid, key), n in reporting.by_community_and_type(s, start, end).items()}
    totals: dict[str, int] = {}
    for (label, _), n in per_community.items():
        totals[label] = totals.get(label, 0) + n
    labels = sorted(totals, key=lambda label: -totals[label])
    response = reporting.response_times(s, start, end)
    return render_template(
        "console/dashboard.html", figures=reporting.headline(s, now), start=start_s, end=end_s,
        monthly=charts.stacked_columns([label for label, _, _ in months], reporting.SERIES, monthly),
        communities=charts.stacked_rows(labels[:20], reporting.SERIES, per_community),
        response=charts.histogram(list(response.items())), types=labels_of("request_type"),
        palette=charts.PALETTE)
