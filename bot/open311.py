"""The Open311 GeoReport v2 endpoint under /open311/v2/ (XML and JSON), and `flask apikey`."""
from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.cli import AppGroup

from handlers.open311 import file_from_api
from models import apikey, utcnow
from models import open311 as o311

from .db import get_session

logger = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMAT = "<any(xml, json):fmt>"
MIME = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
# The spec's element names for the items of each list.
ITEM_NAMES = {"services": "service", "service_requests": "request", "attributes": "attribute",
              "values": "value", "endpoints": "endpoint", "formats": "format", "errors": "error"}


# ---- rendering ------------------------------------------------------------------------------

def _text(value) -> str:
    """Booleans as the spec writes them, numbers and strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(parent: ET.Element, name: str, value) -> None:
    """Appends <name> holding a value, a mapping (children) or a list (repeated items)."""
    node = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, child in value.items():
            _element(node, key, child)
    elif isinstance(value, list):
        for child in value:
            _element(node, ITEM_NAMES[name], child)
    elif value is not None:
        node.text = _text(value)


def render(fmt: str, root: str, body, status: int = 200) -> Response:
    """The body as XML under `root` (a list becomes repeated items) or as JSON."""
    if fmt == "json":
        text = json.dumps(body, ensure_ascii=False)
    else:
        top = ET.Element(root)
        items = body if isinstance(body, list) else None
        if items is None:
            for key, child in body.items():
                _element(top, key, child)
        else:
            for child in items:
                _element(top, ITEM_NAMES[root], child)
        text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode")
    return Response(text, status=status, mimetype=None, content_type=MIME[fmt])


def error(fmt: str, exc: o311.Open311Error) -> Response:
    """The spec's error list: <errors><error><code/><description/></error></errors>."""
    return render(fmt, "errors", [{"code": exc.status, "description": exc.description}], exc.status)


def _catalogue() -> o311.Catalogue:
    """The categories configured for this app."""
    return o311.load_catalogue()


def _jurisdiction() -> None:
    """This server answers for the park only; another jurisdiction_id is not ours."""
    o311.check_jurisdiction(get_session(), request.values.get("jurisdiction_id"))


def _key(required: bool) -> apikey.ApiKey | None:
    """The caller's api_key, checked and counted against its rate limit."""
    plaintext = (request.values.get("api_key") or "").strip()
    if not plaintext:
        if required:
            raise o311.Open311Error(403, "api_key_required")
        return None
    session = get_session()
    key = apikey.authenticate(session, plaintext)
    if key is None:
        raise o311.Open311Error(403, "api_key_invalid")
    allowed = apikey.consume(session, key)
    session.commit()  # the count holds even if the call itself fails
    if not allowed:
        raise o311.Open311Error(429, "rate_limited", limit=key.rate_limit)
    return key


def _attributes() -> dict:
    """attribute[CODE]=v and attribute[CODE][]=v1&attribute[CODE][]=v2 as {CODE: v or [v1, v2]}."""
    out: dict = {}
    for name in request.form:
        if name.startswith("attribute[") and "]" in name:
            code = name[len("attribute["):name.index("]")]
            values = request.form.getlist(name)
            out[code] = values if name.endswith("[]") else values[-1]
    return out


# ---- endpoints ------------------------------------------------------------------------------

@bp.errorhandler(o311.Open311Error)
def _open311_error(exc: o311.Open311Error):
    """Every client error in the spec's format and the asked-for representation."""
    get_session().rollback()
    fmt = (request.view_args or {}).get("fmt", "xml")
    return error(fmt, exc)


@bp.get(f"/discovery.{FORMAT}")
def discovery(fmt: str):
    """Where the GeoReport v2 endpoint is and which formats it speaks."""
    settings = current_app.config["REDSTEWARD"]
    base = settings["app"]["public_url"].rstrip("/") + bp.url_prefix
    contact = settings["mail"]["sender"]
    doc = o311.discovery(base, contact, settings["app"]["public_url"].rstrip("/") + "/console/",
                         o311.catalogue_changed())
    return render(fmt, "discovery", doc)


