"""我的数据 on the web: the resident's export behind a signed, short-lived link (page and JSON file)."""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, render_template

from handlers.mydata import collect, resident_for_token

from .db import get_session

bp = Blueprint("mydata", __name__, url_prefix="/mydata")


def _resident(token: str):
    """The link's resident, or 403 for a forged, expired or erased link."""
    resident = resident_for_token(get_session(), current_app.config["REDSTEWARD"], token)
    if resident is None:
        abort(403)
    return resident


def _private(resp: Response) -> Response:
    """Personal data: never cached by a proxy or kept by the browser."""
    resp.headers["Cache-Control"] = "no-store, private"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.route("/<token>")
def page(token: str):
    """Everything stored about the resident, readable on a phone."""
    resident = _resident(token)
    return _private(Response(render_template("mydata/export.html", data=collect(get_session(), resident),
                                             token=token)))


@bp.route("/<token>.json")
def download(token: str):
    """The same export as a JSON file."""
    resident = _resident(token)
    body = json.dumps(collect(get_session(), resident), ensure_ascii=False, indent=2, default=str)
    resp = Response(body, mimetype="application/json")
    resp.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return _private(resp)
