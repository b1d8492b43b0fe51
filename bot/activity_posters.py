"""`flask --app wsgi activity posters ID OUTDIR`: an activity's check-in and check-out QR posters."""
from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import qrcode
from flask import current_app
from flask.cli import AppGroup
from PIL import Image, ImageDraw, ImageFont

from handlers.activities import scene
from handlers.texts import say
from models import Activity, utcnow

activity_cli = AppGroup("activity", help="Activities: the QR posters residents scan to check in and out.")

SIZE = (900, 1200)
# WeChat's temporary QR codes live at most 30 days; longer-lived ones must be permanent.
MAX_TEMPORARY_SECONDS = 30 * 86400


def font_path() -> str | None:
    """A font with Chinese glyphs (fonts-noto-cjk), so the poster never shows boxes."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                                timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip())
    return next((f for f in files if "SansCJK-Regular" in f), files[0] if files else None)


def ticket(client, scene_str: str, seconds: int) -> dict:
    """A QR ticket for the scene: temporary when the activity is within 30 days, else permanent."""
    if 0 < seconds <= MAX_TEMPORARY_SECONDS:
        data = {"expire_seconds": seconds, "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": scene_str}}}
    else:
        data = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}
    return client.post("qrcode/create", data=data)


def draw(url: str, lines: list[str], font: str | None) -> Image.Image:
    """A printable poster: the wording's lines above and below the QR code."""
    poster = Image.new("RGB", SIZE, "white")
    pen = ImageDraw.Draw(poster)
    pen.rectangle([0, 0, SIZE[0], 150], fill=(192, 0, 0))
    layout = [(40, 64, "white"), (200, 52, (40, 40, 40)), (280, 36, (90, 90, 90)),
              (1020, 40, (192, 0, 0)), (1090, 30, (90, 90, 90))]
    for (y, size, colour), text in zip(layout, lines):
        face = ImageFont.truetype(font, size) if font else ImageFont.load_default(size)
        pen.text(((SIZE[0] - pen.textlength(text, font=face)) / 2, y), text, font=face, fill=colour)
    code = qrcode.QRCode(border=2, box_size=12, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(url)
    code.make(fit=True)
    poster.paste(code.make_image().convert("RGB").resize((620, 620)), ((SIZE[0] - 620) // 2, 370))
    return poster


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
        draw(answer["url"], lines, font).save(path, "PNG")
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
    font = font_path()
    if font is None:
        click.echo("warning: no CJK font found (apt-get install fonts-noto-cjk); Chinese shows as boxes",
                   err=True)
    for path in make_posters(sessions, build_client(settings, sessions), settings, activity_id,
                             Path(outdir), font):
        click.echo(str(path))
