"""Voice notes on the web: signed links that play them, and the job that fetches them from WeChat."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Blueprint, Flask, abort, current_app, send_file, url_for
from flask.cli import AppGroup
from itsdangerous import BadSignature, URLSafeTimedSerializer

from handlers import voice
from models import MediaFile, utcnow
from models.media import voice_of_request

from .db import get_session

bp = Blueprint("voice", __name__, url_prefix="/media")
media_cli = AppGroup("media", help="Residents' voice notes fetched from WeChat.")

SALT = "voice-link"


def _signer() -> URLSafeTimedSerializer:
    """Signs links with the app's secret key, apart from every other signed value."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def voice_link(media: MediaFile) -> str:
    """A signed, expiring link that plays a voice note; only pages that may show the request make one."""
    return url_for("voice.play", token=_signer().dumps(media.id))


def voice_of(request) -> dict | None:
    """What a page shows for a request filed by voice: '语音 0:07' and a player link when ready."""
    media = voice_of_request(get_session(), request.id)
    if media is None:
        return None
    return {"label": media.duration_label, "status": media.status,
            "url": voice_link(media) if media.playable else None}


@bp.route("/voice/<token>")
def play(token: str):
    """Streams the MP3 of a voice note to whoever holds a valid, unexpired link."""
    max_age = current_app.config["REDSTEWARD"]["media"]["link_minutes"] * 60
    try:
        media_id = _signer().loads(token, max_age=max_age)
    except BadSignature:
        abort(403)
    media = get_session().get(MediaFile, media_id)
    if media is None or not media.playable or not Path(media.playable_path).exists():
        abort(404)
    # Range requests are answered (conditional=True): Safari will not play audio without them.
    return send_file(Path(media.playable_path).resolve(), mimetype="audio/mpeg", conditional=True,
                     max_age=0, download_name=f"voice-{media.id}.mp3")


def fetcher(client, settings: dict):
    """fetch(media_id, file) for handlers.voice: one media/get into the media directory."""
    from .media import download
    from .outbox import Permanent

    def fetch(media_id: str, relative: str) -> Path:
        """Downloads once (an existing file is kept); an expired id is reported as gone."""
        try:
            return download(client, settings, {"media_id": media_id, "file": relative}).resolve()
        except Permanent as exc:
            raise voice.MediaGone(str(exc)) from None
    return fetch


def download_job(app: Flask, now=None) -> dict:
    """The scheduled job: fetches and converts every queued voice note."""
    from .wechat_api import build_client
    settings = app.config["REDSTEWARD"]
    sessions = app.extensions["redsteward.sessions"]
    return voice.download_due(sessions, settings, now or utcnow(),
                              fetcher(build_client(settings, sessions), settings))


@media_cli.command("fetch")
def media_fetch():
    """Fetch and convert queued voice notes now (the scheduler does this every few seconds)."""
    counts = download_job(current_app._get_current_object())
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


def init_app(app: Flask) -> None:
    """Registers the player blueprint, the page helper and the fetch command."""
    app.register_blueprint(bp)
    app.jinja_env.globals["voice_of"] = voice_of
    app.cli.add_command(media_cli)
