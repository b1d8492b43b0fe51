"""`flask --app wsgi activity posters ID OUTDIR`: an activity's check-in and check-out QR posters."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from handlers.activities import scene
from handlers.texts import say
from models import Activity, utcnow

from .qr import cjk_font_path, draw_poster

activity_cli = AppGroup("activity", help="Activities: the QR posters residents scan to check in and out.")

# WeChat's temporary QR codes live at most 30 days; longer-lived ones must be permanent.
MAX_TEMPORARY_SECONDS = 30 * 86400


def ticket(client, scene_str: str, seconds: int) -> dict:
    """A QR ticket for the scene: temporary when the activity is within 30 days, else permanent."""
    if 0 < seconds <= MAX_TEMPORARY_SECONDS:
        data = {"expire_seconds": seconds, "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": scene_str}}}
    else:
        data = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}
    return client.post("qrcode/create", data=data)


def make_posters(sessions, client, settings: dict, activity_id: int, outdir: Path,
                 font: str | None) -> list[Path]:
    """Writes act_<id>_in.png and act_<id>_out.png; the codes last until check-out closes."""
    # Read and let go of the database before calling WeChat: SQLite has one writer at a time.
    with sessions() as session:
        act = session.get(Activity, activity_id)
    if act is None:
        raise click.ClickException(f"no activity {activity_id}")
    closes = act.ends_at + timedelta(minutes=settings["points"]["checkout_late_minutes"])
    seconds = int((closes - utcnow()).total_seconds())
    if seconds <= 0:
        raise click.ClickException(f"activity {activity_id} is over; its codes would not work")
    outdir.mkdir(parents=True, exist_ok=True)
    tz = ZoneInfo(settings["scheduler"]["timezone"])
    written = []
    for direction in ("in", "out"):
        name = scene(act.id, direction)
        answer = ticket(client, name, seconds)
        lines = say("activity_poster", a=act, direction=direction, tz=tz).splitlines()
        path = outdir / f"{name}.png"
        draw_poster(answer["url"], lines, font).save(path, "PNG")
        written.append(path)
    return written


@activity_cli.command("posters")
@click.argument("activity_id", type=int)
@click.argument("outdir", type=click.Path(file_okay=False))
def posters(activity_id, outdir):
    """Write the check-in and check-out QR posters of ACTIVITY_ID into OUTDIR."""
    from .wechat_api import build_client
    settings = current_app.config["REDSTEWARD"]
    sessions = current_app.extensions["redsteward.sessions"]
    font = cjk_font_path()
    if font is None:
        click.echo("warning: no CJK font found (apt-get install fonts-noto-cjk); Chinese shows as boxes",
                   err=True)
    for path in make_posters(sessions, build_client(settings, sessions), settings, activity_id,
                             Path(outdir), font):
        click.echo(str(path))