@bp.get(f"/services.{FORMAT}")
def services(fmt: str):
    """GET service list."""
    _jurisdiction()
    return render(fmt, "services", o311.service_list(_catalogue()))


@bp.get(f"/services/<code>.{FORMAT}")
def service_definition(code: str, fmt: str):
    """GET service definition: the attributes a client may send."""
    _jurisdiction()
    return render(fmt, "service_definition", o311.service_definition(get_session(), _catalogue(), code))


@bp.get(f"/requests.{FORMAT}")
def requests_list(fmt: str):
    """GET service requests, filtered as the spec allows."""
    _jurisdiction()
    _key(required=False)
    session = get_session()
    reqs = o311.query_requests(session, _catalogue(), request.args.to_dict())
    return render(fmt, "service_requests", o311.request_dicts(session, reqs, _catalogue()))


@bp.post(f"/requests.{FORMAT}")
def requests_create(fmt: str):
    """POST a service request with an api_key; filed at once, so the id comes back directly."""
    _jurisdiction()
    key = _key(required=True)
    session = get_session()
    services_ = current_app.extensions["redsteward.services"]
    sub = file_from_api(session, services_, _catalogue(), key, request.form.to_dict(), _attributes(),
                        now=utcnow(), idempotency_key=request.headers.get("Idempotency-Key"))
    body = [o311.submission_dict(sub)]
    session.commit()
    logger.info("open311: key %s filed request %s", key.prefix, body[0]["service_request_id"])
    return render(fmt, "service_requests", body)


@bp.get(f"/requests/<ref>.{FORMAT}")
def request_one(ref: str, fmt: str):
    """GET one service request."""
    _jurisdiction()
    _key(required=False)
    session = get_session()
    req = o311.find_request(session, ref)
    return render(fmt, "service_requests", o311.request_dicts(session, [req], _catalogue()))


@bp.get(f"/tokens/<token>.{FORMAT}")
def token(token: str, fmt: str):
    """GET the service_request_id a token stands for."""
    _jurisdiction()
    return render(fmt, "service_requests", [o311.find_token(get_session(), token)])


# ---- flask apikey ---------------------------------------------------------------------------

apikey_cli = AppGroup("apikey", help="Open311 API keys.")


@apikey_cli.command("create")
@click.option("--scope", "scope_code", required=True, help="Code of the park or of a community.")
@click.option("--name", default="", help="Who the key is for.")
@click.option("--rate-limit", default=apikey.DEFAULT_RATE_LIMIT, show_default=True,
              help="Calls a minute.")
def apikey_create(scope_code, name, rate_limit):
    """Create a key; it is printed once and stored only as a hash."""
    session = get_session()
    try:
        key, plaintext = apikey.create_key(session, scope_code, name, rate_limit)
    except apikey.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"api_key for {key.scope.name} ({key.rate_limit}/min): {plaintext}")
    click.echo("Keep it now: only its hash is stored.")


@apikey_cli.command("list")
def apikey_list():
    """List keys (prefix, scope, limit, state), never the keys themselves."""
    for key in apikey.list_keys(get_session()):
        state = "revoked" if key.revoked_at else "active"
        click.echo(f"{key.prefix}  {key.scope.code:<12} {key.rate_limit:>5}/min  {state:<8} {key.name}")


@apikey_cli.command("revoke")
@click.argument("prefix")
def apikey_revoke(prefix):
    """Revoke the key with this prefix (the 8 characters after rs_)."""
    session = get_session()
    if apikey.revoke(session, prefix) is None:
        raise click.ClickException(f"no key with prefix {prefix}")
    session.commit()
    click.echo(f"revoked {prefix}")


def init_app(app: Flask) -> None:
    """Registers the endpoint and the command group."""
    app.register_blueprint(bp)
    app.cli.add_command(apikey_cli)
